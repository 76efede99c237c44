package realtimetest

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/meshhook/meshhook-alerts/internal/jsonenc"
)

// message is one Phoenix frame, independent of the serializer version.
// JoinRef and Ref hold the raw JSON the client sent (the server echoes refs
// as-is, whatever their JSON type); nil means JSON null.
type message struct {
	JoinRef json.RawMessage
	Ref     json.RawMessage
	Topic   string
	Event   string
	Payload json.RawMessage
}

// codec converts between messages and text frames of one serializer version.
type codec interface {
	// vsn is the negotiated serializer version, "1.0.0" or "2.0.0".
	vsn() string
	decode(frame []byte) (message, error)
	encode(m message) []byte
	// appendHead appends a frame up to its payload and appendTail the rest
	// after it, so that a payload can be encoded in place.
	appendHead(dst []byte, joinRef, ref json.RawMessage, topic, event string) []byte
	appendTail(dst []byte, ref json.RawMessage) []byte
}

// encodeWith encodes m with the head and tail of c.
func encodeWith(c codec, m message) []byte {
	payload := orEmptyObject(m.Payload)
	dst := make([]byte, 0, len(payload)+len(m.Topic)+len(m.Event)+len(m.JoinRef)+len(m.Ref)+48)
	dst = c.appendHead(dst, m.JoinRef, m.Ref, m.Topic, m.Event)
	dst = append(dst, payload...)
	return c.appendTail(dst, m.Ref)
}

// errMalformed marks a frame the server drops without an answer, like
// Realtime's MalformedWebSocketMessage.
var errMalformed = errors.New("malformed websocket message")

// v1Codec is Phoenix.Socket.V1.JSONSerializer: one JSON object per frame.
// Outgoing frames carry only topic, event, payload and ref (never join_ref).
type v1Codec struct{}

func (v1Codec) vsn() string { return "1.0.0" }

func (v1Codec) decode(frame []byte) (message, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(frame, &obj); err != nil || obj == nil {
		return message{}, fmt.Errorf("%w: expected a JSON object", errMalformed)
	}
	for _, key := range []string{"topic", "event", "payload", "ref"} {
		if _, ok := obj[key]; !ok {
			return message{}, fmt.Errorf("%w: missing key %q", errMalformed, key)
		}
	}
	m := message{JoinRef: nullable(obj["join_ref"]), Ref: nullable(obj["ref"]), Payload: obj["payload"]}
	if err := json.Unmarshal(obj["topic"], &m.Topic); err != nil {
		return message{}, fmt.Errorf("%w: topic is not a string", errMalformed)
	}
	if err := json.Unmarshal(obj["event"], &m.Event); err != nil {
		return message{}, fmt.Errorf("%w: event is not a string", errMalformed)
	}
	return m, nil
}

func (c v1Codec) encode(m message) []byte { return encodeWith(c, m) }

func (v1Codec) appendHead(dst []byte, _, _ json.RawMessage, topic, event string) []byte {
	dst = append(dst, `{"topic":`...)
	dst = jsonenc.AppendString(dst, topic)
	dst = append(dst, `,"event":`...)
	dst = jsonenc.AppendString(dst, event)
	return append(dst, `,"payload":`...)
}

func (v1Codec) appendTail(dst []byte, ref json.RawMessage) []byte {
	dst = append(dst, `,"ref":`...)
	dst = append(dst, orNull(ref)...)
	return append(dst, '}')
}

// v2Codec is Realtime's V2 serializer for text frames:
// [join_ref, ref, topic, event, payload].
type v2Codec struct{}

func (v2Codec) vsn() string { return "2.0.0" }

func (v2Codec) decode(frame []byte) (message, error) {
	var arr []json.RawMessage
	if err := json.Unmarshal(frame, &arr); err != nil || len(arr) < 5 {
		return message{}, fmt.Errorf("%w: expected V2 array", errMalformed)
	}
	m := message{JoinRef: nullable(arr[0]), Ref: nullable(arr[1]), Payload: arr[4]}
	if err := json.Unmarshal(arr[2], &m.Topic); err != nil {
		return message{}, fmt.Errorf("%w: topic is not a string", errMalformed)
	}
	if err := json.Unmarshal(arr[3], &m.Event); err != nil {
		return message{}, fmt.Errorf("%w: event is not a string", errMalformed)
	}
	return m, nil
}

func (c v2Codec) encode(m message) []byte { return encodeWith(c, m) }

func (v2Codec) appendHead(dst []byte, joinRef, ref json.RawMessage, topic, event string) []byte {
	dst = append(dst, '[')
	dst = append(dst, orNull(joinRef)...)
	dst = append(dst, ',')
	dst = append(dst, orNull(ref)...)
	dst = append(dst, ',')
	dst = jsonenc.AppendString(dst, topic)
	dst = append(dst, ',')
	dst = jsonenc.AppendString(dst, event)
	return append(dst, ',')
}

func (v2Codec) appendTail(dst []byte, _ json.RawMessage) []byte {
	return append(dst, ']')
}

// negotiateCodec picks the serializer for the vsn query parameter the way
// Phoenix does: absent means "1.0.0"; "~> 1.0.0" selects V1 and "~> 2.0.0"
// selects V2; anything else is refused.
func negotiateCodec(vsn string) (codec, bool) {
	if vsn == "" {
		vsn = "1.0.0"
	}
	major, minor, ok := parseVersion(vsn)
	switch {
	case !ok:
		return nil, false
	case major == 1 && minor == 0:
		return v1Codec{}, true
	case major == 2 && minor == 0:
		return v2Codec{}, true
	default:
		return nil, false
	}
}

// parseVersion parses a plain semantic version "MAJOR.MINOR.PATCH". Versions
// with pre-release or build suffixes do not satisfy Elixir's "~>" requirement
// and are rejected.
func parseVersion(s string) (major, minor int, ok bool) {
	var parts [3]int
	idx := 0
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if digits > 0 && parts[idx] == 0 {
				return 0, 0, false // leading zero
			}
			if digits >= 9 {
				return 0, 0, false
			}
			parts[idx] = parts[idx]*10 + int(c-'0')
			digits++
		case c == '.' && digits > 0 && idx < 2:
			idx++
			digits = 0
		default:
			return 0, 0, false
		}
	}
	if idx != 2 || digits == 0 {
		return 0, 0, false
	}
	return parts[0], parts[1], true
}

// reply builds a phx_reply message.
func reply(joinRef, ref json.RawMessage, topic, status string, response any) message {
	payload := mustJSON(struct {
		Status   string `json:"status"`
		Response any    `json:"response"`
	}{status, response})
	return message{JoinRef: joinRef, Ref: ref, Topic: topic, Event: "phx_reply", Payload: payload}
}

// emptyObject is the JSON payload {}.
var emptyObject = json.RawMessage(`{}`)

func nullable(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

func orNull(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return []byte("null")
	}
	return raw
}

func orEmptyObject(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return emptyObject
	}
	return raw
}

// mustJSON marshals values that cannot fail to marshal (strings, maps of
// JSON-safe values, structs of those).
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Only reachable with an unsupported value built by this package.
		return json.RawMessage(`null`)
	}
	return b
}
