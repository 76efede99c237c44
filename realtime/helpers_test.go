package realtime

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// waitTimeout bounds every wait in the tests; generous because the machine
// is shared and tests run under -race.
const waitTimeout = 15 * time.Second

const testAPIKey = "test-apikey-0123456789-secret"

// TestMain stops the shared PostgreSQL cluster the stand-in tests use.
// Goroutine leaks are checked per test instead of per package: by
// startClient and by the stand-in environment (see standin_test.go), after
// Run has returned and the servers are closed.
func TestMain(m *testing.M) { pgtest.Main(m) }

// harness runs a Client against a fakeServer.
type harness struct {
	t       *testing.T
	srv     *fakeServer
	c       *Client
	cancel  context.CancelFunc
	runErr  chan error
	logs    *observer.ObservedLogs
	secrets *secretList
}

// secretList collects strings that must never appear in logs.
type secretList struct {
	mu   sync.Mutex
	list []string
}

func (s *secretList) add(v string) {
	s.mu.Lock()
	s.list = append(s.list, v)
	s.mu.Unlock()
}

func (s *secretList) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.list...)
}

// testConfig returns a config with short intervals for srv.
func testConfig(srv *fakeServer) Config {
	return Config{
		URL:               srv.URL(),
		APIKey:            testAPIKey,
		HeartbeatInterval: 500 * time.Millisecond,
		JoinTimeout:       5 * time.Second,
		ReconnectInitial:  20 * time.Millisecond,
		ReconnectMax:      200 * time.Millisecond,
	}
}

func dbChannel() ChannelSpec {
	return ChannelSpec{Name: "db", Bindings: []Binding{{Event: "*", Schema: "public", Table: "workflow_runs"}}}
}

// startClient builds a Client from cfg (Logger replaced by an observer) and
// runs it until the test ends. Cleanup cancels Run, requires it to return
// nil, and checks that no secret was logged.
func startClient(t *testing.T, srv *fakeServer, cfg Config, specs ...ChannelSpec) *harness {
	t.Helper()
	leaks := goleak.IgnoreCurrent()
	core, logs := observer.New(zapcore.DebugLevel)
	cfg.Logger = zap.New(core)
	h := &harness{t: t, srv: srv, logs: logs, runErr: make(chan error, 1), secrets: &secretList{}}
	h.secrets.add(cfg.APIKey)
	if len(specs) == 0 {
		specs = []ChannelSpec{dbChannel()}
	}
	c, err := New(cfg, specs...)
	require.NoError(t, err)
	h.c = c
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.runErr <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.runErr:
			require.NoError(t, err)
		case <-time.After(waitTimeout):
			t.Fatal("Run did not return after cancel")
		}
		h.checkNoSecretsLogged()
		// Run has returned; once the fake server is gone too, nothing
		// started since startClient may be left running.
		srv.close()
		goleak.VerifyNone(t, leaks)
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("%s %s %v", e.Level, e.Message, e.ContextMap())
			}
		}
	})
	return h
}

func (h *harness) checkNoSecretsLogged() {
	h.t.Helper()
	for _, e := range h.logs.All() {
		text := e.Message + " " + fmt.Sprint(e.ContextMap())
		for _, s := range h.secrets.all() {
			if strings.Contains(text, s) {
				h.t.Errorf("secret %q logged in %q", s, text)
			}
		}
	}
}

// stop cancels Run and waits for it to return.
func (h *harness) stop() error {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.runErr:
		h.runErr <- err // for the cleanup
		return err
	case <-time.After(waitTimeout):
		h.t.Fatal("Run did not return after cancel")
		return nil
	}
}

// next returns the next event.
func (h *harness) next() Event {
	h.t.Helper()
	select {
	case ev, ok := <-h.c.Events():
		require.True(h.t, ok, "events channel closed")
		return ev
	case <-time.After(waitTimeout):
		h.t.Fatal("timed out waiting for an event")
		return nil
	}
}

// nextReady requires the next event to be Ready for channel.
func (h *harness) nextReady(channel string) Ready {
	h.t.Helper()
	ev := h.next()
	r, ok := ev.(Ready)
	require.True(h.t, ok, "want Ready, got %#v", ev)
	require.Equal(h.t, channel, r.Channel)
	return r
}

// nextChange requires the next event to be a *Change.
func (h *harness) nextChange() *Change {
	h.t.Helper()
	ev := h.next()
	c, ok := ev.(*Change)
	require.True(h.t, ok, "want *Change, got %#v", ev)
	return c
}

// eventually waits for cond on the client's stats.
func (h *harness) eventually(what string, cond func(Stats) bool) {
	h.t.Helper()
	require.Eventually(h.t, func() bool { return cond(h.c.Stats()) }, waitTimeout, 5*time.Millisecond, what)
}

// logged reports whether an entry with message msg was logged.
func (h *harness) logged(msg string) []observer.LoggedEntry {
	return h.logs.FilterMessage(msg).All()
}

// joinOf waits for the next phx_join on fc and checks its refs.
func joinOf(t *testing.T, fc *fakeConn) clientMsg {
	t.Helper()
	m := fc.waitMsg(t, "phx_join", isEvent("phx_join"))
	require.NotEmpty(t, m.ref(), "join ref")
	require.Equal(t, m.ref(), m.joinRef(), "join_ref must equal the join's ref")
	return m
}

// idsOf returns the ids the fake server assigns to the bindings of join m.
func idsOf(m clientMsg) []int64 {
	var ids []int64
	for _, b := range joinBindings(m) {
		ids = append(ids, bindingID(b))
	}
	return ids
}

// insertData is a postgres_changes data object for an INSERT of id.
func insertData(table string, id any) map[string]any {
	return map[string]any{
		"schema": "public", "table": table, "type": "INSERT",
		"commit_timestamp": "2026-01-01T00:00:00.000Z",
		"columns":          []any{map[string]any{"name": "id", "type": "int8"}},
		"record":           map[string]any{"id": id}, "errors": nil,
	}
}

// tokenSource is a TokenProvider returning a new token on every call.
type tokenSource struct {
	mu    sync.Mutex
	calls int
	make  func(n int) string
	seen  *secretList
}

func (s *tokenSource) Token(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	tok := s.make(s.calls)
	if s.seen != nil {
		s.seen.add(tok)
	}
	return tok, nil
}

// shortJWT returns an HS256 JWT with role, iat now and exp after ttl.
func shortJWT(t testing.TB, n int, ttl time.Duration) string {
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"role": "service_role", "iat": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": fmt.Sprint(n),
	}).SignedString([]byte("test-secret"))
	require.NoError(t, err)
	return tok
}
