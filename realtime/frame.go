package realtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/meshhook/meshhook-alerts/internal/jsonenc"
	"github.com/meshhook/meshhook-alerts/internal/jsonscan"
)

// Serializer versions understood by Realtime (the "vsn" query parameter).
const (
	// VsnV1 selects Phoenix V1 frames: JSON objects with the keys topic,
	// event, payload, ref (and join_ref client to server).
	VsnV1 = "1.0.0"
	// VsnV2 selects Phoenix V2 frames: JSON arrays
	// [join_ref, ref, topic, event, payload]. It is the default.
	VsnV2 = "2.0.0"
)

// Phoenix and Realtime event names.
const (
	eventJoin            = "phx_join"
	eventLeave           = "phx_leave"
	eventReply           = "phx_reply"
	eventClose           = "phx_close"
	eventError           = "phx_error"
	eventHeartbeat       = "heartbeat"
	eventSystem          = "system"
	eventAccessToken     = "access_token"
	eventPostgresChanges = "postgres_changes"

	topicPhoenix = "phoenix"
	topicPrefix  = "realtime:"
)

// ErrMalformedFrame is wrapped by every error returned by [DecodeFrame].
var ErrMalformedFrame = errors.New("malformed frame")

// Frame is one Phoenix message in either serializer version.
//
// JoinRef and Ref are the message references; the empty string stands for
// JSON null (absent). Payload is the raw JSON object; a nil Payload is
// encoded as {}.
type Frame struct {
	JoinRef string
	Ref     string
	Topic   string
	Event   string
	Payload json.RawMessage
}

const (
	jsonNull        = "null"
	jsonEmptyObject = "{}"
)

// EncodeFrame encodes f as a text frame for the serializer version vsn
// (VsnV1 or VsnV2). Empty refs are written as null in V2 and omitted (ref:
// null, no join_ref) in V1. The payload must be a JSON object.
func EncodeFrame(vsn string, f Frame) ([]byte, error) {
	payload := f.Payload
	if len(payload) == 0 {
		payload = json.RawMessage(jsonEmptyObject)
	}
	if !isJSONObject(payload) {
		return nil, fmt.Errorf("encode frame: payload of %q is not a JSON object", f.Event)
	}
	var buf bytes.Buffer
	buf.Grow(len(payload) + len(f.Topic) + len(f.Event) + 48)
	switch vsn {
	case VsnV2:
		buf.WriteByte('[')
		writeRef(&buf, f.JoinRef)
		buf.WriteByte(',')
		writeRef(&buf, f.Ref)
		buf.WriteByte(',')
		writeJSONString(&buf, f.Topic)
		buf.WriteByte(',')
		writeJSONString(&buf, f.Event)
		buf.WriteByte(',')
		buf.Write(payload)
		buf.WriteByte(']')
	case VsnV1:
		buf.WriteString(`{"topic":`)
		writeJSONString(&buf, f.Topic)
		buf.WriteString(`,"event":`)
		writeJSONString(&buf, f.Event)
		buf.WriteString(`,"payload":`)
		buf.Write(payload)
		buf.WriteString(`,"ref":`)
		writeRef(&buf, f.Ref)
		if f.JoinRef != "" {
			buf.WriteString(`,"join_ref":`)
			writeJSONString(&buf, f.JoinRef)
		}
		buf.WriteByte('}')
	default:
		return nil, fmt.Errorf("encode frame: unsupported vsn %q", vsn)
	}
	return buf.Bytes(), nil
}

// DecodeFrame decodes one text frame of serializer version vsn. It accepts
// string, number and null refs (numbers are kept as their decimal text) and
// requires string topic and event and an object payload. Every error wraps
// [ErrMalformedFrame].
func DecodeFrame(vsn string, data []byte) (Frame, error) {
	return decodeFrame(vsn, data, false)
}

// decodeFrame is DecodeFrame; with lazyChanges, a V2 postgres_changes
// payload is not checked to be valid JSON, because the caller decodes it
// next (which checks it): the payload is most of a change frame, and
// scanning it twice more cost a quarter of the client's CPU.
func decodeFrame(vsn string, data []byte, lazyChanges bool) (Frame, error) {
	switch vsn {
	case VsnV2:
		f, err := decodeV2(data)
		if err != nil {
			return Frame{}, err
		}
		if !(lazyChanges && f.Event == eventPostgresChanges) && !json.Valid(f.Payload) {
			return Frame{}, fmt.Errorf("%w: payload is not valid JSON", ErrMalformedFrame)
		}
		return f, nil
	case VsnV1:
		return decodeV1(data)
	default:
		return Frame{}, fmt.Errorf("%w: unsupported vsn %q", ErrMalformedFrame, vsn)
	}
}

// decodeV2 decodes a V2 frame, [join_ref, ref, topic, event, payload],
// reading its four small leading elements with internal/jsonscan (which
// checks them) and taking the rest, up to the closing bracket, as the
// payload without scanning it (see decodeFrame).
func decodeV2(data []byte) (Frame, error) {
	rest := bytes.TrimSpace(data)
	if len(rest) < 2 || rest[0] != '[' || rest[len(rest)-1] != ']' {
		return Frame{}, fmt.Errorf("%w: expected a JSON array", ErrMalformedFrame)
	}
	p := jsonscan.NewParser(rest[:len(rest)-1])
	p.Consume('[')
	var f Frame
	for i, dst := range [...]*string{&f.JoinRef, &f.Ref, &f.Topic, &f.Event} {
		name := [...]string{"join_ref", "ref", "topic", "event"}[i]
		p.SkipSpace()
		var err error
		switch c := p.Peek(); {
		case c == '"':
			*dst, err = p.Str()
		case i >= 2:
			err = errors.New("must be a string")
		case c == '-' || ('0' <= c && c <= '9'):
			var lit []byte
			lit, err = p.Number()
			*dst = string(lit) // a number ref is kept as its decimal text
		case c == 'n' && p.Literal(jsonNull):
		default:
			err = errors.New("must be a string, number or null")
		}
		if err != nil {
			return Frame{}, fmt.Errorf("%w: %s: %v", ErrMalformedFrame, name, err)
		}
		p.SkipSpace()
		if !p.Consume(',') {
			return Frame{}, fmt.Errorf("%w: expected 5 array elements, got %d", ErrMalformedFrame, i+1)
		}
	}
	payload := bytes.TrimSpace(rest[p.Offset() : len(rest)-1])
	if !isJSONObject(payload) {
		return Frame{}, fmt.Errorf("%w: payload is not a JSON object", ErrMalformedFrame)
	}
	f.Payload = payload
	return f, nil
}

// v1Frame is the V1 wire object. Refs are raw so that null, strings and
// numbers can be told apart.
type v1Frame struct {
	Topic   *string         `json:"topic"`
	Event   *string         `json:"event"`
	Payload json.RawMessage `json:"payload"`
	Ref     json.RawMessage `json:"ref"`
	JoinRef json.RawMessage `json:"join_ref"`
}

func decodeV1(data []byte) (Frame, error) {
	var w v1Frame
	if err := json.Unmarshal(data, &w); err != nil {
		return Frame{}, fmt.Errorf("%w: expected a JSON object: %v", ErrMalformedFrame, err)
	}
	if w.Topic == nil {
		return Frame{}, fmt.Errorf("%w: missing topic", ErrMalformedFrame)
	}
	if w.Event == nil {
		return Frame{}, fmt.Errorf("%w: missing event", ErrMalformedFrame)
	}
	if !isJSONObject(w.Payload) {
		return Frame{}, fmt.Errorf("%w: payload is missing or not a JSON object", ErrMalformedFrame)
	}
	f := Frame{Topic: *w.Topic, Event: *w.Event, Payload: w.Payload}
	var err error
	if f.Ref, err = decodeRef(w.Ref); err != nil {
		return Frame{}, fmt.Errorf("%w: ref: %v", ErrMalformedFrame, err)
	}
	if f.JoinRef, err = decodeRef(w.JoinRef); err != nil {
		return Frame{}, fmt.Errorf("%w: join_ref: %v", ErrMalformedFrame, err)
	}
	return f, nil
}

// decodeRef turns a JSON ref (string, number or null; absent = nil) into its
// string form, "" for null.
func decodeRef(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == jsonNull {
		return "", nil
	}
	switch raw[0] {
	case '"':
		return jsonscan.DecodeString(raw)
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), nil
	default:
		return "", errors.New("must be a string, number or null")
	}
}

// isJSONObject reports whether raw looks like a JSON object. raw comes from
// encoding/json (already validated) or from our own marshalling.
func isJSONObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) >= 2 && raw[0] == '{' && raw[len(raw)-1] == '}'
}

func writeRef(buf *bytes.Buffer, ref string) {
	if ref == "" {
		buf.WriteString(jsonNull)
		return
	}
	writeJSONString(buf, ref)
}

// writeJSONString writes s as a JSON string, escaped as encoding/json
// escapes it.
func writeJSONString(buf *bytes.Buffer, s string) {
	buf.Write(jsonenc.AppendString(buf.AvailableBuffer(), s))
}

// formatRef renders a per-socket counter value as a ref string.
func formatRef(n uint64) string { return strconv.FormatUint(n, 10) }
