package realtimetest

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"go.uber.org/zap"
)

const topicPrefix = "realtime:"

// channel is one joined realtime:<name> topic of a session. Its mutable
// fields are guarded by the session's mu.
type channel struct {
	topic   string
	name    string          // topic without "realtime:"
	joinRef json.RawMessage // as the client sent it; nil when omitted
	newAPI  bool            // join payload had a "config" key

	bindings []binding // immutable after join

	token  string      // current access token
	claims tokenClaims // claims of token

	// subscribed is true once "Subscribed to PostgreSQL" was sent; only then
	// does the channel receive changes, evaluated with subClaims.
	subscribed bool
	subClaims  tokenClaims

	subTimer   *timerRef
	tokenTimer *timerRef
}

// timerRef is a stoppable timer.
type timerRef struct{ t *time.Timer }

func (r *timerRef) stop() {
	if r != nil && r.t != nil {
		r.t.Stop()
	}
}

func (ch *channel) stopTimers() {
	ch.subTimer.stop()
	ch.tokenTimer.stop()
}

// joinError is a refused join: the reply reason.
type joinError struct{ reason string }

// handleJoin runs a phx_join to completion: validation, reply, and the
// delayed "Subscribed to PostgreSQL". It blocks the reader for the join and
// error delays, like Phoenix's transport waiting for the channel process.
func (s *session) handleJoin(m message) {
	s.srv.stats.recordJoin(m.Topic, m.Payload)
	if !strings.HasPrefix(m.Topic, topicPrefix) {
		s.send(reply(nil, m.Ref, m.Topic, "error", map[string]string{"reason": "unmatched topic"}))
		return
	}

	// A duplicate join shuts the old channel down; its phx_close (with the
	// old join_ref) goes out right after this join's reply.
	var pendingClose *message
	s.mu.Lock()
	if old := s.channels[m.Topic]; old != nil {
		old.stopTimers()
		delete(s.channels, m.Topic)
		c := closeMessage(old)
		pendingClose = &c
	}
	s.mu.Unlock()

	if !sleep(s.srv.faults.joinDelay(), s.done) {
		return
	}
	ch, jerr := s.newChannel(m)
	if jerr != nil {
		if !sleep(s.srv.opts.JoinErrorDelay, s.done) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.send(reply(m.JoinRef, m.Ref, m.Topic, "error", map[string]string{"reason": jerr.reason}))
		if pendingClose != nil {
			s.send(*pendingClose)
		}
		return
	}

	entries := make(rawList, len(ch.bindings))
	for i, b := range ch.bindings {
		entries[i] = withID(b.Raw, b.ID)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return
	default:
	}
	s.channels[ch.topic] = ch
	s.send(reply(ch.joinRef, m.Ref, ch.topic, "ok", map[string]rawList{"postgres_changes": entries}))
	if pendingClose != nil {
		s.send(*pendingClose)
	}
	s.scheduleTokenCheckLocked(ch)
	if len(ch.bindings) > 0 {
		s.scheduleSubscribeLocked(ch, s.srv.faults.subscribeDelay(s.srv.opts.SubscribeDelay))
	}
}

// newChannel validates a join like RealtimeChannel.join/3 and returns the
// channel, or the reason the join is refused.
func (s *session) newChannel(m message) (*channel, *joinError) {
	if m.Topic == topicPrefix {
		return nil, &joinError{reason: "TopicNameRequired: You must provide a topic name"}
	}
	unknown := &joinError{reason: "Unknown Error on Channel"}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(m.Payload, &params); err != nil || params == nil {
		return nil, unknown
	}
	if reason, ok := s.srv.faults.takeJoinRefusal(); ok {
		return nil, &joinError{reason: reason}
	}

	token := s.channelToken(params)
	claims, terr := verifyTokenKeys(token, s.srv.secret, s.srv.opts.JWKS, s.srv.opts.Now())
	if terr != nil {
		return nil, &joinError{reason: terr.joinReason()}
	}

	name := strings.TrimPrefix(m.Topic, topicPrefix)
	ch := &channel{topic: m.Topic, name: name, joinRef: m.JoinRef, token: token, claims: claims}
	_, ch.newAPI = params["config"]
	if ch.newAPI {
		bindings, ok := configBindings(params["config"])
		if !ok {
			return nil, unknown
		}
		ch.bindings = bindings
	} else {
		ch.bindings = []binding{legacyBinding(name)}
	}
	return ch, nil
}

// channelToken picks the JWT a channel authorizes with: access_token or the
// legacy user_token from the join payload, else the socket's apikey. Opaque
// "sb_..." keys mean the apikey too.
func (s *session) channelToken(params map[string]json.RawMessage) string {
	str := func(key string) (string, bool) {
		var v string
		raw, ok := params[key]
		if !ok || json.Unmarshal(raw, &v) != nil {
			return "", false
		}
		return v, true
	}
	at, atOK := str("access_token")
	ut, utOK := str("user_token")
	first := at
	if !atOK {
		first = ut
	}
	if strings.HasPrefix(first, "sb_") && (atOK || utOK) {
		return s.token
	}
	switch {
	case utOK:
		return ut
	case atOK:
		return at
	default:
		return s.token
	}
}

// configBindings extracts config.postgres_changes. Null entries are
// dropped; a non-object entry or config fails the join.
func configBindings(config json.RawMessage) ([]binding, bool) {
	config = bytes.TrimSpace(config)
	if string(config) == "null" {
		return nil, true
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(config, &cfg); err != nil {
		return nil, false
	}
	var list []json.RawMessage
	if err := json.Unmarshal(cfg["postgres_changes"], &list); err != nil {
		return nil, true // not a list: no postgres_changes
	}
	var out []binding
	for _, raw := range list {
		raw = bytes.TrimSpace(raw)
		switch {
		case string(raw) == "null":
			continue
		case len(raw) == 0 || raw[0] != '{':
			return nil, false
		}
		out = append(out, parseBinding(compactJSON(raw)))
	}
	return out, true
}

// legacyBinding interprets a topic without config the old way:
// realtime:<schema>[:<table>[:<filter>]].
func legacyBinding(name string) binding {
	parts := strings.SplitN(name, ":", 3)
	params := map[string]string{"schema": parts[0]}
	if len(parts) > 1 {
		params["table"] = parts[1]
	}
	if len(parts) > 2 {
		params["filter"] = parts[2]
	}
	return parseBinding(mustJSON(params))
}

// withID appends "id" to a binding object.
func withID(raw json.RawMessage, id int64) json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw
	}
	if _, dup := m["id"]; dup {
		m["id"] = mustJSON(id)
		return mustJSON(m)
	}
	raw = bytes.TrimSpace(raw)
	idJSON := `"id":` + formatInt(id) + `}`
	if len(m) == 0 {
		return json.RawMessage("{" + idJSON)
	}
	out := make([]byte, 0, len(raw)+len(idJSON)+1)
	out = append(out, raw[:len(raw)-1]...)
	out = append(out, ',')
	out = append(out, idJSON...)
	return out
}

// scheduleSubscribeLocked (re)arms the postgres_changes subscription with
// the channel's current claims. s.mu must be held.
func (s *session) scheduleSubscribeLocked(ch *channel, d time.Duration) {
	ch.subTimer.stop()
	claims := ch.claims
	ch.subTimer = &timerRef{t: s.srv.afterFunc(d, func() { s.subscribe(ch, claims) })}
}

// subscribe validates the channel's bindings (against the database when a
// CDC is attached) and reports the outcome with a postgres_changes system
// message, like RealtimeChannel's :postgres_subscribe handler.
func (s *session) subscribe(ch *channel, claims tokenClaims) {
	s.mu.Lock()
	live := s.currentLocked(ch)
	s.mu.Unlock()
	if !live {
		return
	}
	msg := ""
	for _, b := range ch.bindings {
		if b.ParseError != "" {
			msg = b.ParseError
			break
		}
	}
	if be := s.srv.currentBackend(); msg == "" && be != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for _, b := range ch.bindings {
			if msg = be.validateSubscription(ctx, b, claims); msg != "" {
				break
			}
		}
		cancel()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.currentLocked(ch) {
		return
	}
	if msg != "" {
		s.log.Debug("subscription refused", zap.String("topic", ch.topic), zap.String("message", msg))
		s.send(systemMessage(ch, "postgres_changes", "error", msg))
		return
	}
	ch.subscribed = true
	ch.subClaims = claims
	s.send(systemMessage(ch, "postgres_changes", "ok", "Subscribed to PostgreSQL"))
}

// scheduleTokenCheckLocked arms the periodic token re-check: at the token's
// expiry or after TokenCheckPeriod, whichever is first. s.mu must be held.
func (s *session) scheduleTokenCheckLocked(ch *channel) {
	ch.tokenTimer.stop()
	d := time.Unix(ch.claims.Exp, 0).Sub(s.srv.opts.Now())
	if p := s.srv.opts.TokenCheckPeriod; d > p {
		d = p
	}
	ch.tokenTimer = &timerRef{t: s.srv.afterFunc(d, func() { s.checkToken(ch) })}
}

// checkToken re-verifies the channel's token; an expired token shuts the
// channel down with "Token has expired N seconds ago".
func (s *session) checkToken(ch *channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.currentLocked(ch) {
		return
	}
	claims, terr := verifyTokenKeys(ch.token, s.srv.secret, s.srv.opts.JWKS, s.srv.opts.Now())
	if terr != nil {
		s.shutdownChannelLocked(ch, terr.refreshMessage())
		return
	}
	ch.claims = claims
	s.scheduleTokenCheckLocked(ch)
}

// handleAccessTokenLocked processes an access_token push. It never replies.
// s.mu must be held.
func (s *session) handleAccessTokenLocked(ch *channel, payload json.RawMessage) {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(payload, &p); err != nil {
		return
	}
	var token string
	raw, ok := p["access_token"]
	if !ok || json.Unmarshal(raw, &token) != nil || string(bytes.TrimSpace(raw)) == "null" {
		return // null, missing or not a string: ignored
	}
	s.srv.stats.recordAccessToken(ch.topic, token)
	if strings.HasPrefix(token, "sb_") || token == ch.token {
		return
	}
	ch.token = token
	claims, terr := verifyTokenKeys(token, s.srv.secret, s.srv.opts.JWKS, s.srv.opts.Now())
	if terr != nil {
		s.shutdownChannelLocked(ch, terr.refreshMessage())
		return
	}
	ch.claims = claims
	s.scheduleTokenCheckLocked(ch)
	if len(ch.bindings) > 0 {
		s.scheduleSubscribeLocked(ch, s.srv.opts.ResubscribeDelay)
	}
}
