package realtimetest

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
)

// inspectJSON renders a decoded JSON value the way Elixir's inspect/1 renders
// the term Jason decodes it to. Realtime embeds such renderings in some error
// messages (e.g. "No subscription params provided ...: %{...}").
func inspectJSON(raw json.RawMessage) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "nil"
	}
	var b strings.Builder
	inspectValue(&b, v)
	return b.String()
}

func inspectValue(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("nil")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case json.Number:
		b.WriteString(inspectNumber(x))
	case string:
		b.WriteString(inspectString(x))
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			inspectValue(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		// Small Elixir maps iterate in term order; for binary keys that is
		// byte order.
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("%{")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(inspectString(k))
			b.WriteString(" => ")
			inspectValue(b, x[k])
		}
		b.WriteByte('}')
	default:
		b.WriteString("nil")
	}
}

// inspectNumber renders integers as-is and floats in Elixir's shortest
// round-trip form (always with a fractional part or exponent).
func inspectNumber(n json.Number) string {
	s := n.String()
	if !strings.ContainsAny(s, ".eE") {
		return s
	}
	f, err := n.Float64()
	if err != nil {
		return s
	}
	out := strconv.FormatFloat(f, 'g', -1, 64)
	if strings.ContainsAny(out, "e") {
		mant, exp, _ := strings.Cut(out, "e")
		if !strings.Contains(mant, ".") {
			mant += ".0"
		}
		exp = strings.TrimPrefix(exp, "+")
		return mant + "e" + exp
	}
	if !strings.Contains(out, ".") {
		out += ".0"
	}
	return out
}

// inspectString quotes a string like Elixir's inspect/1 for printable binaries.
func inspectString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		case '#':
			if i+1 < len(s) && s[i+1] == '{' {
				b.WriteString(`\#`)
			} else {
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
