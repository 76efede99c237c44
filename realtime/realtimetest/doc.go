// Package realtimetest is the Realtime half of the local Supabase stand-in: a
// protocol-faithful fake of the Supabase Realtime server for
// postgres_changes subscribers, fed by a real PostgreSQL database.
//
// Server speaks the Phoenix websocket protocol exactly as Realtime does for
// postgres_changes (serializers 1.0.0 objects and 2.0.0 arrays, heartbeats,
// phx_join with echoed bindings and ids, "Subscribed to PostgreSQL" system
// messages, access_token refreshes, token expiry, phx_leave/phx_close) and
// offers fault injection (dropped or killed connections, stalled
// heartbeats, refused or slow joins, system errors, dropped or truncated
// changes, 1001/1012 disconnects) so clients can be tested against the
// failure modes of the real service. The reference for every behaviour is
// the project's Realtime protocol notes (realtime-protocol.md), which cite
// the Realtime, Phoenix and realtime-js sources.
//
// # Why logical decoding
//
// StartCDC feeds the server from PostgreSQL's logical decoding (the built-in
// pgoutput plugin on the supabase_realtime publication, through a temporary
// replication slot) rather than from triggers or polling of tables. That is
// how Realtime itself works (it reads a temporary wal2json slot), so the
// stand-in inherits the same semantics for free and tests exercise them:
// only tables in the publication produce changes; changes arrive once, in
// commit order, only after commit, with the transaction's commit timestamp;
// old_record follows the table's REPLICA IDENTITY (key columns by default,
// the whole row with FULL); unchanged TOASTed values are missing; TRUNCATE
// is invisible; and changes committed while no slot exists are lost (no
// replay). Triggers would need schema changes in the database under test,
// would fire inside the writing transaction (before commit, including for
// rolled-back work) and could not reproduce replica identity or TOAST
// behaviour.
//
// Visibility follows Realtime's apply_rls: a service_role (or any BYPASSRLS)
// subscriber sees every change; for other roles an INSERT or UPDATE on a
// table with row level security is delivered only if the row is visible to
// the subscriber's role and JWT claims (checked against the database with
// `set local role` and request.jwt.claims); DELETEs go to every matching
// subscriber, with only the primary key in old_record when RLS is enabled.
//
// # Limits
//
// Decoded changes reach subscribers as Realtime's replication poller hands
// them out: in polls of whole transactions, at most PollMaxChanges (100)
// changes each, back to back while there is work and PollInterval × 5
// (500ms) apart when idle; the rest waits in the replication stream.
// Visibility is decided when a change is polled. With MaxEventsPerSecond
// set, the tenant quota works as Realtime's: changes are counted per
// subscription, averaged over up to RateWindowTicks × RateTick (60s), and
// while the average is at or over the quota whole polls are consumed and
// dropped with nothing sent to any client (SkippedChanges counts them).
package realtimetest
