package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

const (
	// maxFrameBytes bounds one inbound frame. Realtime truncates rows above
	// 1 MiB (§3.4), so frames stay well below this.
	maxFrameBytes = 32 << 20
	// writeWait bounds every websocket write.
	writeWait = 10 * time.Second
	// closeGrace bounds the wait for the server's close echo on shutdown.
	closeGrace = 2 * time.Second
	// healthySessionAge: a session that lasted this long resets the
	// reconnect backoff even if no channel became ready.
	healthySessionAge = time.Minute
	// inboundBuffer is the capacity of the reader-to-controller channel.
	inboundBuffer = 256
)

// Errors reported by the client.
var (
	// ErrHeartbeatTimeout ends a session whose heartbeat was not answered
	// before the next one was due.
	ErrHeartbeatTimeout = errors.New("realtime: heartbeat timeout")
	// ErrAlreadyRun is returned by a second call to Run.
	ErrAlreadyRun = errors.New("realtime: Run may be called only once")
)

// HandshakeError is a websocket upgrade rejected by the server with an HTTP
// status, e.g. 401 "API key is missing" or 429 "Too many connected users"
// (§1.4).
type HandshakeError struct {
	StatusCode int
	// Message is the server's {"error": ...} text, the raw body, or the
	// status text when the body is empty.
	Message string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("realtime: handshake rejected: HTTP %d: %s", e.StatusCode, e.Message)
}

// Client is a Supabase Realtime postgres_changes client. Create it with
// [New], start it with [Run] and consume [Client.Events]. Stats may be called
// concurrently with Run; everything else belongs to the goroutine running
// Run.
type Client struct {
	cfg      Config
	url      *url.URL
	log      *zap.Logger
	channels []*channel
	byTopic  map[string]*channel
	out      *outbox
	stats    *statsRecorder
	started  atomic.Bool
	refs     atomic.Uint64 // ref counter; shared by the controller and the writer

	// socketState is only touched by the goroutine running Run.
	socketState State
}

// New validates cfg and the channel specs and returns a Client. Errors are
// *ConfigError values naming the offending field.
func New(cfg Config, channels ...ChannelSpec) (*Client, error) {
	cfg, specs, u, err := normalize(cfg, channels)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.Named("realtime")
	c := &Client{
		cfg:         cfg,
		url:         u,
		log:         log,
		byTopic:     make(map[string]*channel, len(specs)),
		out:         newOutbox(cfg.BufferSize, cfg.BufferWait),
		stats:       newStatsRecorder(specs),
		socketState: StateDisconnected,
	}
	for i, spec := range specs {
		ch := newChannel(c, i, spec)
		c.channels = append(c.channels, ch)
		c.byTopic[ch.topic] = ch
	}
	return c, nil
}

// Events returns the channel on which *Change, Ready and Gap events are
// delivered. Its capacity is Config.BufferSize. It is closed when Run
// returns.
func (c *Client) Events() <-chan Event { return c.out.events }

// Stats returns a snapshot of the client's state and counters. It is safe
// for concurrent use.
func (c *Client) Stats() Stats { return c.stats.snapshot() }

// Run connects, joins every channel and keeps them joined, reconnecting with
// backoff, until ctx is done. On cancellation it leaves every channel, closes
// the socket with code 1000 and returns nil after every goroutine it started
// has exited. Events is closed when Run returns. Run may be called once.
func (c *Client) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	defer close(c.out.events)
	defer c.setSocketState(StateDisconnected, "shutdown")
	c.out.done = ctx.Done()

	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(c.cfg.ReconnectInitial),
		backoff.WithMaxInterval(c.cfg.ReconnectMax),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxElapsedTime(0),
	)
	c.log.Info("starting realtime client",
		zap.String(logKeyURL, redactURL(c.url)), zap.String(logKeyVsn, c.cfg.Vsn), zap.Int("channels", len(c.channels)))
	for attempt := 1; ; attempt++ {
		res := c.runOnce(ctx)
		if ctx.Err() != nil {
			c.log.Info("realtime client stopped")
			return nil
		}
		if res.healthy {
			bo.Reset()
			attempt = 1
		}
		wait := bo.NextBackOff()
		c.stats.update(func(r *statsRecorder) {
			r.reconnects[res.reason]++
			if res.err != nil {
				r.lastError = res.err.Error()
			}
		})
		fields := []zap.Field{
			zap.String(logKeyReason, res.reason), zap.Error(res.err),
			zap.Duration(logKeyBackoff, wait), zap.Int(logKeyAttempt, attempt),
		}
		if res.uptime > 0 {
			fields = append(fields, zap.Duration(logKeyUptime, res.uptime))
		}
		var he *HandshakeError
		if errors.As(res.err, &he) {
			fields = append(fields, zap.Int(logKeyStatusCode, he.StatusCode))
		}
		c.log.Warn("realtime session ended; reconnecting", fields...)
		if !c.sleep(ctx, wait) {
			c.log.Info("realtime client stopped")
			return nil
		}
	}
}

// sessionResult says why a session (or a dial) ended.
type sessionResult struct {
	reason  string
	err     error
	healthy bool
	uptime  time.Duration // zero if the socket never opened
}

func (c *Client) runOnce(ctx context.Context) sessionResult {
	c.setSocketState(StateConnecting, "")
	conn, err := c.dial(ctx)
	if err != nil {
		c.setSocketState(StateDisconnected, "dial_error")
		reason := "dial_error"
		var he *HandshakeError
		if errors.As(err, &he) {
			reason = fmt.Sprintf("handshake_%d", he.StatusCode)
		}
		return sessionResult{reason: reason, err: err}
	}
	s := newSession(c, conn)
	res := s.run(ctx)
	for _, ch := range c.channels {
		ch.sessionEnded(res.reason)
	}
	c.setSocketState(StateDisconnected, res.reason)
	return res
}

// dial opens the websocket. Handshake rejections become *HandshakeError.
func (c *Client) dial(ctx context.Context) (*websocket.Conn, error) {
	conn, resp, err := c.cfg.Dialer.DialContext(ctx, c.url.String(), nil)
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			return nil, handshakeError(resp)
		}
		return nil, redact(fmt.Errorf("dial %s: %w", redactURL(c.url), err), c.cfg.APIKey)
	}
	conn.SetReadLimit(maxFrameBytes)
	return conn, nil
}

// handshakeError builds a HandshakeError from a rejected upgrade response.
func handshakeError(resp *http.Response) *HandshakeError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &HandshakeError{StatusCode: resp.StatusCode}
	var msg struct {
		Error string `json:"error"`
	}
	switch trimmed := strings.TrimSpace(string(body)); {
	case json.Unmarshal(body, &msg) == nil && msg.Error != "":
		e.Message = msg.Error
	case trimmed != "":
		if len(trimmed) > 200 {
			trimmed = trimmed[:200] + "…"
		}
		e.Message = trimmed
	default:
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// sleep waits d while still delivering pending Ready/Gap events. It reports
// false if ctx ended.
func (c *Client) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		evCh, ev := c.out.sendCase()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case evCh <- ev:
			c.out.popFront()
		}
	}
}

func (c *Client) setSocketState(to State, reason string) {
	from := c.socketState
	if from == to {
		return
	}
	c.socketState = to
	now := time.Now()
	c.stats.update(func(r *statsRecorder) {
		r.state = to
		switch to {
		case StateConnected:
			r.connectedAt = now
			r.sessions++
		case StateDisconnected:
			r.connectedAt = time.Time{}
		}
	})
	if c.cfg.OnStateChange != nil {
		c.cfg.OnStateChange(StateChange{From: from, To: to, Reason: reason, At: now})
	}
}

// token asks the TokenProvider for the current token, bounded by the join
// timeout.
func (c *Client) token(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.JoinTimeout)
	defer cancel()
	tok, err := c.cfg.Tokens.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("get access token: %w", err)
	}
	return tok, nil
}
