package realtimetest

import (
	"encoding/json"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// outbound is one item of a connection's write queue: a text frame, or a
// close frame after which the connection ends.
type outbound struct {
	data        []byte
	close       bool
	closeCode   int
	closeReason string
}

// outQueue is a connection's write queue, bounded by the bytes it holds.
type outQueue struct {
	mu     sync.Mutex
	items  []outbound
	bytes  int
	notify chan struct{} // signalled (capacity 1) when items were added
}

// push queues o unless that would hold more than max bytes.
func (q *outQueue) push(o outbound, max int) (ok bool, queued int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.bytes+len(o.data) > max && len(q.items) > 0 {
		return false, q.bytes
	}
	q.items = append(q.items, o)
	q.bytes += len(o.data)
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return true, q.bytes
}

// take returns everything queued, in order, and empties the queue; spare is
// a slice to reuse for the next batch.
func (q *outQueue) take(spare []outbound) []outbound {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	clear(spare)
	q.items, q.bytes = spare[:0], 0
	return out
}

// session is one websocket connection (a Phoenix socket transport). The
// reader runs in ServeHTTP's goroutine and handles frames one at a time, so
// a slow join blocks the socket like Phoenix's transport process does. All
// writes go through out and the writer goroutine, in enqueue order.
type session struct {
	srv   *Server
	conn  *websocket.Conn
	codec codec
	log   *zap.Logger

	// token and claims are the socket's apikey; channels without an
	// access_token use them.
	token  string
	claims tokenClaims

	out        outQueue
	done       chan struct{} // closed when the session ends
	endOnce    sync.Once
	readerDone chan struct{}
	writerDone chan struct{}
	// closeQueued is set once a close frame is queued; frames queued after
	// it are never written.
	closeQueued atomic.Bool

	mu       sync.Mutex // guards channels and the channels' mutable fields
	channels map[string]*channel
}

func newSession(srv *Server, conn *websocket.Conn, c codec, token string, claims tokenClaims) *session {
	return &session{
		srv:        srv,
		conn:       conn,
		codec:      c,
		log:        srv.log.With(zap.String("vsn", c.vsn()), zap.Stringer("remote", conn.RemoteAddr())),
		token:      token,
		claims:     claims,
		out:        outQueue{notify: make(chan struct{}, 1)},
		done:       make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
		channels:   make(map[string]*channel),
	}
}

// run serves the connection until it ends, then waits for the writer.
func (s *session) run() {
	go s.writeLoop()
	s.readLoop()
	close(s.readerDone)
	if s.closeQueued.Load() {
		// The writer sends the queued close frame and then ends the session.
		t := time.NewTimer(closeHandshakeTimeout + writeTimeout)
		select {
		case <-s.writerDone:
		case <-t.C:
		}
		t.Stop()
	}
	s.end()
	<-s.writerDone
	s.mu.Lock()
	for topic, ch := range s.channels {
		ch.stopTimers()
		delete(s.channels, topic)
	}
	s.mu.Unlock()
}

func (s *session) readLoop() {
	idle := s.srv.opts.IdleTimeout
	extend := func() { _ = s.conn.SetReadDeadline(time.Now().Add(idle)) }
	s.conn.SetReadLimit(maxInboundFrameBytes)
	s.conn.SetPingHandler(func(data string) error {
		extend()
		err := s.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeTimeout))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})
	s.conn.SetPongHandler(func(string) error { extend(); return nil })
	for {
		extend()
		typ, data, err := s.conn.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				s.log.Debug("idle timeout, closing")
				s.closeWith(websocket.CloseNormalClosure, "")
			}
			return
		}
		if typ != websocket.TextMessage {
			s.log.Debug("ignoring binary frame")
			continue
		}
		s.handleFrame(data)
	}
}

// writeLoop writes the queued frames in order. Frames queued together are
// written as one batch: with a batchConn underneath, a burst of changes
// costs one write system call instead of one per frame.
func (s *session) writeLoop() {
	defer close(s.writerDone)
	bc, _ := s.conn.NetConn().(*batchConn)
	var batch []outbound
	for {
		select {
		case <-s.done:
			return
		case <-s.out.notify:
		}
		batch = s.out.take(batch)
		bc.begin()
		for _, o := range batch {
			if o.close {
				if err := bc.flush(); err != nil {
					s.log.Debug("write failed", zap.Error(err))
					s.end()
					return
				}
				s.writeClose(o)
				return
			}
			_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := s.conn.WriteMessage(websocket.TextMessage, o.data); err != nil {
				s.log.Debug("write failed", zap.Error(err))
				s.end()
				return
			}
		}
		if err := bc.flush(); err != nil {
			s.log.Debug("write failed", zap.Error(err))
			s.end()
			return
		}
	}
}

// writeClose sends a close frame, waits for the client's close frame (the
// reader then returns) and ends the session.
func (s *session) writeClose(o outbound) {
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	msg := websocket.FormatCloseMessage(o.closeCode, o.closeReason)
	_ = s.conn.WriteMessage(websocket.CloseMessage, msg)
	t := time.NewTimer(closeHandshakeTimeout)
	select {
	case <-s.readerDone:
	case <-s.done:
	case <-t.C:
	}
	t.Stop()
	s.end()
}

// end closes the connection without a close frame. Safe to call repeatedly
// and from any goroutine, including with s.mu held.
func (s *session) end() {
	s.endOnce.Do(func() {
		close(s.done)
		_ = s.conn.NetConn().Close()
	})
}

// kill drops the TCP connection abruptly (RST, no close frame).
func (s *session) kill() {
	if tc, ok := unwrapConn(s.conn.NetConn()).(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	s.end()
}

// closeWith queues a close frame after everything already queued.
func (s *session) closeWith(code int, reason string) {
	s.closeQueued.Store(true)
	s.enqueue(outbound{close: true, closeCode: code, closeReason: reason})
}

// send queues a message. Callers that need ordering with channel state hold s.mu.
func (s *session) send(m message) {
	s.enqueue(outbound{data: s.codec.encode(m)})
}

func (s *session) enqueue(o outbound) {
	select {
	case <-s.done:
		return
	default:
	}
	if ok, queued := s.out.push(o, s.srv.opts.OutboundBytes); !ok {
		s.log.Warn("client too slow, dropping connection", zap.Int("queued_bytes", queued))
		s.kill()
	}
}

// handleFrame dispatches one inbound text frame.
func (s *session) handleFrame(data []byte) {
	m, err := s.codec.decode(data)
	if err != nil {
		s.srv.stats.malformed.Add(1)
		s.log.Debug("dropping malformed frame", zap.Error(err))
		return
	}
	switch {
	case m.Topic == "phoenix" && m.Event == "heartbeat":
		s.srv.stats.heartbeats.Add(1)
		if s.srv.faults.heartbeatsStalled() {
			return
		}
		s.send(reply(nil, m.Ref, "phoenix", "ok", emptyObject))
	case m.Event == "phx_join":
		s.handleJoin(m)
	default:
		s.handlePush(m)
	}
}

// handlePush handles a message for a channel topic other than phx_join.
// Like Realtime's lenient Phoenix fork, a stale or missing join_ref still
// reaches the current channel.
func (s *session) handlePush(m message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[m.Topic]
	if ch == nil {
		if m.Event == "phx_leave" {
			s.send(reply(m.JoinRef, m.Ref, m.Topic, "ok", emptyObject))
			return
		}
		s.send(reply(nil, m.Ref, m.Topic, "error", map[string]string{"reason": "unmatched topic"}))
		return
	}
	switch m.Event {
	case "phx_leave":
		s.srv.stats.leaves.Add(1)
		s.send(reply(ch.joinRef, m.Ref, m.Topic, "ok", emptyObject))
		s.closeChannelLocked(ch)
	case "access_token":
		s.handleAccessTokenLocked(ch, m.Payload)
	default:
		s.log.Debug("ignoring channel event", zap.String("topic", m.Topic), zap.String("event", m.Event))
	}
}

// closeChannelLocked removes ch and sends its phx_close. s.mu must be held.
func (s *session) closeChannelLocked(ch *channel) {
	ch.stopTimers()
	if s.channels[ch.topic] == ch {
		delete(s.channels, ch.topic)
	}
	s.send(closeMessage(ch))
}

// errorChannelLocked removes ch and sends phx_error, as when the channel
// process crashes. s.mu must be held.
func (s *session) errorChannelLocked(ch *channel) {
	ch.stopTimers()
	if s.channels[ch.topic] == ch {
		delete(s.channels, ch.topic)
	}
	s.send(message{JoinRef: ch.joinRef, Ref: ch.joinRef, Topic: ch.topic, Event: "phx_error", Payload: emptyObject})
}

// shutdownChannelLocked is Realtime's shutdown_response/2: a system error
// followed by phx_close. s.mu must be held.
func (s *session) shutdownChannelLocked(ch *channel, msg string) {
	s.send(systemMessage(ch, "system", "error", msg))
	s.closeChannelLocked(ch)
}

// current reports whether ch is still the session's channel for its topic.
// s.mu must be held.
func (s *session) currentLocked(ch *channel) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	return s.channels[ch.topic] == ch
}

// channelsByTopic returns the channels matching topic, or all when topic is "".
func (s *session) channelsByTopic(topic string) []*channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*channel
	for t, ch := range s.channels {
		if topic == "" || t == topic {
			out = append(out, ch)
		}
	}
	return out
}

// channelTarget is a snapshot of a subscribed channel for delivery.
type channelTarget struct {
	ch       *channel
	bindings []binding
	claims   tokenClaims
	newAPI   bool
}

// appendSubscribedTargets appends the channels that currently receive
// changes to dst.
func (s *session) appendSubscribedTargets(dst []channelTarget) []channelTarget {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.channels {
		if ch.subscribed {
			dst = append(dst, channelTarget{ch: ch, bindings: ch.bindings, claims: ch.subClaims, newAPI: ch.newAPI})
		}
	}
	return dst
}

// deliverFrame queues an encoded change frame for ch if it is still joined
// and subscribed.
func (s *session) deliverFrame(ch *channel, frame []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.currentLocked(ch) || !ch.subscribed {
		return false
	}
	s.enqueue(outbound{data: frame})
	return true
}

// systemPayload is the payload of a `system` push.
type systemPayload struct {
	Message   string `json:"message"`
	Status    string `json:"status"`
	Extension string `json:"extension"`
	Channel   string `json:"channel,omitempty"`
}

func systemMessage(ch *channel, extension, status, msg string) message {
	return message{
		JoinRef: ch.joinRef,
		Topic:   ch.topic,
		Event:   "system",
		Payload: mustJSON(systemPayload{Message: msg, Status: status, Extension: extension, Channel: ch.name}),
	}
}

func closeMessage(ch *channel) message {
	return message{JoinRef: ch.joinRef, Ref: ch.joinRef, Topic: ch.topic, Event: "phx_close", Payload: emptyObject}
}

// rawList is a JSON array of pre-encoded elements.
type rawList []json.RawMessage

func (l rawList) MarshalJSON() ([]byte, error) {
	if len(l) == 0 {
		return []byte("[]"), nil
	}
	return json.Marshal([]json.RawMessage(l))
}
