package supabase

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The wire types below decode column values leniently, so the same decoder
// reads PostgREST rows (typed JSON) and Realtime records, where some values
// may arrive in Postgres' text form.

// pgTime is a timestamptz: RFC 3339 (PostgREST) or Postgres' text output.
// null decodes to the zero time.
type pgTime struct{ time.Time }

func (t *pgTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp: want a string, got %s", b)
	}
	v, err := ParseTimestamp(s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999Z07:00:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z07:00:00",
}

var localLayouts = []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"}

// ParseTimestamp parses a timestamp as PostgREST, Realtime or Postgres
// print it ("2026-01-02T03:04:05.123456+00:00", "2026-01-02 03:04:05.123456+00",
// "…Z"). A value without a zone (a timestamp column) is taken as UTC.
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timestampLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	for _, l := range localLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q: unrecognised format", s)
}

// textArray is a text[]: a JSON array of strings, or Postgres' array literal
// ("{a,b}"). NULL elements decode as "". null decodes to nil.
type textArray []string

func (a *textArray) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*a = nil
		return nil
	}
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := parsePGArray(s)
		if err != nil {
			return err
		}
		*a = v
		return nil
	}
	var elems []*string
	if err := json.Unmarshal(b, &elems); err != nil {
		return fmt.Errorf("text array: %w", err)
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		if e != nil {
			out[i] = *e
		}
	}
	*a = out
	return nil
}

// parsePGArray parses a one-dimensional Postgres text array literal.
func parsePGArray(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, fmt.Errorf("text array %q: want {…}", s)
	}
	body := s[1 : len(s)-1]
	out := []string{}
	if strings.TrimSpace(body) == "" {
		return out, nil
	}
	var cur strings.Builder
	quoted, inQuotes, escaped := false, false, false
	flush := func() {
		v := cur.String()
		if !quoted {
			v = strings.TrimSpace(v)
			if strings.EqualFold(v, "NULL") {
				v = ""
			}
		}
		out = append(out, v)
		cur.Reset()
		quoted = false
	}
	for _, r := range body {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			escaped = true
		case r == '"':
			inQuotes = !inQuotes
			quoted = true
		case r == ',' && !inQuotes:
			flush()
		case r == '{' && !inQuotes:
			return nil, fmt.Errorf("text array %q: nested arrays are not supported", s)
		default:
			cur.WriteRune(r)
		}
	}
	if inQuotes || escaped {
		return nil, fmt.Errorf("text array %q: unterminated quote", s)
	}
	flush()
	return out, nil
}

// flexInt is an integer column: a JSON number or a numeric string. null
// decodes to 0.
type flexInt int64

func (n *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*n = 0
		return nil
	}
	s = strings.Trim(s, `"`)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) {
			return fmt.Errorf("integer: got %s", b)
		}
		v = int64(f)
	}
	*n = flexInt(v)
	return nil
}

// flexBool is a boolean column: a JSON boolean or Postgres' t/f text.
type flexBool bool

func (v *flexBool) UnmarshalJSON(b []byte) error {
	switch strings.Trim(strings.TrimSpace(string(b)), `"`) {
	case "true", "t":
		*v = true
	case "false", "f", "null":
		*v = false
	default:
		return fmt.Errorf("boolean: got %s", b)
	}
	return nil
}

// nullString is a nullable text column; null decodes to "".
type nullString string

func (v *nullString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*v = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		// A non-text value (a uuid is text in JSON, but be lenient with numbers).
		var n json.Number
		if json.Unmarshal(b, &n) != nil {
			return fmt.Errorf("text: got %s", b)
		}
		s = n.String()
	}
	*v = nullString(s)
	return nil
}

// headerMap is custom_headers: a JSON object of string values, possibly
// delivered as a JSON string holding that object.
type headerMap map[string]string

func (h *headerMap) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*h = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(s)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return errors.New("want a JSON object of header names to string values")
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("header %q: value must be a string", k)
		}
		out[k] = s
	}
	*h = out
	return nil
}

// nullable returns nil for the zero value of a nullable column, else &v.
func nullable[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

// nullableTime returns nil for the zero time, else its body format.
func nullableTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := bodyTime(t)
	return &s
}

// rowDecoder decodes a row column by column so that an error names the
// column. Absent columns keep their zero value.
type rowDecoder struct {
	what string
	raw  map[string]json.RawMessage
	errs []error
}

func newRowDecoder(what string, raw []byte) (*rowDecoder, error) {
	d := &rowDecoder{what: what}
	if err := json.Unmarshal(raw, &d.raw); err != nil || d.raw == nil {
		return nil, fmt.Errorf("%s: want a JSON object", what)
	}
	return d, nil
}

func (d *rowDecoder) field(name string, dst any) {
	v, ok := d.raw[name]
	if !ok {
		return
	}
	if err := json.Unmarshal(v, dst); err != nil {
		d.fail(name, err)
	}
}

func (d *rowDecoder) fail(name string, err error) {
	d.errs = append(d.errs, fmt.Errorf("%s: %w", name, err))
}

func (d *rowDecoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", d.what, errors.Join(d.errs...))
}
