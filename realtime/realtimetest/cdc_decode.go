package realtimetest

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/meshhook/meshhook-alerts/internal/jsonenc"
)

// typeInfo describes a Postgres type well enough to render its values the
// way Realtime does (to_jsonb of the typed value).
type typeInfo struct {
	OID      uint32
	Name     string // pg_type.typname, e.g. "int8", "_text"
	Elem     *typeInfo
	Category byte // pg_type.typcategory: 'A' array, 'N' numeric, ...
}

// valueKind is how values of a type are rendered; it is derived once per
// column so that decoding a value does not compare type names.
type valueKind uint8

const (
	kindString      valueKind = iota // a JSON string of the text: text, uuid and every type without a rule below
	kindNumber                       // integers, numeric, floats: a JSON number, or a string for NaN and Infinity
	kindBool                         // true / false
	kindJSON                         // json, jsonb: the document, compacted
	kindTimestamptz                  // an ISO 8601 string in UTC with +00:00
	kindTimestamp                    // an ISO 8601 string without zone
	kindBytea                        // the hex digits without \x, as a string (top level only)
	kindArray                        // a JSON array of the element type's values
)

// kindOf returns how values of t are rendered at the top level of a record.
func kindOf(t *typeInfo) valueKind {
	switch {
	case t == nil:
		return kindString
	case t.Elem != nil && (t.Category == 'A' || strings.HasPrefix(t.Name, "_")):
		return kindArray
	case t.Name == "bytea":
		// Realtime passes wal2json's hex digits through as a string.
		return kindBytea
	}
	return scalarKind(t.Name)
}

// scalarKind returns how one non-array value of the named type is rendered,
// like to_jsonb(value::type). Inside arrays bytea keeps its \x form.
func scalarKind(typ string) valueKind {
	switch typ {
	case "int2", "int4", "int8", "oid", "xid", "cid", "numeric", "float4", "float8":
		return kindNumber
	case "bool":
		return kindBool
	case "json", "jsonb":
		return kindJSON
	case "timestamptz":
		return kindTimestamptz
	case "timestamp":
		return kindTimestamp
	default:
		return kindString
	}
}

// decodeValue converts a column value in Postgres text output format to the
// JSON Realtime puts into record / old_record.
func decodeValue(text string, t *typeInfo) json.RawMessage {
	var elem *typeInfo
	if t != nil {
		elem = t.Elem
	}
	return appendValue(nil, []byte(text), kindOf(t), elem)
}

// appendValue appends the JSON of one column value in Postgres text output
// format, rendered as kind; elem is the element type of arrays. Strings are
// escaped exactly as encoding/json escapes them; json and jsonb documents
// are compacted but otherwise kept, so they may still hold characters
// (<, >, &, U+2028, U+2029) that encoding/json escapes when it embeds them
// (see needsHTMLEscape).
func appendValue(dst, text []byte, kind valueKind, elem *typeInfo) []byte {
	switch kind {
	case kindArray:
		elems, ok := parseArrayLiteral(string(text))
		if !ok || elem == nil {
			return jsonenc.AppendString(dst, text)
		}
		return appendArray(dst, elems, scalarKind(elem.Name))
	case kindBytea:
		return jsonenc.AppendString(dst, bytes.TrimPrefix(text, []byte(`\x`)))
	}
	return appendScalar(dst, text, kind)
}

// appendScalar appends one non-array value rendered as kind.
func appendScalar(dst, text []byte, kind valueKind) []byte {
	switch kind {
	case kindNumber:
		if isJSONNumber(text) {
			return append(dst, text...)
		}
	case kindBool:
		switch string(text) {
		case "t", "true":
			return append(dst, "true"...)
		case "f", "false":
			return append(dst, "false"...)
		}
	case kindJSON:
		buf := bytes.NewBuffer(dst)
		if err := json.Compact(buf, text); err == nil {
			return buf.Bytes()
		}
	case kindTimestamptz:
		if t, ok := parsePGTimestamp(text, true); ok {
			dst = append(dst, '"')
			dst = appendISOTime(dst, t.UTC(), true)
			return append(dst, '"')
		}
	case kindTimestamp:
		if t, ok := parsePGTimestamp(text, false); ok {
			dst = append(dst, '"')
			dst = appendISOTime(dst, t, false)
			return append(dst, '"')
		}
	}
	return jsonenc.AppendString(dst, text)
}

func appendArray(dst []byte, elems []arrayElem, kind valueKind) []byte {
	dst = append(dst, '[')
	for i, e := range elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch {
		case e.IsArray:
			dst = appendArray(dst, e.Sub, kind)
		case e.Null:
			dst = append(dst, "null"...)
		default:
			dst = appendScalar(dst, []byte(e.Text), kind)
		}
	}
	return append(dst, ']')
}

// isJSONNumber reports whether s is a valid JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = skipDigits(s, i+1)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(s)
}

func skipDigits(s []byte, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// parsePGTimestamp parses Postgres ISO DateStyle output such as
// "2025-11-03 09:32:55.123+00" or "2025-11-03 09:32:55+05:30". The usual
// form is read directly; anything else goes through time.Parse.
func parsePGTimestamp(s []byte, withZone bool) (time.Time, bool) {
	if t, ok := parseISOFast(s, withZone); ok {
		return t, true
	}
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
		if t, err := time.Parse(l, string(s)); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parseISOFast reads "YYYY-MM-DD HH:MM:SS[.fraction]" followed, with
// withZone, by "+HH", "+HH:MM" or "+HH:MM:SS" (or "-"). It accepts only
// values time.Parse would read the same way with parsePGTimestamp's
// layouts and reports false for everything else (other forms, out of range
// fields), which then take the slow path.
func parseISOFast(s []byte, withZone bool) (time.Time, bool) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := s[19:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		n := skipDigits(rest, 1) - 1
		if n < 1 || n > 9 {
			return time.Time{}, false
		}
		f, _ := digits(rest[1 : 1+n])
		for range 9 - n {
			f *= 10
		}
		nsec = f
		rest = rest[1+n:]
	}
	offset := 0
	if withZone {
		if len(rest) < 3 || (rest[0] != '+' && rest[0] != '-') {
			return time.Time{}, false
		}
		sign := rest[0]
		hh, ok := digits(rest[1:3])
		if !ok || hh > 15 {
			return time.Time{}, false
		}
		offset = hh * 3600
		rest = rest[3:]
		for unit := 60; len(rest) > 0 && unit >= 1; unit /= 60 {
			if len(rest) < 3 || rest[0] != ':' {
				return time.Time{}, false
			}
			v, ok := digits(rest[1:3])
			if !ok || v > 59 {
				return time.Time{}, false
			}
			offset += v * unit
			rest = rest[3:]
		}
		if sign == '-' {
			offset = -offset
		}
	}
	if len(rest) != 0 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// digits parses a run of ASCII digits.
func digits(s []byte) (int, bool) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(s) > 0
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	default:
		return 31
	}
}

// appendISOTime appends t as time.Format with the layout
// "2006-01-02T15:04:05.999999" (and "-07:00" when withZone; t must then be
// UTC, which prints "+00:00").
func appendISOTime(dst []byte, t time.Time, withZone bool) []byte {
	year, month, day := t.Date()
	if year < 1 || year > 9999 {
		layout := "2006-01-02T15:04:05.999999"
		if withZone {
			layout += "-07:00"
		}
		return t.AppendFormat(dst, layout)
	}
	hour, minute, sec := t.Clock()
	dst = appendPadded(dst, year, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendPadded(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, sec, 2)
	if us := t.Nanosecond() / 1000; us != 0 {
		n := 6
		for us%10 == 0 {
			us /= 10
			n--
		}
		dst = append(dst, '.')
		dst = appendPadded(dst, us, n)
	}
	if withZone {
		dst = append(dst, "+00:00"...)
	}
	return dst
}

// appendPadded appends the non-negative v in decimal, zero-padded to width.
func appendPadded(dst []byte, v, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v >= 10 || width > 1 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	i--
	buf[i] = byte('0' + v)
	return append(dst, buf[i:]...)
}

// needsHTMLEscape reports whether encoding/json would escape something in
// the JSON text v when embedding it (<, >, &, U+2028, U+2029).
func needsHTMLEscape(v []byte) bool {
	for i, c := range v {
		switch c {
		case '<', '>', '&':
			return true
		case 0xE2:
			if i+2 < len(v) && v[i+1] == 0x80 && v[i+2]&^1 == 0xA8 {
				return true
			}
		}
	}
	return false
}

// htmlEscaped returns v as encoding/json embeds compact JSON text: with <,
// >, &, U+2028 and U+2029 escaped. It returns v itself when nothing needs
// escaping.
func htmlEscaped(v []byte) []byte {
	if !needsHTMLEscape(v) {
		return v
	}
	var b bytes.Buffer
	json.HTMLEscape(&b, v)
	return b.Bytes()
}
