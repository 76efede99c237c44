package realtimetest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// Defaults for Options fields left zero.
const (
	DefaultIdleTimeout      = 60 * time.Second
	DefaultMaxRecordBytes   = 1024 * 1024
	DefaultResubscribeDelay = 100 * time.Millisecond
	DefaultTokenCheckPeriod = 5 * time.Minute
	DefaultOutboundBytes    = 50 << 20
	DefaultPollInterval     = 100 * time.Millisecond
	DefaultPollMaxChanges   = 100
	DefaultRateTick         = 5 * time.Second
	DefaultRateWindowTicks  = 12
	maxInboundFrameBytes    = 5_000_000
	closeHandshakeTimeout   = 2 * time.Second
	writeTimeout            = 10 * time.Second
)

// Options configures a Server. Only JWTSecret is required.
type Options struct {
	// JWTSecret verifies the HS256/384/512 JWTs of sockets (apikey) and
	// channels (access_token).
	JWTSecret string
	// JWKS, if set, also verifies ES256 and RS256 JWTs with the keys of the
	// project's JWKS, by kid (projects with asymmetric signing keys).
	JWKS KeyLookup
	// IdleTimeout closes a connection from which nothing was received for
	// this long. Defaults to 60s, like Phoenix.
	IdleTimeout time.Duration
	// ConnectErrorDelay is slept before a refused handshake is answered
	// (Realtime's CONNECT_ERROR_BACKOFF_MS is 2s). Defaults to 0.
	ConnectErrorDelay time.Duration
	// JoinErrorDelay is slept before every join error reply (Realtime's
	// CHANNEL_ERROR_BACKOFF_MS is 5s). The socket processes nothing else
	// meanwhile, like the real transport. Defaults to 0.
	JoinErrorDelay time.Duration
	// SubscribeDelay is the time between the join reply and
	// "Subscribed to PostgreSQL"; changes polled in between (see
	// PollInterval) are not delivered to the channel. Defaults to 0
	// (Realtime: up to seconds).
	SubscribeDelay time.Duration
	// ResubscribeDelay is the time between an accepted access_token refresh
	// and the repeated "Subscribed to PostgreSQL" (Realtime: 1-3s).
	// Defaults to 100ms; negative means immediately.
	ResubscribeDelay time.Duration
	// TokenCheckPeriod caps the interval at which a joined channel re-checks
	// its access token. Defaults to 5 minutes, like Realtime.
	TokenCheckPeriod time.Duration
	// MaxRecordBytes is the size above which a change is delivered truncated
	// with "Error 413: Payload Too Large". Defaults to 1 MiB.
	MaxRecordBytes int
	// OutboundBytes is how many bytes of frames may wait to be written to
	// one connection; a client that falls further behind is disconnected
	// abruptly, as Realtime kills a transport process whose heap exceeds
	// WEBSOCKET_MAX_HEAP_SIZE. Defaults to 50 MiB, Realtime's default.
	OutboundBytes int
	// PollInterval is Realtime's poll_interval_ms: a CDC hands changes to
	// subscribers the way Realtime's replication poller reads its slot, in
	// polls of at most PollMaxChanges changes, in commit order, while the
	// rest waits in the replication stream. As in Realtime, a poll that
	// delivered (or skipped) changes is followed at once by the next one;
	// after a poll whose changes had no subscriber the next comes
	// PollInterval plus 50-100ms later, and after an empty poll 5 ×
	// PollInterval later (so an idle server picks a new change up within
	// 500ms by default). Defaults to 100ms, Realtime's default;
	// negative turns polling off: changes are delivered as they are
	// decoded, and MaxEventsPerSecond applies per transaction. Changes
	// given to Publish are never polled, counted or skipped.
	PollInterval time.Duration
	// PollMaxChanges is Realtime's poll_max_changes: a poll stops reading
	// at the first commit at which it holds this many changes, so it always
	// ends on a transaction boundary and one large transaction comes in a
	// single poll (pg_logical_slot_get_changes' upto_nchanges). Defaults to
	// 100, Realtime's default.
	PollMaxChanges int
	// PollQueryTime models the duration of Realtime's list_changes query,
	// which is what bounds its throughput: every poll waits this long before
	// it reads. Defaults to 0 (polls cost only the stand-in's own work);
	// 100ms with single-row transactions caps delivery at about 1,000
	// changes per second. Ignored with polling off.
	PollQueryTime time.Duration
	// MaxEventsPerSecond is the tenant's max_events_per_second quota for
	// postgres_changes (Realtime's default is 100; hosted Free 100, Pro
	// 500). Every delivered change counts once per subscription it goes
	// to; the rate is the average over the last RateWindowTicks ticks of
	// RateTick. When a tick finds the average at or over the limit, the
	// server logs "MessagePerSecondRateLimitReached: Too many postgres
	// changes messages per second" and, until a tick finds it below, skips
	// every poll's changes whole: they are consumed and no client is told
	// (SkippedChanges counts them). Defaults to 0: no quota.
	MaxEventsPerSecond int
	// RateTick is the rate counter's tick. Defaults to 5s, as in Realtime.
	RateTick time.Duration
	// RateWindowTicks is how many ticks the average spans at most (fewer
	// while the counter is young). Defaults to 12, as in Realtime (60s).
	RateWindowTicks int
	// OnPoll, if set, is called after every poll of a CDC, from the CDC's
	// goroutine; it must not block.
	OnPoll func(Poll)
	// DB is an optional pool on the database a CDC streams from; when set,
	// StartCDC uses it for catalog, row-visibility and subscription checks
	// instead of opening its own. The server never closes it.
	DB *pgxpool.Pool
	// Logger receives debug logs and the rate limit's error; nil discards
	// them.
	Logger *zap.Logger
	// Now is the clock for token expiry and for the ticks of the event rate
	// counter (MaxEventsPerSecond); nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	switch {
	case o.ResubscribeDelay == 0:
		o.ResubscribeDelay = DefaultResubscribeDelay
	case o.ResubscribeDelay < 0:
		o.ResubscribeDelay = 0
	}
	if o.TokenCheckPeriod <= 0 {
		o.TokenCheckPeriod = DefaultTokenCheckPeriod
	}
	if o.OutboundBytes <= 0 {
		o.OutboundBytes = DefaultOutboundBytes
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.PollMaxChanges <= 0 {
		o.PollMaxChanges = DefaultPollMaxChanges
	}
	if o.RateTick <= 0 {
		o.RateTick = DefaultRateTick
	}
	if o.RateWindowTicks <= 0 {
		o.RateWindowTicks = DefaultRateWindowTicks
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Server is a fake Supabase Realtime server for postgres_changes. It speaks
// the Phoenix websocket protocol (serializer 1.0.0 and 2.0.0), validates
// JWTs, manages channels and delivers changes given to Publish or decoded
// from PostgreSQL by a CDC.
//
// Server implements http.Handler for any path ending in "/websocket" (mount
// it at /realtime/v1/websocket and/or /socket/websocket). It is safe for
// concurrent use. Each connection runs a reader in the ServeHTTP goroutine
// and a writer goroutine; Close ends them all.
type Server struct {
	opts     Options
	log      *zap.Logger
	secret   []byte
	upgrader websocket.Upgrader

	life lifecycle // tracks session and timer goroutines

	mu       sync.Mutex // guards sessions
	sessions map[*session]struct{}

	// deliverMu serialises deliveries so changes reach every client in the
	// order they were published; it guards scratch.
	deliverMu sync.Mutex
	scratch   dispatchScratch

	backendMu sync.RWMutex
	backend   backend // set by a CDC; nil for Publish-only servers

	faults faults
	stats  stats
	rate   *rateCounter // postgres_changes events per second, against MaxEventsPerSecond
	polls  pollStats
}

// NewServer returns a Server configured by opts.
func NewServer(opts Options) *Server {
	opts = opts.withDefaults()
	log := opts.Logger.Named("realtimetest")
	return &Server{
		opts:   opts,
		log:    log,
		rate:   newRateCounter(opts.MaxEventsPerSecond, opts.RateTick, opts.RateWindowTicks, opts.Now, log),
		secret: []byte(opts.JWTSecret),
		upgrader: websocket.Upgrader{
			CheckOrigin:       func(*http.Request) bool { return true },
			EnableCompression: false,
		},
		sessions: make(map[*session]struct{}),
	}
}

// ServeHTTP negotiates the serializer, authenticates the apikey and upgrades
// the connection, then serves it until it closes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/websocket") {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	cdc, ok := negotiateCodec(q.Get("vsn"))
	if !ok {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if status, msg, ok := s.faults.takeUpgradeRejection(); ok {
		s.refuseHandshake(w, r, status, msg)
		return
	}
	token, present := r.Header.Get("x-api-key"), r.Header.Get("x-api-key") != ""
	if !present {
		if vals, ok := q["apikey"]; ok {
			token, present = vals[0], true
		}
	}
	if !present {
		status, msg := (&tokenError{Kind: tokenMissing}).httpStatusAndMessage()
		s.refuseHandshake(w, r, status, msg)
		return
	}
	claims, terr := verifyTokenKeys(token, s.secret, s.opts.JWKS, s.opts.Now())
	if terr != nil {
		status, msg := terr.httpStatusAndMessage()
		s.refuseHandshake(w, r, status, msg)
		return
	}
	if !s.life.enter() {
		http.Error(w, `{"error":"Error connecting to Realtime"}`, http.StatusServiceUnavailable)
		return
	}
	defer s.life.leave()

	conn, err := s.upgrader.Upgrade(withBatching(w), r, nil)
	if err != nil {
		s.log.Debug("upgrade failed", zap.Error(err))
		return // the upgrader has answered the request
	}
	sess := newSession(s, conn, cdc, token, claims)
	s.addSession(sess)
	defer s.removeSession(sess)
	sess.run()
}

// refuseHandshake answers a failed connect like Realtime's
// UserSocket.handle_error/2, after the configured backoff.
func (s *Server) refuseHandshake(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.stats.refused.Add(1)
	if d := s.opts.ConnectErrorDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Close disconnects every client abruptly, stops all timers and waits for
// the server's goroutines. The handler refuses connections afterwards.
func (s *Server) Close() {
	s.life.close()
	for _, sess := range s.snapshotSessions() {
		sess.kill()
	}
	s.life.wait()
}

func (s *Server) addSession(sess *session) {
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	s.stats.connections.Add(1)
}

func (s *Server) removeSession(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// appendSessions appends the current sessions to dst.
func (s *Server) appendSessions(dst []*session) []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		dst = append(dst, sess)
	}
	return dst
}

func (s *Server) snapshotSessions() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		out = append(out, sess)
	}
	return out
}

// afterFunc runs f after d in a goroutine tracked by the server, unless the
// server is closed by then. The returned timer may be stopped.
func (s *Server) afterFunc(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		if !s.life.enter() {
			return
		}
		defer s.life.leave()
		f()
	})
}

// sleep waits for d unless done is closed first; it reports whether the
// full duration elapsed.
func sleep(d time.Duration, done <-chan struct{}) bool {
	if d <= 0 {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// backend is the database side of a server: subscription validation and
// per-role row authorization. The CDC implements it.
type backend interface {
	// validateSubscription returns the postgres_changes system error message
	// for a binding that cannot be subscribed with the given claims, or "".
	validateSubscription(ctx context.Context, b binding, claims tokenClaims) string
	// authorize reports what a subscriber with the given claims may see of a
	// change decoded from the WAL.
	authorize(ctx context.Context, c *Change, claims tokenClaims) access
}

func (s *Server) setBackend(b backend) {
	s.backendMu.Lock()
	s.backend = b
	s.backendMu.Unlock()
}

// clearBackend detaches b if it is still the server's backend.
func (s *Server) clearBackend(b backend) {
	s.backendMu.Lock()
	if s.backend == b {
		s.backend = nil
	}
	s.backendMu.Unlock()
}

func (s *Server) currentBackend() backend {
	s.backendMu.RLock()
	defer s.backendMu.RUnlock()
	return s.backend
}

// lifecycle counts running goroutines and refuses new ones once closed.
type lifecycle struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (l *lifecycle) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.wg.Add(1)
	return true
}

func (l *lifecycle) leave() { l.wg.Done() }

func (l *lifecycle) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

func (l *lifecycle) wait() { l.wg.Wait() }
