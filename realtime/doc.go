// Package realtime is a Supabase Realtime client for postgres_changes.
//
// A [Client] keeps one websocket to the Realtime server open, joins one
// Phoenix channel per [ChannelSpec] and delivers database changes to the
// consumer as [Event] values on a bounded Go channel (see [Client.Events]).
//
// # Lifecycle
//
// [Client.Run] is an outer reconnect loop around sessions. A session is one
// websocket connection; it owns exactly two goroutines: a reader, which reads
// and decodes frames and answers heartbeats, and a writer, which performs
// every write and owns the heartbeat ticker. The channel state machines run on
// the goroutine that called Run, so they need no locks. A heartbeat that is
// still unanswered at the next tick, with no frame read since it was sent,
// ends the session (close 1000 "heartbeat timeout"); sessions are retried
// with jittered exponential backoff that is reset after a healthy session.
// When the consumer falls behind, a change waits up to Config.BufferWait for
// room in the Events channel (the reader, and so the socket, waits with it)
// before it is dropped into a Gap.
//
// # Readiness and delivery guarantees
//
// Supabase Realtime delivers postgres_changes at most once and never replays
// missed changes. A channel is live only after the server's "Subscribed to
// PostgreSQL" system message, which can repeat (reconnect, token refresh, CDC
// restart). The client emits a [Ready] event every time it arrives; consumers
// should re-read the affected tables from the database on every Ready and on
// every [Gap] (changes dropped because the consumer was too slow for longer
// than Config.BufferWait), and treat
// [Change] events idempotently.
//
// The wire protocol is Supabase Realtime's as its server (supabase/realtime,
// lib/realtime_web/channels) and realtime-js speak it; section numbers in
// comments (§2.3 etc.) refer to the team's protocol notes, which cite those
// sources line by line.
package realtime
