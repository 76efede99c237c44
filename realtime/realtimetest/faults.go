package realtimetest

import (
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// faults holds the injected misbehaviour. All fields are guarded by mu.
type faults struct {
	mu              sync.Mutex
	stallHeartbeats bool
	joinDelayD      time.Duration
	refuseReason    string
	refuseLeft      int
	subscribeDelayD *time.Duration
	dropLeft        int
	truncateLeft    int
	rejectStatus    int
	rejectMessage   string
	rejectLeft      int
}

func (f *faults) heartbeatsStalled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stallHeartbeats
}

func (f *faults) joinDelay() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.joinDelayD
}

func (f *faults) subscribeDelay(def time.Duration) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subscribeDelayD != nil {
		return *f.subscribeDelayD
	}
	return def
}

func (f *faults) takeJoinRefusal() (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuseLeft <= 0 {
		return "", false
	}
	f.refuseLeft--
	return f.refuseReason, true
}

func (f *faults) takeDrop() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dropLeft <= 0 {
		return false
	}
	f.dropLeft--
	return true
}

func (f *faults) takeTruncate() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.truncateLeft <= 0 {
		return false
	}
	f.truncateLeft--
	return true
}

func (f *faults) takeUpgradeRejection() (int, string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rejectLeft <= 0 {
		return 0, "", false
	}
	f.rejectLeft--
	return f.rejectStatus, f.rejectMessage, true
}

// DropConnections closes every connection with a close frame carrying code
// and reason, after the frames already queued.
func (s *Server) DropConnections(code int, reason string) {
	for _, sess := range s.snapshotSessions() {
		sess.closeWith(code, reason)
	}
}

// KillConnections drops every TCP connection abruptly, without a close
// frame (the client sees 1006).
func (s *Server) KillConnections() {
	for _, sess := range s.snapshotSessions() {
		sess.kill()
	}
}

// StallHeartbeats makes the server stop (on) or resume (off) answering
// heartbeats. Stalled heartbeats still count as activity for the idle timeout.
func (s *Server) StallHeartbeats(on bool) {
	s.faults.mu.Lock()
	s.faults.stallHeartbeats = on
	s.faults.mu.Unlock()
}

// SetJoinDelay delays every following join reply (ok or error) by d. The
// connection handles nothing else meanwhile, heartbeats included.
func (s *Server) SetJoinDelay(d time.Duration) {
	s.faults.mu.Lock()
	s.faults.joinDelayD = d
	s.faults.mu.Unlock()
}

// RefuseJoins makes the next n joins fail with reason (for example
// "ConnectionRateLimitReached: Too many connected users"), after
// Options.JoinErrorDelay. n <= 0 cancels pending refusals.
func (s *Server) RefuseJoins(reason string, n int) {
	s.faults.mu.Lock()
	s.faults.refuseReason, s.faults.refuseLeft = reason, n
	s.faults.mu.Unlock()
}

// SetSubscribeDelay overrides Options.SubscribeDelay for following joins.
func (s *Server) SetSubscribeDelay(d time.Duration) {
	s.faults.mu.Lock()
	s.faults.subscribeDelayD = &d
	s.faults.mu.Unlock()
}

// DropChanges silently drops the next n changes for every subscriber, as a
// rate-limited or restarting Realtime does (delivery is at-most-once).
func (s *Server) DropChanges(n int) {
	s.faults.mu.Lock()
	s.faults.dropLeft = n
	s.faults.mu.Unlock()
}

// TruncateNext delivers the next n changes as if they exceeded the payload
// limit: errors ["Error 413: Payload Too Large"] and only values whose JSON
// text is at most 64 bytes.
func (s *Server) TruncateNext(n int) {
	s.faults.mu.Lock()
	s.faults.truncateLeft = n
	s.faults.mu.Unlock()
}

// RejectUpgrades refuses the next n websocket handshakes with HTTP status
// and the JSON body {"error": message} (e.g. 404 "Tenant not found",
// 429 "Too many connected users"), after Options.ConnectErrorDelay.
func (s *Server) RejectUpgrades(status int, message string, n int) {
	s.faults.mu.Lock()
	s.faults.rejectStatus, s.faults.rejectMessage, s.faults.rejectLeft = status, message, n
	s.faults.mu.Unlock()
}

// SendSystemError pushes a `system` error with the given extension
// ("postgres_changes" or "system") and message to every channel joined on
// topic (a channel name or a full "realtime:" topic). With thenClose the
// channel is then closed with phx_close, as Realtime's shutdown_response
// does. It returns the number of channels affected.
func (s *Server) SendSystemError(topic, extension, msg string, thenClose bool) int {
	return s.eachChannel(topic, func(sess *session, ch *channel) {
		sess.send(systemMessage(ch, extension, "error", msg))
		if thenClose {
			sess.closeChannelLocked(ch)
		}
	})
}

// SendPhxError closes the channels joined on topic with phx_error, as when
// the channel process crashes. It returns the number of channels affected.
func (s *Server) SendPhxError(topic string) int {
	return s.eachChannel(topic, func(sess *session, ch *channel) { sess.errorChannelLocked(ch) })
}

// ResendSubscribed pushes "Subscribed to PostgreSQL" again to the channels
// joined on topic (Realtime repeats it after token refreshes, CDC restarts
// and publication changes) and marks them subscribed. It returns the
// number of channels affected.
func (s *Server) ResendSubscribed(topic string) int {
	return s.eachChannel(topic, func(sess *session, ch *channel) {
		ch.subscribed = true
		ch.subClaims = ch.claims
		sess.send(systemMessage(ch, "postgres_changes", "ok", "Subscribed to PostgreSQL"))
	})
}

// ServerDisconnect closes every connection the way Realtime drains sockets:
// code 1012 (service restart) is preceded on every channel by a
// "Server requested disconnect" system message; 1001 (going away) is not.
func (s *Server) ServerDisconnect(code int) {
	for _, sess := range s.snapshotSessions() {
		if code == websocket.CloseServiceRestart {
			sess.mu.Lock()
			for _, ch := range sess.channels {
				sess.send(message{Topic: ch.topic, Event: "system", Payload: mustJSON(systemPayload{
					Message: "Server requested disconnect", Status: "ok", Extension: "system",
				})})
			}
			sess.mu.Unlock()
		}
		sess.closeWith(code, "")
	}
}

// eachChannel runs f with the session lock held for every channel on topic.
func (s *Server) eachChannel(topic string, f func(*session, *channel)) int {
	topic = fullTopic(topic)
	n := 0
	for _, sess := range s.snapshotSessions() {
		sess.mu.Lock()
		if ch := sess.channels[topic]; ch != nil {
			f(sess, ch)
			n++
		}
		sess.mu.Unlock()
	}
	return n
}

func fullTopic(topic string) string {
	if strings.HasPrefix(topic, topicPrefix) {
		return topic
	}
	return topicPrefix + topic
}

// stats are the counters behind the introspection methods.
type stats struct {
	connections  atomic.Int64
	refused      atomic.Int64
	joins        atomic.Int64
	heartbeats   atomic.Int64
	leaves       atomic.Int64
	accessTokens atomic.Int64
	malformed    atomic.Int64
	delivered    atomic.Int64
	dropped      atomic.Int64

	mu              sync.Mutex
	lastJoin        map[string]json.RawMessage
	lastAccessToken map[string]string
}

func (st *stats) recordJoin(topic string, payload json.RawMessage) {
	st.joins.Add(1)
	st.mu.Lock()
	if st.lastJoin == nil {
		st.lastJoin = make(map[string]json.RawMessage)
	}
	st.lastJoin[topic] = append(json.RawMessage(nil), payload...)
	st.mu.Unlock()
}

func (st *stats) recordAccessToken(topic, token string) {
	st.accessTokens.Add(1)
	st.mu.Lock()
	if st.lastAccessToken == nil {
		st.lastAccessToken = make(map[string]string)
	}
	st.lastAccessToken[topic] = token
	st.mu.Unlock()
}

// Connections returns the number of open websocket connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Serializers returns the negotiated serializer version ("1.0.0" or
// "2.0.0") of every open connection, sorted.
func (s *Server) Serializers() []string {
	var out []string
	for _, sess := range s.snapshotSessions() {
		out = append(out, sess.codec.vsn())
	}
	sort.Strings(out)
	return out
}

// TotalConnections returns the number of websocket connections accepted so far.
func (s *Server) TotalConnections() int { return int(s.stats.connections.Load()) }

// RefusedConnections returns the number of handshakes refused with a JSON error.
func (s *Server) RefusedConnections() int { return int(s.stats.refused.Load()) }

// Joins returns the number of phx_join messages received.
func (s *Server) Joins() int { return int(s.stats.joins.Load()) }

// LastJoinPayload returns the payload of the last phx_join on topic (a
// channel name or full topic).
func (s *Server) LastJoinPayload(topic string) (json.RawMessage, bool) {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	p, ok := s.stats.lastJoin[fullTopic(topic)]
	return p, ok
}

// Heartbeats returns the number of heartbeats received (answered or not).
func (s *Server) Heartbeats() int { return int(s.stats.heartbeats.Load()) }

// Leaves returns the number of phx_leave messages received for joined channels.
func (s *Server) Leaves() int { return int(s.stats.leaves.Load()) }

// AccessTokenPushes returns the number of access_token messages with a
// string token received for joined channels.
func (s *Server) AccessTokenPushes() int { return int(s.stats.accessTokens.Load()) }

// LastAccessToken returns the last token pushed with access_token on topic.
func (s *Server) LastAccessToken(topic string) (string, bool) {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	t, ok := s.stats.lastAccessToken[fullTopic(topic)]
	return t, ok
}

// MalformedFrames returns the number of inbound frames dropped as malformed.
func (s *Server) MalformedFrames() int { return int(s.stats.malformed.Load()) }

// DeliveredChanges returns the number of postgres_changes frames queued to clients.
func (s *Server) DeliveredChanges() int { return int(s.stats.delivered.Load()) }

// DroppedChanges returns the number of changes discarded by DropChanges.
func (s *Server) DroppedChanges() int { return int(s.stats.dropped.Load()) }

// JoinedTopics returns the topics of all joined channels, one entry per
// connection, sorted.
func (s *Server) JoinedTopics() []string {
	return s.topics(func(*channel) bool { return true })
}

// SubscribedTopics returns the topics of channels that have been told
// "Subscribed to PostgreSQL" and so receive changes, sorted.
func (s *Server) SubscribedTopics() []string {
	return s.topics(func(ch *channel) bool { return ch.subscribed })
}

func (s *Server) topics(keep func(*channel) bool) []string {
	var out []string
	for _, sess := range s.snapshotSessions() {
		sess.mu.Lock()
		for t, ch := range sess.channels {
			if keep(ch) {
				out = append(out, t)
			}
		}
		sess.mu.Unlock()
	}
	sort.Strings(out)
	return out
}
