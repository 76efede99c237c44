package realtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// errClientClose ends the writer after it sent the client's close frame.
var errClientClose = errors.New("realtime: client closed the socket")

// session is one websocket connection.
//
// It starts exactly two goroutines: readLoop, which reads, decodes and
// answers heartbeat replies, and writeLoop, which performs every write and
// owns the heartbeat ticker. The controlling loop (run) executes on the
// goroutine that called Client.Run and drives all channel state machines;
// it never blocks on the network, and hands changes to the consumer through
// the outbox, which waits at most Config.BufferWait for room before it
// drops them as a Gap (see outbox).
type session struct {
	c     *Client
	conn  *websocket.Conn
	vsn   string
	log   *zap.Logger
	start time.Time

	sendq sendQueue
	hb    heartbeatState
	// hbTimedOut is set by the writer before it sends the heartbeat-timeout
	// close frame, so that the server's close echo, which may reach the
	// reader first, is not mistaken for a server-initiated close.
	hbTimedOut atomic.Bool
	// lastRead is when the reader last read a frame (Unix nanoseconds).
	// While the consumer is slow the reader is paced by it, and a
	// heartbeat's reply can wait behind queued changes: frames still being
	// read prove the connection alive.
	lastRead atomic.Int64

	inbound   chan inbound
	done      chan struct{} // closed on teardown; stops reader and writer
	readerErr chan error    // 1-buffered; readLoop's result
	writerErr chan error    // 1-buffered; writeLoop's result
	wg        sync.WaitGroup

	timer        *time.Timer
	timerAt      time.Time
	reachedReady bool
	// socketTokenExpired is set when a channel authorized by the socket's
	// own token (an opaque sb_ key) lost it to expiry: only a new socket
	// brings a new token, so the session ends.
	socketTokenExpired error
}

// inbound is a decoded frame handed from the reader to the controller.
type inbound struct {
	frame  Frame
	change *decodedChange // set for postgres_changes
	at     time.Time
}

func newSession(c *Client, conn *websocket.Conn) *session {
	s := &session{
		c:         c,
		conn:      conn,
		vsn:       c.cfg.Vsn,
		log:       c.log,
		start:     time.Now(),
		inbound:   make(chan inbound, inboundBuffer),
		done:      make(chan struct{}),
		readerErr: make(chan error, 1),
		writerErr: make(chan error, 1),
		timer:     time.NewTimer(time.Hour),
	}
	s.timer.Stop()
	s.sendq.notify = make(chan struct{}, 1)
	return s
}

// nextRef returns the next ref. The counter lives in the Client so that a
// rejoin after a reconnect still gets a join_ref never used before.
func (s *session) nextRef() string { return formatRef(s.c.refs.Add(1)) }

// send encodes f and queues it for the writer. It never blocks.
func (s *session) send(f Frame) {
	b, err := EncodeFrame(s.vsn, f)
	if err != nil {
		s.log.Error("cannot encode frame", zap.String(logKeyTopic, f.Topic), zap.String(logKeyEvent, f.Event), zap.Error(err))
		return
	}
	s.sendq.push(b)
}

// run drives the session until the socket fails or ctx ends.
func (s *session) run(ctx context.Context) sessionResult {
	s.c.setSocketState(StateConnected, "")
	s.log.Info("realtime socket connected", zap.String(logKeyURL, redactURL(s.c.url)), zap.String(logKeyVsn, s.vsn))
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.readerErr <- s.readLoop()
	}()
	go func() {
		defer s.wg.Done()
		s.writerErr <- s.writeLoop()
	}()
	defer s.teardown()

	for _, ch := range s.c.channels {
		ch.join(ctx, s)
	}
	for {
		s.armTimer()
		evCh, ev := s.c.out.sendCase()
		select {
		case <-ctx.Done():
			s.shutdown()
			return sessionResult{reason: "shutdown", err: ctx.Err(), healthy: true}
		case m := <-s.inbound:
			s.handle(ctx, m)
			if err := s.socketTokenExpired; err != nil {
				s.log.Warn("the socket's token expired; reconnecting for a fresh one", zap.Error(err))
				s.shutdown()
				return s.result("socket_token_expired", err)
			}
		case err := <-s.readerErr:
			// Frames read before the failure are still queued: handle them
			// so that changes sent just before a server close are kept.
			s.drainInbound(ctx)
			if s.hbTimedOut.Load() {
				return s.result("heartbeat_timeout", ErrHeartbeatTimeout)
			}
			return s.result(readErrorReason(err), err)
		case err := <-s.writerErr:
			s.finishReading(ctx)
			reason := "write_error"
			if errors.Is(err, ErrHeartbeatTimeout) {
				reason = "heartbeat_timeout"
			}
			return s.result(reason, err)
		case now := <-s.timer.C:
			s.timerAt = time.Time{}
			s.onTimer(ctx, now)
		case evCh <- ev:
			s.c.out.popFront()
		}
	}
}

// finishReading closes the connection after the writer failed and handles
// whatever the reader still delivers until it exits.
func (s *session) finishReading(ctx context.Context) {
	_ = s.conn.Close()
	for {
		select {
		case m := <-s.inbound:
			s.handle(ctx, m)
		case <-s.readerErr:
			s.drainInbound(ctx)
			return
		}
	}
}

// drainInbound handles the frames the (exited) reader left in the queue.
func (s *session) drainInbound(ctx context.Context) {
	for {
		select {
		case m := <-s.inbound:
			s.handle(ctx, m)
		default:
			return
		}
	}
}

func (s *session) result(reason string, err error) sessionResult {
	uptime := time.Since(s.start)
	return sessionResult{
		reason:  reason,
		err:     err,
		healthy: s.reachedReady || uptime >= healthySessionAge,
		uptime:  uptime,
	}
}

// readErrorReason classifies the error that ended the reader.
func readErrorReason(err error) string {
	var ce *websocket.CloseError
	// gorilla reports a connection that ended without a close frame as 1006.
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		return fmt.Sprintf("close_%d", ce.Code)
	}
	return "connection_lost"
}

// handle processes one inbound frame on the controller.
func (s *session) handle(ctx context.Context, m inbound) {
	ch := s.c.byTopic[m.frame.Topic]
	if ch == nil {
		s.log.Debug("ignoring frame for unknown topic", zap.String(logKeyTopic, m.frame.Topic), zap.String(logKeyEvent, m.frame.Event))
		s.c.stats.ignoredFrames.Add(1)
		return
	}
	switch m.frame.Event {
	case eventPostgresChanges:
		ch.onChange(m)
	case eventReply:
		ch.onReply(s, m.frame)
	case eventSystem:
		ch.onSystem(s, m.frame, m.at)
	case eventClose, eventError:
		ch.onLifecycle(s, m.frame)
	default:
		// presence_state, presence_diff, broadcast, or something newer.
		ch.log.Debug("ignoring channel event", zap.String(logKeyEvent, m.frame.Event))
		s.c.stats.ignoredFrames.Add(1)
	}
}

// armTimer points the session timer at the earliest channel deadline.
func (s *session) armTimer() {
	var next time.Time
	for _, ch := range s.c.channels {
		for _, t := range [...]time.Time{ch.deadline(), ch.refreshAt} {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
	}
	if next.Equal(s.timerAt) {
		return
	}
	s.timerAt = next
	if next.IsZero() {
		s.timer.Stop()
		return
	}
	s.timer.Reset(time.Until(next))
}

func (s *session) onTimer(ctx context.Context, now time.Time) {
	refresh := false
	for _, ch := range s.c.channels {
		ch.onTimer(ctx, s, now)
		if !ch.refreshAt.IsZero() && !now.Before(ch.refreshAt) {
			refresh = true
		}
	}
	if refresh {
		s.refreshTokens(ctx, now)
	}
}

// refreshTokens fetches the current token and pushes access_token to every
// channel whose server instance holds a different one (§4.2). No reply is
// expected.
func (s *session) refreshTokens(ctx context.Context, now time.Time) {
	tok, err := s.c.token(ctx)
	if err != nil {
		s.log.Warn("token refresh failed; will retry", zap.Error(err), zap.Duration(logKeyBackoff, tokenRetryDelay))
		for _, ch := range s.c.channels {
			if !ch.refreshAt.IsZero() && !now.Before(ch.refreshAt) {
				ch.refreshAt = now.Add(tokenRetryDelay)
			}
		}
		return
	}
	for _, ch := range s.c.channels {
		ch.refreshToken(s, tok, now)
	}
}

// shutdown leaves every channel, sends close 1000 and waits (bounded) for
// the server's close echo.
func (s *session) shutdown() {
	for _, ch := range s.c.channels {
		ch.leave(s, "shutdown")
	}
	s.sendq.closeWith(websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	grace := time.NewTimer(closeGrace)
	defer grace.Stop()
	writerErr := s.writerErr
	for {
		select {
		case <-s.inbound: // discard; the reader must not block
		case <-writerErr:
			writerErr = nil // close frame written; wait for the echo
		case <-s.readerErr:
			return
		case <-grace.C:
			s.log.Debug("no close echo from server")
			return
		}
	}
}

// teardown stops both goroutines and closes the connection.
func (s *session) teardown() {
	close(s.done)
	_ = s.conn.Close()
	s.wg.Wait()
	s.timer.Stop()
}

// readLoop reads frames until the connection fails. Heartbeat replies are
// handled here so that a busy controller cannot cause a heartbeat timeout;
// everything else goes to the controller.
//
// Frames are read into one buffer, reused: a change is decoded into values
// of its own before the next read, and any other frame's payload is copied
// out.
func (s *session) readLoop() error {
	stats := s.c.stats
	var buf bytes.Buffer
	for {
		if buf.Cap() > maxKeptReadBuffer {
			buf = bytes.Buffer{} // do not hold on to one huge frame's memory
		}
		buf.Reset()
		mt, r, err := s.conn.NextReader()
		if err != nil {
			return err
		}
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		data := buf.Bytes()
		now := time.Now()
		s.lastRead.Store(now.UnixNano())
		stats.frame(now)
		if mt != websocket.TextMessage {
			// Binary frames are V2 broadcasts (§1.5), never postgres_changes.
			s.log.Debug("ignoring binary frame", zap.Int(logKeySize, len(data)))
			stats.ignoredFrames.Add(1)
			continue
		}
		f, err := decodeFrame(s.vsn, data, true)
		if err != nil {
			s.malformed(err, len(data))
			continue
		}
		if f.Topic == topicPhoenix {
			if f.Event == eventReply {
				if rtt, ok := s.hb.ack(f.Ref, now); ok {
					stats.heartbeatRTT.Store(int64(rtt))
				}
			}
			continue
		}
		m := inbound{frame: f, at: now}
		if f.Event == eventPostgresChanges {
			if m.change, err = decodeChange(f.Payload, now); err != nil {
				s.malformed(err, len(data))
				continue
			}
			m.frame.Payload = nil
		} else {
			m.frame.Payload = bytes.Clone(f.Payload)
		}
		select {
		case s.inbound <- m:
		case <-s.done:
			return nil
		}
	}
}

// maxKeptReadBuffer is the largest read buffer readLoop keeps between
// frames.
const maxKeptReadBuffer = 1 << 20

func (s *session) malformed(err error, size int) {
	s.c.stats.malformedFrames.Add(1)
	s.log.Warn("skipping malformed frame", zap.Error(err), zap.Int(logKeySize, size))
}

// writeLoop performs every write of the session: queued frames, heartbeats
// and the close frame. A heartbeat still unanswered at the next tick ends
// the session with close 1000 "heartbeat timeout".
func (s *session) writeLoop() error {
	ticker := time.NewTicker(s.c.cfg.HeartbeatInterval)
	defer ticker.Stop()
	for {
		select {
		case <-s.done:
			return nil
		case <-s.sendq.notify:
			frames, closeMsg := s.sendq.take()
			for _, b := range frames {
				if err := s.write(websocket.TextMessage, b); err != nil {
					return err
				}
			}
			if closeMsg != nil {
				if err := s.write(websocket.CloseMessage, closeMsg); err != nil {
					return err
				}
				return errClientClose
			}
		case <-ticker.C:
			if sentAt, ok := s.hb.outstandingSince(); ok && s.lastRead.Load() <= sentAt.UnixNano() {
				s.hbTimedOut.Store(true)
				_ = s.write(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "heartbeat timeout"))
				return ErrHeartbeatTimeout
			}
			ref := s.nextRef()
			b, err := EncodeFrame(s.vsn, Frame{Ref: ref, Topic: topicPhoenix, Event: eventHeartbeat})
			if err != nil {
				return fmt.Errorf("encode heartbeat: %w", err)
			}
			s.hb.sent(ref, time.Now())
			if err := s.write(websocket.TextMessage, b); err != nil {
				return err
			}
		}
	}
}

func (s *session) write(messageType int, data []byte) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(writeWait)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if err := s.conn.WriteMessage(messageType, data); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// sendQueue is the unbounded controller-to-writer queue. Outbound traffic
// is small (joins, leaves, token refreshes), so pushing never blocks.
type sendQueue struct {
	mu       sync.Mutex // guards frames and closeMsg
	frames   [][]byte
	closeMsg []byte
	notify   chan struct{} // 1-buffered wake-up for the writer
}

func (q *sendQueue) push(b []byte) {
	q.mu.Lock()
	q.frames = append(q.frames, b)
	q.mu.Unlock()
	q.wake()
}

// closeWith makes the writer send msg as a close frame after the queued
// frames and then stop.
func (q *sendQueue) closeWith(msg []byte) {
	q.mu.Lock()
	q.closeMsg = msg
	q.mu.Unlock()
	q.wake()
}

func (q *sendQueue) take() (frames [][]byte, closeMsg []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	frames, closeMsg = q.frames, q.closeMsg
	q.frames, q.closeMsg = nil, nil
	return frames, closeMsg
}

func (q *sendQueue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// heartbeatState tracks the outstanding heartbeat, shared by the writer
// (sends) and the reader (acknowledges).
type heartbeatState struct {
	mu     sync.Mutex // guards ref and sentAt
	ref    string     // ref of the unanswered heartbeat, "" if none
	sentAt time.Time
}

func (h *heartbeatState) sent(ref string, at time.Time) {
	h.mu.Lock()
	h.ref, h.sentAt = ref, at
	h.mu.Unlock()
}

// outstandingSince reports whether a heartbeat is unanswered and when it
// was sent.
func (h *heartbeatState) outstandingSince() (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sentAt, h.ref != ""
}

// ack clears the outstanding heartbeat if ref matches and returns its RTT.
func (h *heartbeatState) ack(ref string, at time.Time) (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ref == "" || ref != h.ref {
		return 0, false
	}
	h.ref = ""
	return at.Sub(h.sentAt), true
}
