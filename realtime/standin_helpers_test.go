package realtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/realtime"
	"github.com/meshhook/meshhook-alerts/realtime/realtimetest"
)

// e2eWait bounds every wait in the stand-in tests. It is generous because
// the machine is shared and the tests run under -race; no test measures
// speed.
const e2eWait = 20 * time.Second

// e2eTick is the polling period of require.Eventually.
const e2eTick = 10 * time.Millisecond

// testDDL adds the tables the tests need besides MeshHook's workflow_runs:
// rt_counters (int8 values beyond float64 precision, a long text column for
// truncation) in the publication, and rt_late, which is published only by
// the test that needs it.
const testDDL = `
create table public.rt_counters (id bigint primary key, n int8, note text);
alter publication supabase_realtime add table public.rt_counters;
create table public.rt_late (id bigint primary key);
`

// standin is a real database streamed by logical decoding (CDC) into the
// Realtime stand-in, which the real client talks to over loopback.
type standin struct {
	t   *testing.T
	db  *pgtest.DB
	srv *realtimetest.TestServer
	cdc *realtimetest.CDC
}

// newStandin prepares a fresh database, a stand-in server configured by
// opts and a CDC feeding it. When the test ends, after the client, CDC and
// server are closed, it verifies that no goroutine started by the test is
// left.
func newStandin(t *testing.T, opts realtimetest.Options) *standin {
	t.Helper()
	db := pgtest.Shared(t).NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	_, err := db.Pool.Exec(ctx, testDDL)
	require.NoError(t, err)

	// Registered before the server, CDC and client so that it runs after
	// their cleanups (cleanups run last-in first-out).
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })

	opts.JWTSecret = pgtest.JWTSecret
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	srv := realtimetest.StartTestServer(t, opts)
	cdc, err := realtimetest.StartCDC(ctx, db.URL, srv.Server, realtimetest.CDCOptions{
		StatusInterval: 200 * time.Millisecond,
		Logger:         opts.Logger,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cdc.Close()) })
	return &standin{t: t, db: db, srv: srv, cdc: cdc}
}

// exec runs sql on the database as superuser.
func (s *standin) exec(sql string, args ...any) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	_, err := s.db.Pool.Exec(ctx, sql, args...)
	require.NoError(s.t, err, sql)
}

// queryString runs a query returning one text value.
func (s *standin) queryString(sql string, args ...any) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	var v string
	require.NoError(s.t, s.db.Pool.QueryRow(ctx, sql, args...).Scan(&v), sql)
	return v
}

// project is a MeshHook project with one workflow definition.
type project struct {
	id, workflow string
}

// seedProject creates a project owned by owner (a uuid) with a workflow.
func (s *standin) seedProject(owner string) project {
	s.t.Helper()
	p := project{id: s.queryString(`insert into public.projects (owner, name) values ($1, 'p') returning id::text`, owner)}
	p.workflow = s.queryString(`
		insert into public.workflow_definitions (project_id, slug, definition, name)
		values ($1, 'wf', '{}', 'Workflow') returning id::text`, p.id)
	return p
}

// insertRun inserts a workflow run and returns its id.
func (s *standin) insertRun(p project, status string) string {
	s.t.Helper()
	return s.queryString(`
		insert into public.workflow_runs (project_id, workflow_id, status)
		values ($1, $2, $3) returning id::text`, p.id, p.workflow, status)
}

// clientURL is the Config.URL for vsn: the hosted-style project URL
// (http://host, the client derives /realtime/v1/websocket) for 2.0.0 and
// the self-hosted socket URL (ws://host/socket/websocket) for 1.0.0, so
// both paths are exercised.
func (s *standin) clientURL(vsn string) string {
	if vsn == realtime.VsnV1 {
		return "ws" + strings.TrimPrefix(s.srv.HTTP.URL, "http") + "/socket/websocket"
	}
	return s.srv.HTTP.URL
}

// config is a client configuration for the stand-in with short intervals.
func (s *standin) config(vsn string) realtime.Config {
	return realtime.Config{
		URL:               s.clientURL(vsn),
		APIKey:            pgtest.ServiceRoleKey(),
		Vsn:               vsn,
		HeartbeatInterval: 250 * time.Millisecond,
		JoinTimeout:       5 * time.Second,
		ReconnectInitial:  20 * time.Millisecond,
		ReconnectMax:      200 * time.Millisecond,
	}
}

// runsChannel subscribes to every change of workflow_runs.
func runsChannel() realtime.ChannelSpec {
	return realtime.ChannelSpec{Name: "runs", Bindings: []realtime.Binding{{Event: "*", Schema: "public", Table: "workflow_runs"}}}
}

// countersChannel subscribes to every change of rt_counters.
func countersChannel() realtime.ChannelSpec {
	return realtime.ChannelSpec{Name: "counters", Bindings: []realtime.Binding{{Event: "*", Schema: "public", Table: "rt_counters"}}}
}

// rtClient is a realtime.Client running against the stand-in.
type rtClient struct {
	t      *testing.T
	c      *realtime.Client
	cancel context.CancelFunc
	runErr chan error
	logs   *observer.ObservedLogs

	mu          sync.Mutex
	transitions []realtime.StateChange
}

// startClient runs a client with cfg (its Logger and OnStateChange are
// replaced) until the test ends; cleanup cancels Run and requires it to
// return nil and close Events.
func (s *standin) startClient(cfg realtime.Config, specs ...realtime.ChannelSpec) *rtClient {
	t := s.t
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	cfg.Logger = zap.New(core)
	rc := &rtClient{t: t, logs: logs, runErr: make(chan error, 1)}
	cfg.OnStateChange = func(sc realtime.StateChange) {
		rc.mu.Lock()
		rc.transitions = append(rc.transitions, sc)
		rc.mu.Unlock()
	}
	c, err := realtime.New(cfg, specs...)
	require.NoError(t, err)
	rc.c = c
	ctx, cancel := context.WithCancel(context.Background())
	rc.cancel = cancel
	go func() { rc.runErr <- c.Run(ctx) }()
	t.Cleanup(func() {
		require.NoError(t, rc.stop())
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("client log: %s %s %v", e.Level, e.Message, e.ContextMap())
			}
		}
	})
	return rc
}

// stop cancels Run, waits for it to return and drains Events until it is
// closed. It may be called more than once.
func (rc *rtClient) stop() error {
	rc.t.Helper()
	rc.cancel()
	var err error
	select {
	case err = <-rc.runErr:
		rc.runErr <- err
	case <-time.After(e2eWait):
		rc.t.Fatal("Run did not return after cancel")
	}
	for range rc.c.Events() {
	}
	return err
}

// next returns the next event.
func (rc *rtClient) next() realtime.Event {
	rc.t.Helper()
	select {
	case ev, ok := <-rc.c.Events():
		require.True(rc.t, ok, "Events closed")
		return ev
	case <-time.After(e2eWait):
		rc.t.Fatalf("no event within %s; stats %+v", e2eWait, rc.c.Stats())
		return nil
	}
}

// nextReady requires the next event to be Ready for channel.
func (rc *rtClient) nextReady(channel string) realtime.Ready {
	rc.t.Helper()
	ev := rc.next()
	r, ok := ev.(realtime.Ready)
	require.True(rc.t, ok, "want Ready for %q, got %s", channel, describe(ev))
	require.Equal(rc.t, channel, r.Channel)
	return r
}

// nextChange requires the next event to be a *Change.
func (rc *rtClient) nextChange() *realtime.Change {
	rc.t.Helper()
	ev := rc.next()
	c, ok := ev.(*realtime.Change)
	require.True(rc.t, ok, "want *Change, got %s", describe(ev))
	return c
}

// waitChange skips events until a change for which match returns true.
// Earlier changes and Ready/Gap events are returned as skipped.
func (rc *rtClient) waitChange(what string, match func(*realtime.Change) bool) (*realtime.Change, []realtime.Event) {
	rc.t.Helper()
	var skipped []realtime.Event
	deadline := time.After(e2eWait)
	for {
		select {
		case ev, ok := <-rc.c.Events():
			require.True(rc.t, ok, "Events closed while waiting for %s", what)
			if c, isChange := ev.(*realtime.Change); isChange && match(c) {
				return c, skipped
			}
			skipped = append(skipped, ev)
		case <-deadline:
			rc.t.Fatalf("no %s within %s; skipped %d events; stats %+v", what, e2eWait, len(skipped), rc.c.Stats())
			return nil, nil
		}
	}
}

// waitReady skips events until a Ready for channel and returns the skipped ones.
func (rc *rtClient) waitReady(channel string) []realtime.Event {
	rc.t.Helper()
	var skipped []realtime.Event
	deadline := time.After(e2eWait)
	for {
		select {
		case ev, ok := <-rc.c.Events():
			require.True(rc.t, ok, "Events closed while waiting for Ready")
			if r, isReady := ev.(realtime.Ready); isReady && r.Channel == channel {
				return skipped
			}
			skipped = append(skipped, ev)
		case <-deadline:
			rc.t.Fatalf("no Ready for %q within %s; stats %+v", channel, e2eWait, rc.c.Stats())
			return nil
		}
	}
}

// eventually waits for cond on the client's stats.
func (rc *rtClient) eventually(what string, cond func(realtime.Stats) bool) {
	rc.t.Helper()
	require.Eventually(rc.t, func() bool { return cond(rc.c.Stats()) }, e2eWait, e2eTick, what)
}

// channelTransitions returns the reasons of channel's state transitions
// into state to.
func (rc *rtClient) channelTransitions(channel string, to realtime.State) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, sc := range rc.transitions {
		if sc.Channel == channel && sc.To == to {
			out = append(out, sc.Reason)
		}
	}
	return out
}

// logged returns the entries logged with message msg.
func (rc *rtClient) logged(msg string) []observer.LoggedEntry {
	return rc.logs.FilterMessage(msg).All()
}

// loggedError returns the error logged in e's "error" field.
func loggedError(t *testing.T, e observer.LoggedEntry) error {
	t.Helper()
	for _, f := range e.Context {
		if f.Key == "error" {
			if err, ok := f.Interface.(error); ok {
				return err
			}
		}
	}
	t.Fatalf("no error field in %q %v", e.Message, e.ContextMap())
	return nil
}

// describe renders an event for failure messages.
func describe(ev realtime.Event) string {
	if c, ok := ev.(*realtime.Change); ok {
		return fmt.Sprintf("*Change%+v", *c)
	}
	return fmt.Sprintf("%T%+v", ev, ev)
}

// joinPayload is the part of a phx_join payload the tests check.
type joinPayload struct {
	AccessToken string `json:"access_token"`
	Config      struct {
		PostgresChanges []map[string]any `json:"postgres_changes"`
	} `json:"config"`
}

// lastJoin decodes the last phx_join payload the server received on channel.
func (s *standin) lastJoin(channel string) joinPayload {
	s.t.Helper()
	raw, ok := s.srv.LastJoinPayload(channel)
	require.True(s.t, ok, "no join on %q", channel)
	var p joinPayload
	require.NoError(s.t, json.Unmarshal(raw, &p))
	return p
}

// number is a json.Number for an integer literal.
func number(v any) json.Number { return json.Number(fmt.Sprint(v)) }
