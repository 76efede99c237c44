package realtimetest

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// typeInfo describes a Postgres type well enough to render its values the
// way Realtime does (to_jsonb of the typed value).
type typeInfo struct {
	OID      uint32
	Name     string // pg_type.typname, e.g. "int8", "_text"
	Elem     *typeInfo
	Category byte // pg_type.typcategory: 'A' array, 'N' numeric, ...
}

// decodeValue converts a column value in Postgres text output format to the
// JSON Realtime puts into record / old_record.
func decodeValue(text string, t *typeInfo) json.RawMessage {
	if t == nil {
		return mustJSON(text)
	}
	if t.Elem != nil && (t.Category == 'A' || strings.HasPrefix(t.Name, "_")) {
		elems, ok := parseArrayLiteral(text)
		if !ok {
			return mustJSON(text)
		}
		return encodeArray(elems, t.Elem)
	}
	switch t.Name {
	case "bytea":
		// Realtime passes wal2json's hex digits through as a string.
		return mustJSON(strings.TrimPrefix(text, `\x`))
	}
	return scalarJSON(text, t.Name)
}

// scalarJSON renders one non-array value like to_jsonb(value::type).
func scalarJSON(text, typ string) json.RawMessage {
	switch typ {
	case "int2", "int4", "int8", "oid", "xid", "cid", "numeric", "float4", "float8":
		if isJSONNumber(text) {
			return json.RawMessage(text)
		}
		return mustJSON(text) // NaN, Infinity
	case "bool":
		switch text {
		case "t", "true":
			return json.RawMessage("true")
		case "f", "false":
			return json.RawMessage("false")
		}
		return mustJSON(text)
	case "json", "jsonb":
		if json.Valid([]byte(text)) {
			return compactJSON([]byte(text))
		}
		return mustJSON(text)
	case "timestamptz":
		if t, ok := parsePGTimestamp(text, true); ok {
			return mustJSON(t.UTC().Format("2006-01-02T15:04:05.999999-07:00"))
		}
		return mustJSON(text)
	case "timestamp":
		if t, ok := parsePGTimestamp(text, false); ok {
			return mustJSON(t.Format("2006-01-02T15:04:05.999999"))
		}
		return mustJSON(text)
	case "bytea":
		// to_jsonb(bytea) inside arrays keeps the \x form.
		return mustJSON(text)
	default:
		return mustJSON(text)
	}
}

func encodeArray(elems []arrayElem, elem *typeInfo) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, e := range elems {
		if i > 0 {
			b.WriteByte(',')
		}
		switch {
		case e.IsArray:
			b.Write(encodeArray(e.Sub, elem))
		case e.Null:
			b.WriteString("null")
		default:
			b.Write(scalarJSON(e.Text, elem.Name))
		}
	}
	b.WriteByte(']')
	return b.Bytes()
}

// isJSONNumber reports whether s is a valid JSON number.
func isJSONNumber(s string) bool {
	if s == "" {
		return false
	}
	var n json.Number
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return false
	}
	return n.String() == s && !dec.More()
}

// parsePGTimestamp parses Postgres ISO DateStyle output such as
// "2025-11-03 09:32:55.123+00" or "2025-11-03 09:32:55+05:30".
func parsePGTimestamp(s string, withZone bool) (time.Time, bool) {
	layouts := []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"}
	if withZone {
		layouts = []string{
			"2006-01-02 15:04:05.999999999Z07",
			"2006-01-02 15:04:05.999999999Z07:00",
			"2006-01-02 15:04:05.999999999Z07:00:00",
			"2006-01-02T15:04:05.999999999Z07:00",
		}
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
