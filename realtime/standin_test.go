package realtime_test

// End-to-end tests: the real client against the Realtime stand-in
// (realtimetest), fed by logical decoding from a real PostgreSQL database,
// with the stand-in's fault injection. The unit tests in client_test.go
// script the same situations frame by frame; these check that client and
// server agree on the protocol.

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/realtime"
	"github.com/meshhook/meshhook-alerts/realtime/realtimetest"
)

var vsns = []string{realtime.VsnV2, realtime.VsnV1}

const (
	// maxSafeIntPlus2 is 2^53+1: not representable as a float64.
	maxSafeIntPlus2 = "9007199254740993"
	maxInt8         = "9223372036854775807"
)

func TestStandin_JoinHappyPath(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			s := newStandin(t, realtimetest.Options{})
			p := s.seedProject("00000000-0000-0000-0000-000000000001")
			spec := realtime.ChannelSpec{Name: "db", Bindings: []realtime.Binding{
				{Event: "*", Schema: "public", Table: "workflow_runs"},
				{Event: "*", Schema: "public", Table: "rt_counters"},
				{Event: "update", Schema: "public", Table: "workflow_runs", Filter: "status=eq.failed"},
			}}
			rc := s.startClient(s.config(vsn), spec)
			rc.nextReady("db")

			require.Equal(t, []string{vsn}, s.srv.Serializers())
			join := s.lastJoin("db")
			require.Equal(t, pgtest.ServiceRoleKey(), join.AccessToken)
			require.Equal(t, []map[string]any{
				{"event": "*", "schema": "public", "table": "workflow_runs"},
				{"event": "*", "schema": "public", "table": "rt_counters"},
				{"event": "UPDATE", "schema": "public", "table": "workflow_runs", "filter": "status=eq.failed"},
			}, join.Config.PostgresChanges, "bindings as sent; empty keys omitted")
			st := rc.c.Stats()
			require.Equal(t, realtime.StateConnected, st.State)
			require.Equal(t, realtime.StateSubscribed, st.Channels[0].State)
			require.NotEmpty(t, st.Channels[0].JoinRef)

			// INSERT, then UPDATE into the filtered binding, then DELETE.
			before := time.Now().Add(-time.Minute)
			run := s.insertRun(p, "running")
			c := rc.nextChange()
			require.Equal(t, "db", c.Channel)
			require.Equal(t, "INSERT", c.Type)
			require.Equal(t, "public", c.Schema)
			require.Equal(t, "workflow_runs", c.Table)
			require.Equal(t, []int{0}, c.Bindings, "only the wildcard binding matches an INSERT")
			require.Equal(t, run, c.Record["id"])
			require.Equal(t, "running", c.Record["status"])
			require.Equal(t, p.id, c.Record["project_id"])
			require.Nil(t, c.OldRecord, "INSERT has no old_record")
			require.Contains(t, c.Columns, realtime.Column{Name: "id", Type: "uuid"})
			require.True(t, c.CommitTimestamp.After(before), "commit timestamp %v", c.CommitTimestamp)
			require.False(t, c.Incomplete)
			require.Empty(t, c.Errors)

			s.exec(`update public.workflow_runs set status = 'failed', finished_at = now() where id = $1`, run)
			c = rc.nextChange()
			require.Equal(t, "UPDATE", c.Type)
			require.Equal(t, []int{0, 2}, c.Bindings, "wildcard and filtered UPDATE binding, mapped by position")
			require.Equal(t, "failed", c.Record["status"])
			require.NotNil(t, c.Record["finished_at"])
			require.Equal(t, map[string]any{"id": run}, c.OldRecord, "default replica identity: primary key only")

			s.exec(`update public.workflow_runs set status = 'succeeded' where id = $1`, run)
			c = rc.nextChange()
			require.Equal(t, []int{0}, c.Bindings, "the filter no longer matches")

			s.exec(`delete from public.workflow_runs where id = $1`, run)
			c = rc.nextChange()
			require.Equal(t, "DELETE", c.Type)
			require.Equal(t, []int{0}, c.Bindings)
			require.Nil(t, c.Record, "DELETE has no record")
			require.Equal(t, map[string]any{"id": run}, c.OldRecord)

			// int8 beyond float64 precision, on the second binding.
			s.exec(`insert into public.rt_counters (id, n, note) values (` + maxSafeIntPlus2 + `, ` + maxInt8 + `, 'x')`)
			c = rc.nextChange()
			require.Equal(t, "rt_counters", c.Table)
			require.Equal(t, []int{1}, c.Bindings)
			require.Equal(t, json.Number(maxSafeIntPlus2), c.Record["id"])
			require.Equal(t, json.Number(maxInt8), c.Record["n"])
			require.Contains(t, c.Columns, realtime.Column{Name: "n", Type: "int8"})
			s.exec(`update public.rt_counters set n = n - 1 where id = ` + maxSafeIntPlus2)
			c = rc.nextChange()
			require.Equal(t, "UPDATE", c.Type)
			require.Equal(t, []int{1}, c.Bindings)
			require.Equal(t, json.Number("9223372036854775806"), c.Record["n"])
			require.Equal(t, map[string]any{"id": json.Number(maxSafeIntPlus2)}, c.OldRecord)
			s.exec(`delete from public.rt_counters where id = ` + maxSafeIntPlus2)
			c = rc.nextChange()
			require.Equal(t, "DELETE", c.Type)
			require.Equal(t, map[string]any{"id": json.Number(maxSafeIntPlus2)}, c.OldRecord)

			// Heartbeats flow and are answered.
			rc.eventually("answered heartbeat", func(st realtime.Stats) bool { return st.HeartbeatRTT > 0 })
			require.Positive(t, s.srv.Heartbeats())
			st = rc.c.Stats()
			require.EqualValues(t, 7, st.ChangesDelivered)
			require.EqualValues(t, 1, st.Sessions)
			require.Empty(t, st.Reconnects)
			require.Zero(t, st.MalformedFrames)
			require.Zero(t, st.IgnoredFrames)
			require.False(t, st.LastFrameAt.IsZero())

			// Clean shutdown: phx_leave, close 1000.
			require.NoError(t, rc.stop())
			require.Eventually(t, func() bool { return s.srv.Leaves() == 1 && s.srv.Connections() == 0 }, e2eWait, e2eTick)
			require.Equal(t, realtime.StateDisconnected, rc.c.Stats().State)
		})
	}
}

func TestStandin_JoinErrorRepliesAreRetried(t *testing.T) {
	const reason = "ConnectionRateLimitReached: Too many connected users"
	s := newStandin(t, realtimetest.Options{JoinErrorDelay: 100 * time.Millisecond})
	s.srv.RefuseJoins(reason, 2)
	rc := s.startClient(s.config(realtime.VsnV2), countersChannel())
	rc.nextReady("counters")

	st := rc.c.Stats()
	require.EqualValues(t, 2, st.JoinErrors)
	require.EqualValues(t, 3, st.Channels[0].Joins)
	require.Equal(t, 3, s.srv.Joins())
	require.Contains(t, st.Channels[0].LastError, reason)
	require.Empty(t, st.Reconnects, "a join error must not reconnect the socket")
	require.Equal(t, []string{"join_error", "join_error"}, rc.channelTransitions("counters", realtime.StateErrored))
	entries := rc.logged("channel failed; rejoining after backoff")
	require.Len(t, entries, 2)
	require.Contains(t, entries[0].ContextMap()["error"], reason)

	s.exec(`insert into public.rt_counters (id) values (1)`)
	require.Equal(t, json.Number("1"), rc.nextChange().Record["id"])
}

// TestStandin_JoinTimeoutAndStaleLifecycle delays the server's join
// handling beyond the client's join timeout. The client leaves and rejoins
// with new join_refs while the server is still busy; the server then
// answers every old join, and closes each old channel instance on its
// phx_leave (phx_close with the old join_ref). Those stale replies,
// "Subscribed" messages and phx_close frames arrive after the rejoin and
// must not touch the current channel.
func TestStandin_JoinTimeoutAndStaleLifecycle(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			s := newStandin(t, realtimetest.Options{})
			s.srv.SetJoinDelay(1500 * time.Millisecond)
			cfg := s.config(vsn)
			cfg.JoinTimeout = 300 * time.Millisecond
			// The server reads nothing while it delays a join, heartbeats
			// included: keep the heartbeat out of the way.
			cfg.HeartbeatInterval = 5 * time.Second
			// Rejoin almost at once, so that the stale frames, which come
			// in a burst when the server catches up, find the client
			// waiting for a newer join rather than between joins.
			cfg.ReconnectInitial = 5 * time.Millisecond
			cfg.ReconnectMax = 20 * time.Millisecond
			rc := s.startClient(cfg, countersChannel())
			rc.eventually("a join timed out", func(st realtime.Stats) bool { return st.JoinErrors >= 1 })
			s.srv.SetJoinDelay(0)
			rc.nextReady("counters")

			st := rc.c.Stats()
			joins := st.Channels[0].Joins
			require.GreaterOrEqual(t, joins, uint64(2))
			require.EqualValues(t, joins-1, st.JoinErrors)
			for _, r := range rc.channelTransitions("counters", realtime.StateErrored) {
				require.Equal(t, "join_timeout", r, "only join timeouts; a stale phx_close or reply was applied")
			}
			require.Empty(t, st.Reconnects)
			// The server saw every timed-out join left, and closed those
			// instances with phx_close frames carrying their join_refs.
			require.Eventually(t, func() bool { return s.srv.Leaves() == int(joins-1) }, e2eWait, e2eTick)

			// The current instance is intact: still subscribed, and it
			// delivers.
			s.exec(`insert into public.rt_counters (id) values (7)`)
			require.Equal(t, json.Number("7"), rc.nextChange().Record["id"])
			st = rc.c.Stats()
			require.Equal(t, realtime.StateSubscribed, st.Channels[0].State)
			require.EqualValues(t, joins, st.Channels[0].Joins, "no further rejoin")
			require.EqualValues(t, 1, st.Channels[0].Ready)
			require.Equal(t, []string{"realtime:counters"}, s.srv.SubscribedTopics())
		})
	}
}

// TestStandin_DroppedSocketReconnects drops the socket while changes are
// streaming, with a close frame and abruptly (no close frame, 1006).
func TestStandin_DroppedSocketReconnects(t *testing.T) {
	cases := []struct {
		name   string
		drop   func(*realtimetest.Server)
		reason string
	}{
		{"close_frame", func(srv *realtimetest.Server) {
			srv.DropConnections(websocket.CloseInternalServerErr, "internal error")
		}, "close_1011"},
		{"killed", func(srv *realtimetest.Server) { srv.KillConnections() }, "connection_lost"},
	}
	for _, vsn := range vsns {
		for _, tc := range cases {
			t.Run(vsn+"/"+tc.name, func(t *testing.T) {
				s := newStandin(t, realtimetest.Options{})
				cfg := s.config(vsn)
				// No heartbeat write may race the drop: the reader alone
				// must notice it, so that the reason is deterministic.
				cfg.HeartbeatInterval = time.Minute
				rc := s.startClient(cfg, countersChannel())
				rc.nextReady("counters")
				joinRef1 := rc.c.Stats().Channels[0].JoinRef

				// Stream changes while the socket goes down.
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 1; ctx.Err() == nil; i++ {
						_, _ = s.db.Pool.Exec(ctx, `insert into public.rt_counters (id) values ($1)`, i)
						time.Sleep(5 * time.Millisecond)
					}
				}()
				defer func() { cancel(); wg.Wait() }()
				_, _ = rc.waitChange("a streamed change", func(*realtime.Change) bool { return true })
				tc.drop(s.srv.Server)

				// A new Ready arrives after the reconnect; changes before it
				// may have been lost (at-most-once), which is why it exists.
				skipped := rc.waitReady("counters")
				for _, ev := range skipped {
					_, isChange := ev.(*realtime.Change)
					require.True(t, isChange, "only changes before the new Ready, got %s", describe(ev))
				}
				cancel()
				wg.Wait()

				st := rc.c.Stats()
				require.EqualValues(t, 1, st.Reconnects[tc.reason], "reconnects %v", st.Reconnects)
				require.Len(t, st.Reconnects, 1, "reconnects %v", st.Reconnects)
				require.EqualValues(t, 2, st.Sessions)
				require.EqualValues(t, 2, st.Channels[0].Ready)
				require.NotEqual(t, joinRef1, st.Channels[0].JoinRef, "a rejoin needs a new join_ref")
				require.Equal(t, 2, s.srv.TotalConnections())

				s.exec(`insert into public.rt_counters (id) values (-1)`)
				_, _ = rc.waitChange("a change after the reconnect", func(c *realtime.Change) bool {
					return c.Record["id"] == json.Number("-1")
				})
			})
		}
	}
}

func TestStandin_StalledHeartbeatsReconnect(t *testing.T) {
	s := newStandin(t, realtimetest.Options{})
	cfg := s.config(realtime.VsnV2)
	cfg.HeartbeatInterval = 150 * time.Millisecond
	rc := s.startClient(cfg, countersChannel())
	rc.nextReady("counters")
	rc.eventually("answered heartbeat", func(st realtime.Stats) bool { return st.HeartbeatRTT > 0 })

	s.srv.StallHeartbeats(true)
	rc.eventually("heartbeat timeout detected", func(st realtime.Stats) bool {
		return st.Reconnects["heartbeat_timeout"] >= 1
	})
	s.srv.StallHeartbeats(false)
	rc.waitReady("counters")
	rc.eventually("subscribed on a new session", func(st realtime.Stats) bool {
		return st.Sessions >= 2 && st.Channels[0].State == realtime.StateSubscribed
	})
	st := rc.c.Stats()
	for reason := range st.Reconnects {
		require.Equal(t, "heartbeat_timeout", reason, "reconnects %v", st.Reconnects)
	}
	s.exec(`insert into public.rt_counters (id) values (3)`)
	_, _ = rc.waitChange("a change on the new session", func(c *realtime.Change) bool {
		return c.Record["id"] == json.Number("3")
	})
}

func TestStandin_SystemErrorResubscribes(t *testing.T) {
	t.Run("injected", func(t *testing.T) {
		const msg = "Subscribing to PostgreSQL failed: {:error, :timeout}"
		s := newStandin(t, realtimetest.Options{})
		rc := s.startClient(s.config(realtime.VsnV2), countersChannel())
		rc.nextReady("counters")
		joinRef1 := rc.c.Stats().Channels[0].JoinRef

		require.Equal(t, 1, s.srv.SendSystemError("counters", "postgres_changes", msg, false))
		rc.nextReady("counters")
		st := rc.c.Stats()
		require.NotEqual(t, joinRef1, st.Channels[0].JoinRef)
		require.EqualValues(t, 1, st.JoinErrors)
		require.EqualValues(t, 2, st.Channels[0].Ready)
		require.Empty(t, st.Reconnects)
		require.Equal(t, 1, s.srv.Leaves(), "the zombie channel is left before the rejoin")
		require.Equal(t, 2, s.srv.Joins())
		entries := rc.logged("postgres changes subscription failed")
		require.Len(t, entries, 1)
		require.Equal(t, msg, entries[0].ContextMap()["message"])

		s.exec(`insert into public.rt_counters (id) values (5)`)
		require.Equal(t, json.Number("5"), rc.nextChange().Record["id"])
	})

	t.Run("table_not_published", func(t *testing.T) {
		// Realtime refuses a subscription to a table outside the
		// publication with a postgres_changes system error and never
		// retries; the client does, until the table is published.
		s := newStandin(t, realtimetest.Options{})
		rc := s.startClient(s.config(realtime.VsnV2),
			realtime.ChannelSpec{Name: "late", Bindings: []realtime.Binding{{Event: "*", Schema: "public", Table: "rt_late"}}})
		rc.eventually("subscription refused and retried", func(st realtime.Stats) bool {
			return st.JoinErrors >= 2 && st.Channels[0].Joins >= 3
		})
		entries := rc.logged("postgres changes subscription failed")
		require.NotEmpty(t, entries)
		require.Contains(t, entries[0].ContextMap()["message"], "Unable to subscribe to changes with given parameters")
		require.Empty(t, rc.c.Stats().Reconnects)

		s.exec(`alter publication supabase_realtime add table public.rt_late`)
		rc.nextReady("late")
		s.exec(`insert into public.rt_late (id) values (11)`)
		c := rc.nextChange()
		require.Equal(t, "rt_late", c.Table)
		require.Equal(t, json.Number("11"), c.Record["id"])
	})
}

// TestStandin_RepeatedSubscribedIsReadyAgain: Realtime repeats
// "Subscribed to PostgreSQL" after CDC restarts and publication changes;
// each one is a Ready for the consumer, without a rejoin.
func TestStandin_RepeatedSubscribedIsReadyAgain(t *testing.T) {
	s := newStandin(t, realtimetest.Options{})
	rc := s.startClient(s.config(realtime.VsnV2), countersChannel())
	rc.nextReady("counters")
	for i := 0; i < 2; i++ {
		require.Equal(t, 1, s.srv.ResendSubscribed("counters"))
		rc.nextReady("counters")
	}
	st := rc.c.Stats()
	require.EqualValues(t, 3, st.Channels[0].Ready)
	require.EqualValues(t, 1, st.Channels[0].Joins)
	require.Equal(t, 1, s.srv.Joins())
}

// TestStandin_PhxErrorRejoins: a crashed server channel (phx_error with the
// current join_ref) is rejoined with a new join_ref on the same socket.
func TestStandin_PhxErrorRejoins(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			s := newStandin(t, realtimetest.Options{})
			rc := s.startClient(s.config(vsn), countersChannel())
			rc.nextReady("counters")
			joinRef1 := rc.c.Stats().Channels[0].JoinRef

			require.Equal(t, 1, s.srv.SendPhxError("counters"))
			rc.nextReady("counters")
			st := rc.c.Stats()
			require.NotEqual(t, joinRef1, st.Channels[0].JoinRef)
			require.Equal(t, []string{"channel_error"}, rc.channelTransitions("counters", realtime.StateErrored))
			require.Empty(t, st.Reconnects)
			require.Zero(t, st.JoinErrors, "a crashed channel is not a failed join")
			require.Equal(t, 2, s.srv.Joins())

			s.exec(`insert into public.rt_counters (id) values (4)`)
			require.Equal(t, json.Number("4"), rc.nextChange().Record["id"])
		})
	}
}

// userTokens hands out user JWTs for one user, valid for ttl (the first)
// and renewTTL (later ones; ttl if zero). With lazy set it keeps returning
// its current token until that has expired, as a careless provider would;
// otherwise every call mints a new token.
type userTokens struct {
	sub      string
	ttl      time.Duration
	renewTTL time.Duration
	lazy     bool

	mu     sync.Mutex
	tokens []string
	exp    time.Time
}

func (u *userTokens) Token(context.Context) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	if u.lazy && len(u.tokens) > 0 && now.Before(u.exp) {
		return u.tokens[len(u.tokens)-1], nil
	}
	ttl := u.ttl
	if len(u.tokens) > 0 && u.renewTTL > 0 {
		ttl = u.renewTTL
	}
	tok := pgtest.UserToken(u.sub, ttl)
	u.exp = time.Unix(now.Add(ttl).Unix(), 0) // exp has second resolution
	u.tokens = append(u.tokens, tok)
	return tok, nil
}

func (u *userTokens) issued() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.tokens...)
}

func TestStandin_TokenRefresh(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			const owner = "00000000-0000-0000-0000-0000000000aa"
			s := newStandin(t, realtimetest.Options{})
			mine := s.seedProject(owner)
			theirs := s.seedProject("00000000-0000-0000-0000-0000000000bb")
			tokens := &userTokens{sub: owner, ttl: 3 * time.Second}
			cfg := s.config(vsn)
			cfg.Tokens = tokens
			rc := s.startClient(cfg, runsChannel())
			rc.nextReady("runs")
			first := tokens.issued()[0]
			require.Equal(t, first, s.lastJoin("runs").AccessToken)

			// Before exp the client pushes a fresh token; the server never
			// replies, but re-subscribes with the new claims: Ready again.
			rc.nextReady("runs")
			require.GreaterOrEqual(t, s.srv.AccessTokenPushes(), 1)
			pushed, ok := s.srv.LastAccessToken("runs")
			require.True(t, ok)
			require.NotEqual(t, first, pushed)
			require.Contains(t, tokens.issued(), pushed)
			st := rc.c.Stats()
			require.Equal(t, 1, s.srv.Joins(), "a refresh must not rejoin")
			require.EqualValues(t, 2, st.Channels[0].Ready)
			require.Empty(t, st.Reconnects)
			require.Zero(t, st.JoinErrors)

			// The channel sees what the user may see (RLS): only runs of
			// the user's own project. Further refreshes may repeat Ready
			// meanwhile.
			s.insertRun(theirs, "running")
			own := s.insertRun(mine, "running")
			c, skipped := rc.waitChange("a change", func(*realtime.Change) bool { return true })
			require.Equal(t, own, c.Record["id"], "the first change must be the user's own run")
			for _, ev := range skipped {
				require.IsType(t, realtime.Ready{}, ev)
			}
		})
	}
}

func TestStandin_ExpiredTokenRejoinsWithFreshToken(t *testing.T) {
	const owner = "00000000-0000-0000-0000-0000000000cc"
	s := newStandin(t, realtimetest.Options{})
	p := s.seedProject(owner)
	tokens := &userTokens{sub: owner, ttl: 2 * time.Second, renewTTL: time.Hour, lazy: true}
	cfg := s.config(realtime.VsnV2)
	cfg.Tokens = tokens
	rc := s.startClient(cfg, runsChannel())
	rc.nextReady("runs")
	first := tokens.issued()[0]

	// The provider offers no fresh token before exp, so the server expires
	// the channel: system error, then phx_close. The rejoin asks the
	// provider again and gets a fresh token.
	rc.nextReady("runs")
	issued := tokens.issued()
	require.Len(t, issued, 2)
	require.Equal(t, issued[1], s.lastJoin("runs").AccessToken)
	require.NotEqual(t, first, issued[1])
	require.Zero(t, s.srv.AccessTokenPushes(), "nothing new to push before expiry")
	require.Equal(t, 2, s.srv.Joins())

	entries := rc.logged("server is shutting the channel down")
	require.Len(t, entries, 1)
	require.Contains(t, entries[0].ContextMap()["message"], "Token has expired")
	require.Equal(t, []string{"server_close"}, rc.channelTransitions("runs", realtime.StateErrored))
	st := rc.c.Stats()
	require.Empty(t, st.Reconnects, "the socket stays open")
	require.Zero(t, st.JoinErrors)
	require.Contains(t, st.Channels[0].LastError, "phx_close")

	run := s.insertRun(p, "running")
	require.Equal(t, run, rc.nextChange().Record["id"])
}

func TestStandin_ServerDisconnectReconnects(t *testing.T) {
	for _, code := range []int{websocket.CloseServiceRestart, websocket.CloseGoingAway} {
		name := map[int]string{websocket.CloseServiceRestart: "1012", websocket.CloseGoingAway: "1001"}[code]
		t.Run(name, func(t *testing.T) {
			s := newStandin(t, realtimetest.Options{})
			cfg := s.config(realtime.VsnV2)
			cfg.HeartbeatInterval = time.Minute // see TestStandin_DroppedSocketReconnects
			rc := s.startClient(cfg, countersChannel())
			rc.nextReady("counters")
			joinRef1 := rc.c.Stats().Channels[0].JoinRef

			s.srv.ServerDisconnect(code)
			rc.nextReady("counters")
			st := rc.c.Stats()
			require.Equal(t, map[string]uint64{"close_" + name: 1}, st.Reconnects)
			require.EqualValues(t, 2, st.Sessions)
			require.NotEqual(t, joinRef1, st.Channels[0].JoinRef)
			notices := rc.logged("system message")
			if code == websocket.CloseServiceRestart {
				require.Len(t, notices, 1)
				require.Equal(t, "Server requested disconnect", notices[0].ContextMap()["message"])
			} else {
				require.Empty(t, notices)
			}

			s.exec(`insert into public.rt_counters (id) values (9)`)
			require.Equal(t, json.Number("9"), rc.nextChange().Record["id"])
		})
	}
}

func TestStandin_TruncatedChangeIsIncomplete(t *testing.T) {
	s := newStandin(t, realtimetest.Options{})
	rc := s.startClient(s.config(realtime.VsnV2), countersChannel())
	rc.nextReady("counters")

	long := strings.Repeat("x", 200)
	s.srv.TruncateNext(1)
	s.exec(`insert into public.rt_counters (id, n, note) values (`+maxSafeIntPlus2+`, 42, $1)`, long)
	c := rc.nextChange()
	require.True(t, c.Incomplete)
	require.Equal(t, []string{realtimetest.ErrorPayloadTooLarge}, c.Errors)
	require.Equal(t, json.Number(maxSafeIntPlus2), c.Record["id"], "the primary key survives truncation")
	require.Equal(t, json.Number("42"), c.Record["n"])
	require.NotContains(t, c.Record, "note", "values over 64 bytes are cut")

	s.exec(`update public.rt_counters set n = 43 where id = ` + maxSafeIntPlus2)
	c = rc.nextChange()
	require.False(t, c.Incomplete)
	require.Equal(t, long, c.Record["note"])
}

// TestStandin_SlowConsumerGap stops reading Events while the database
// produces far more changes than the buffer holds. With no BufferWait the
// client drops them into a Gap at once instead of stalling its reader:
// heartbeats keep being answered and the session survives.
func TestStandin_SlowConsumerGap(t *testing.T) {
	const (
		buffer = 4
		total  = 300
	)
	s := newStandin(t, realtimetest.Options{})
	cfg := s.config(realtime.VsnV2)
	cfg.BufferSize = buffer
	cfg.BufferWait = -1 // drop at once
	cfg.HeartbeatInterval = 100 * time.Millisecond
	rc := s.startClient(cfg, countersChannel())
	rc.nextReady("counters")

	s.exec(`insert into public.rt_counters (id) select g from generate_series(1, $1::int) g`, total)
	rc.eventually("every change delivered or dropped", func(st realtime.Stats) bool {
		return st.ChangesDelivered+st.ChangesDropped == total
	})
	hb := s.srv.Heartbeats()
	require.Eventually(t, func() bool { return s.srv.Heartbeats() >= hb+3 }, e2eWait, e2eTick,
		"heartbeats continue while the consumer stalls")
	st := rc.c.Stats()
	require.EqualValues(t, buffer, st.ChangesDelivered)
	require.EqualValues(t, total-buffer, st.ChangesDropped)
	require.EqualValues(t, 1, st.Gaps)
	require.Empty(t, st.Reconnects, "a slow consumer must not cost the session")
	require.EqualValues(t, 1, st.Sessions)
	require.Positive(t, st.HeartbeatRTT)

	for i := 1; i <= buffer; i++ {
		require.Equal(t, number(i), rc.nextChange().Record["id"])
	}
	ev := rc.next()
	gap, ok := ev.(realtime.Gap)
	require.True(t, ok, "want Gap, got %s", describe(ev))
	require.Equal(t, realtime.Gap{Channel: "counters", Dropped: total - buffer, At: gap.At}, gap)
	require.False(t, gap.At.IsZero())

	s.exec(`insert into public.rt_counters (id) values (-5)`)
	require.Equal(t, json.Number("-5"), rc.nextChange().Record["id"])
}

func TestStandin_RejectedUpgradesAreRetried(t *testing.T) {
	cases := []struct {
		status int
		msg    string
	}{
		{401, "Token has expired"},
		{429, "Too many connected users"},
	}
	for _, tc := range cases {
		status := strconv.Itoa(tc.status)
		t.Run(status, func(t *testing.T) {
			s := newStandin(t, realtimetest.Options{ConnectErrorDelay: 50 * time.Millisecond})
			s.srv.RejectUpgrades(tc.status, tc.msg, 2)
			rc := s.startClient(s.config(realtime.VsnV2), countersChannel())
			rc.nextReady("counters")

			st := rc.c.Stats()
			require.Equal(t, map[string]uint64{"handshake_" + status: 2}, st.Reconnects)
			require.EqualValues(t, 1, st.Sessions)
			require.Equal(t, 2, s.srv.RefusedConnections())
			entries := rc.logged("realtime session ended; reconnecting")
			require.Len(t, entries, 2)
			for _, e := range entries {
				require.EqualValues(t, tc.status, e.ContextMap()["status_code"])
				var he *realtime.HandshakeError
				require.ErrorAs(t, loggedError(t, e), &he)
				require.Equal(t, &realtime.HandshakeError{StatusCode: tc.status, Message: tc.msg}, he)
			}
		})
	}
}
