package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"
)

// channel is the state machine of one ChannelSpec. It outlives sessions;
// per-session fields (joinRef, serverIDs, ...) are cleared when a session
// ends. All methods run on the goroutine running Client.Run.
//
//	closed ──join──▶ joining ──ok reply──▶ joined ──system ok──▶ subscribed
//	                    │                    │                      │
//	                    └──error/timeout─────┴──mismatch, system────┴──▶ errored ──backoff──▶ joining
//	                                             error, phx_close/phx_error
type channel struct {
	c     *Client
	idx   int
	spec  ChannelSpec
	topic string
	log   *zap.Logger
	bo    *backoff.ExponentialBackOff // rejoin backoff, reset on readiness

	state     State
	joinRef   string    // ref of the current phx_join; "" when no server channel is expected
	serverIDs []int64   // server ids by binding index, set by the join reply
	joinBy    time.Time // joining: join timeout
	rejoinAt  time.Time // errored: next join attempt
	token     string    // access token the server channel holds
	refreshAt time.Time // when to refresh token; zero if it does not expire
}

func newChannel(c *Client, idx int, spec ChannelSpec) *channel {
	topic := topicPrefix + spec.Name
	return &channel{
		c:     c,
		idx:   idx,
		spec:  spec,
		topic: topic,
		log:   c.log.With(zap.String(logKeyChannel, spec.Name)),
		bo: backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(c.cfg.ReconnectInitial),
			backoff.WithMaxInterval(c.cfg.ReconnectMax),
			backoff.WithMultiplier(2),
			backoff.WithRandomizationFactor(0.5),
			backoff.WithMaxElapsedTime(0),
		),
		state: StateClosed,
	}
}

// deadline is the next time onTimer has work for the channel's state.
func (ch *channel) deadline() time.Time {
	switch ch.state {
	case StateJoining:
		return ch.joinBy
	case StateErrored:
		return ch.rejoinAt
	default:
		return time.Time{}
	}
}

func (ch *channel) setState(to State, reason string) {
	from := ch.state
	if from == to {
		return
	}
	ch.state = to
	joinRef := ch.joinRef
	ch.c.stats.channel(ch.idx, func(cs *ChannelStats) {
		cs.State = to
		cs.JoinRef = joinRef
	})
	if f := ch.c.cfg.OnStateChange; f != nil {
		f(StateChange{Channel: ch.spec.Name, From: from, To: to, Reason: reason, At: time.Now()})
	}
}

// join pushes phx_join with a fresh join_ref and the current access token.
func (ch *channel) join(ctx context.Context, s *session) {
	tok, err := ch.c.token(ctx)
	if err != nil {
		ch.fail(s, "token_error", err)
		return
	}
	payload, err := joinPayload(ch.spec.Bindings, tok)
	if err != nil {
		ch.fail(s, "encode_error", err)
		return
	}
	ref := s.nextRef()
	ch.joinRef = ref
	ch.serverIDs = nil
	ch.token = tok
	now := time.Now()
	ch.refreshAt = tokenRefreshAt(tok, now)
	ch.joinBy = now.Add(ch.c.cfg.JoinTimeout)
	s.send(Frame{JoinRef: ref, Ref: ref, Topic: ch.topic, Event: eventJoin, Payload: payload})
	ch.c.stats.channel(ch.idx, func(cs *ChannelStats) { cs.Joins++ })
	ch.log.Debug("joining channel", zap.String(logKeyJoinRef, ref))
	ch.setState(StateJoining, "")
}

// leave pushes phx_leave for the current server channel, if any, and
// forgets it, so that its late replies and phx_close are stale.
func (ch *channel) leave(s *session, reason string) {
	if ch.joinRef == "" {
		return
	}
	s.send(Frame{JoinRef: ch.joinRef, Ref: s.nextRef(), Topic: ch.topic, Event: eventLeave})
	ch.log.Debug("leaving channel", zap.String(logKeyJoinRef, ch.joinRef), zap.String(logKeyReason, reason))
	ch.forget()
}

// forget drops the per-instance state of the server channel.
func (ch *channel) forget() {
	ch.joinRef = ""
	ch.serverIDs = nil
	ch.refreshAt = time.Time{}
	ch.token = ""
}

// fail records a failed join or a lost subscription and schedules a rejoin
// after the channel backoff. The caller has already left or forgotten the
// server channel as appropriate.
func (ch *channel) fail(s *session, reason string, err error) {
	ch.forget()
	wait := ch.bo.NextBackOff()
	ch.rejoinAt = time.Now().Add(wait)
	msg := err.Error()
	joinError := reason != "server_close" && reason != "channel_error"
	ch.c.stats.channel(ch.idx, func(cs *ChannelStats) {
		if joinError {
			cs.JoinErrors++
		}
		cs.LastError = msg
	})
	ch.c.stats.update(func(r *statsRecorder) { r.lastError = msg })
	ch.log.Warn("channel failed; rejoining after backoff",
		zap.String(logKeyReason, reason), zap.Error(err), zap.Duration(logKeyBackoff, wait))
	ch.setState(StateErrored, reason)
}

// onTimer handles join timeouts and scheduled rejoins.
func (ch *channel) onTimer(ctx context.Context, s *session, now time.Time) {
	switch ch.state {
	case StateJoining:
		if !now.Before(ch.joinBy) {
			err := fmt.Errorf("no reply to phx_join (join_ref %s) within %s", ch.joinRef, ch.c.cfg.JoinTimeout)
			ch.leave(s, "join_timeout")
			ch.fail(s, "join_timeout", err)
		}
	case StateErrored:
		if !now.Before(ch.rejoinAt) {
			ch.join(ctx, s)
		}
	}
}

// sessionEnded resets the channel after its socket is gone.
func (ch *channel) sessionEnded(reason string) {
	ch.forget()
	ch.setState(StateClosed, reason)
}

// replyPayload is the payload of phx_reply.
type replyPayload struct {
	Status   string          `json:"status"`
	Response json.RawMessage `json:"response"`
}

// onReply handles the reply to the current phx_join. Replies to anything
// else (leave, access_token, stale joins) are ignored.
func (ch *channel) onReply(s *session, f Frame) {
	if ch.state != StateJoining || f.Ref == "" || f.Ref != ch.joinRef {
		ch.log.Debug("ignoring reply", zap.String(logKeyRef, f.Ref), zap.String(logKeyJoinRef, f.JoinRef))
		return
	}
	var r replyPayload
	if err := json.Unmarshal(f.Payload, &r); err != nil {
		ch.leave(s, "bad_reply")
		ch.fail(s, "bad_reply", fmt.Errorf("decode join reply: %w", err))
		return
	}
	if r.Status != "ok" {
		// No server channel exists after a join error.
		reason := replyReason(r.Response)
		ch.socketTokenExpired(s, reason)
		ch.forget()
		ch.fail(s, "join_error", fmt.Errorf("join rejected (%s): %s", r.Status, reason))
		return
	}
	ids, err := verifyBindings(ch.spec.Bindings, r.Response)
	if err != nil {
		ch.leave(s, "binding_mismatch")
		ch.fail(s, "binding_mismatch", err)
		return
	}
	ch.serverIDs = ids
	ch.log.Info("channel joined; waiting for subscription", zap.String(logKeyJoinRef, ch.joinRef))
	ch.setState(StateJoined, "")
}

// replyReason extracts response.reason from an error reply.
func replyReason(response json.RawMessage) string {
	var r struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal(response, &r) == nil && r.Reason != "" {
		return r.Reason
	}
	if len(response) == 0 {
		return "no reason given"
	}
	const max = 200
	if len(response) > max {
		return string(response[:max]) + "…"
	}
	return string(response)
}

// systemPayload is the payload of a "system" push (§2.5).
type systemPayload struct {
	Extension string `json:"extension"`
	Status    string `json:"status"`
	Message   string `json:"message"`
	Channel   string `json:"channel"`
}

// onSystem handles subscription status and server notices.
func (ch *channel) onSystem(s *session, f Frame, at time.Time) {
	var p systemPayload
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		s.malformed(fmt.Errorf("decode system payload: %w", err), len(f.Payload))
		return
	}
	if f.JoinRef != "" && f.JoinRef != ch.joinRef {
		ch.log.Debug("ignoring stale system message", zap.String(logKeyJoinRef, f.JoinRef), zap.String(logKeyMessage, p.Message))
		return
	}
	fields := []zap.Field{
		zap.String(logKeyExtension, p.Extension), zap.String(logKeyStatus, p.Status), zap.String(logKeyMessage, p.Message),
	}
	switch {
	case p.Extension == eventPostgresChanges && p.Status == "ok":
		if ch.state != StateJoined && ch.state != StateSubscribed {
			ch.log.Debug("ignoring subscription confirmation outside a join", append(fields, zap.String("state", string(ch.state)))...)
			return
		}
		ch.bo.Reset()
		s.reachedReady = true
		ch.c.stats.channel(ch.idx, func(cs *ChannelStats) { cs.Ready++ })
		ch.log.Info("subscribed to postgres changes", fields...)
		ch.setState(StateSubscribed, "")
		ch.c.out.ready(ch.spec.Name, at)
	case p.Extension == eventPostgresChanges:
		if ch.joinRef == "" {
			return
		}
		// The channel stays open but will never deliver (§2.5): resubscribe.
		ch.log.Error("postgres changes subscription failed", fields...)
		ch.leave(s, "subscription_error")
		ch.fail(s, "subscription_error", fmt.Errorf("postgres_changes subscription error: %s", p.Message))
	case p.Status != "ok":
		// Channel shutdown notice (e.g. token expired); phx_close follows and
		// triggers the rejoin, which fetches a fresh token.
		ch.log.Warn("server is shutting the channel down", fields...)
		ch.socketTokenExpired(s, p.Message)
		msg := p.Message
		ch.c.stats.channel(ch.idx, func(cs *ChannelStats) { cs.LastError = msg })
	default:
		// e.g. "Server requested disconnect" before a 1012 close.
		ch.log.Info("system message", fields...)
	}
}

// socketTokenExpired ends the session when the server refused the channel
// because its token expired and that token is the socket's own: with an
// opaque API key (sb_publishable_…, sb_secret_…) as access_token, Realtime
// authorizes the channel with the socket's token (realtime_channel.ex,
// assign_access_token: "sb_" means the tenant token), which the gateway
// minted for this socket with its own expiry. Rejoining on the same socket
// would meet the same expired token; a new socket gets a fresh one.
func (ch *channel) socketTokenExpired(s *session, message string) {
	if !strings.Contains(message, "Token has expired") || !strings.HasPrefix(ch.token, "sb_") || s.socketTokenExpired != nil {
		return
	}
	s.socketTokenExpired = fmt.Errorf("channel %s: %s", ch.spec.Name, message)
}

// onLifecycle handles phx_close and phx_error. Only frames of the current
// instance count: V2 matches the frame's join_ref, V1 its ref (§5.1).
func (ch *channel) onLifecycle(s *session, f Frame) {
	ref := f.JoinRef
	if s.vsn == VsnV1 {
		ref = f.Ref
	}
	if ch.joinRef == "" || ref != ch.joinRef {
		ch.log.Debug("ignoring stale lifecycle frame", zap.String(logKeyEvent, f.Event), zap.String(logKeyJoinRef, ref))
		return
	}
	reason := "server_close"
	if f.Event == eventError {
		reason = "channel_error"
	}
	ch.forget()
	ch.fail(s, reason, fmt.Errorf("server sent %s", f.Event))
}

// onChange dispatches a postgres_changes frame to the consumer.
func (ch *channel) onChange(m inbound) {
	if ch.serverIDs == nil {
		ch.log.Debug("ignoring change before join reply", zap.String(logKeyChangeType, m.change.change.Type))
		ch.c.stats.ignoredFrames.Add(1)
		return
	}
	matched := matchBindings(ch.spec.Bindings, ch.serverIDs, m.change.ids, m.change.change.Type)
	if len(matched) == 0 {
		ch.log.Debug("ignoring change matching no binding",
			zap.String(logKeyChangeType, m.change.change.Type), zap.Int64s("ids", m.change.ids))
		ch.c.stats.ignoredFrames.Add(1)
		return
	}
	c := &m.change.change
	c.Channel = ch.spec.Name
	c.Bindings = matched
	delivered, newGap := ch.c.out.change(c)
	ch.c.stats.channel(ch.idx, func(cs *ChannelStats) {
		if delivered {
			cs.ChangesDelivered++
			return
		}
		cs.ChangesDropped++
		if newGap {
			cs.Gaps++
		}
	})
	if newGap {
		ch.log.Warn("consumer is too slow; dropping changes until there is room")
	}
}

// refreshToken pushes access_token if tok differs from the one the server
// channel holds, and schedules the next refresh.
func (ch *channel) refreshToken(s *session, tok string, now time.Time) {
	if ch.joinRef == "" {
		return
	}
	if tok == ch.token {
		if !ch.refreshAt.IsZero() && !now.Before(ch.refreshAt) {
			// Provider handed out the same expiring token again; ask later.
			ch.refreshAt = now.Add(tokenRetryDelay)
		}
		return
	}
	payload, err := json.Marshal(struct {
		AccessToken string `json:"access_token"`
	}{tok})
	if err != nil {
		ch.log.Error("cannot encode access_token payload", zap.Error(err))
		return
	}
	s.send(Frame{JoinRef: ch.joinRef, Ref: s.nextRef(), Topic: ch.topic, Event: eventAccessToken, Payload: payload})
	ch.token = tok
	ch.refreshAt = tokenRefreshAt(tok, now)
	ch.log.Info("pushed refreshed access token", zap.String(logKeyJoinRef, ch.joinRef))
}

// joinWire is the phx_join payload (§2.2).
type joinWire struct {
	Config      joinConfig `json:"config"`
	AccessToken string     `json:"access_token,omitempty"`
}

type joinConfig struct {
	Broadcast struct {
		Ack  bool `json:"ack"`
		Self bool `json:"self"`
	} `json:"broadcast"`
	Presence struct {
		Key     string `json:"key"`
		Enabled bool   `json:"enabled"`
	} `json:"presence"`
	PostgresChanges []bindingWire `json:"postgres_changes"`
	Private         bool          `json:"private"`
}

// bindingWire omits empty keys: the server rejects null and, before v2.100,
// empty filters (§2.2).
type bindingWire struct {
	Event  string `json:"event,omitempty"`
	Schema string `json:"schema,omitempty"`
	Table  string `json:"table,omitempty"`
	Filter string `json:"filter,omitempty"`
}

func joinPayload(bindings []Binding, token string) (json.RawMessage, error) {
	w := joinWire{AccessToken: token}
	w.Config.PostgresChanges = make([]bindingWire, len(bindings))
	for i, b := range bindings {
		w.Config.PostgresChanges[i] = bindingWire(b)
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode join payload: %w", err)
	}
	return b, nil
}

// replyBinding is one entry of the join reply's postgres_changes list: the
// binding echoed by the server plus its id (§2.3).
type replyBinding struct {
	ID     json.Number `json:"id"`
	Event  string      `json:"event"`
	Schema string      `json:"schema"`
	Table  string      `json:"table"`
	Filter string      `json:"filter"`
}

// verifyBindings checks the join reply against the requested bindings,
// position by position, and returns the server ids in binding order.
func verifyBindings(bindings []Binding, response json.RawMessage) ([]int64, error) {
	var r struct {
		PostgresChanges []replyBinding `json:"postgres_changes"`
	}
	if err := json.Unmarshal(response, &r); err != nil {
		return nil, fmt.Errorf("decode join reply bindings: %w", err)
	}
	if len(r.PostgresChanges) != len(bindings) {
		return nil, fmt.Errorf("binding mismatch: server returned %d postgres_changes bindings, requested %d",
			len(r.PostgresChanges), len(bindings))
	}
	ids := make([]int64, len(bindings))
	for i, b := range bindings {
		got := r.PostgresChanges[i]
		if !strings.EqualFold(got.Event, b.Event) || got.Schema != b.Schema || got.Table != b.Table || got.Filter != b.Filter {
			return nil, fmt.Errorf("binding mismatch at %d: requested %s, server returned %s",
				i, describeBinding(b.Event, b.Schema, b.Table, b.Filter), describeBinding(got.Event, got.Schema, got.Table, got.Filter))
		}
		id, err := got.ID.Int64()
		if err != nil || id < 0 {
			return nil, fmt.Errorf("binding %d: invalid server id %q", i, got.ID.String())
		}
		ids[i] = id
	}
	return ids, nil
}

func describeBinding(event, schema, table, filter string) string {
	return fmt.Sprintf("{event:%q schema:%q table:%q filter:%q}", event, schema, table, filter)
}
