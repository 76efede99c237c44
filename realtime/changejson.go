package realtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file decodes a postgres_changes payload in one pass over its bytes.
//
// The reader spent about half the daemon's CPU in encoding/json on these
// payloads under load: a json.Decoder scans the whole value once to find
// its end, again to check it and a third time to fill the struct through
// reflection. The decoder here accepts exactly what encoding/json (with
// UseNumber) accepts into the wire struct and yields the same values; a
// differential fuzz test holds it to that. In particular:
//
//   - any JSON syntax error, anywhere in the payload, is an error, and so is
//     anything but white space after it;
//   - object keys match the struct's fields case-insensitively, as
//     bytes.EqualFold does, after unescaping;
//   - a value of the wrong type for a known field is an error; null leaves
//     a string field as it was, and sets a map, slice or pointer to nil;
//   - a repeated key overwrites, except that a repeated "data" or "record"
//     object merges into the earlier one;
//   - strings are unescaped as encoding/json does, invalid UTF-8 and lone
//     surrogates becoming U+FFFD;
//   - record values are json.Number, string, bool, nil, []any or
//     map[string]any;
//   - nesting deeper than 10,000 is an error.

// maxNestingDepth is encoding/json's limit on nested arrays and objects.
const maxNestingDepth = 10000

// changeParser is the state of one payload's decoding.
type changeParser struct {
	b     []byte
	i     int
	depth int
}

// wireData is the payload's "data" object as decoded.
type wireData struct {
	schema, table, typ string
	commitTimestamp    *string
	columns            []byte // the raw "columns" value; nil if absent
	record, oldRecord  map[string]any
	errors             []string
}

var errSyntax = errors.New("invalid JSON")

// syntaxError reports a JSON syntax error at the parser's position.
func (p *changeParser) syntaxError(what string) error {
	if p.i >= len(p.b) {
		return fmt.Errorf("%w: unexpected end of input, %s", errSyntax, what)
	}
	return fmt.Errorf("%w: unexpected %q at offset %d, %s", errSyntax, p.b[p.i], p.i, what)
}

// typeError reports a value of the wrong type for field.
func typeError(field, want string) error {
	return fmt.Errorf("%s: want %s", field, want)
}

// parseChangePayload decodes a postgres_changes payload into ids and data.
func parseChangePayload(payload []byte) (ids []int64, d wireData, err error) {
	p := changeParser{b: payload}
	var slots []idSlot
	p.skipSpace()
	// The payload: an object, or null (which leaves everything empty).
	if p.literal("null") {
		return []int64{}, d, p.end()
	}
	var typeErr error // the first wrong type; decoding goes on, as encoding/json's does
	note := func(e error) {
		if typeErr == nil {
			typeErr = e
		}
	}
	if p.peek() != '{' {
		if err := p.skipValue(); err != nil {
			return nil, d, err
		}
		note(typeError("payload", "an object"))
	} else if err := p.object(func(key []byte) error {
		switch {
		case fieldIs(key, "ids"):
			v, terr, err := p.ids(slots)
			if err != nil {
				return err
			}
			if terr != nil {
				note(terr)
			}
			slots = v
		case fieldIs(key, "data"):
			terr, err := p.data(&d)
			if err != nil {
				return err
			}
			if terr != nil {
				note(terr)
			}
		default:
			return p.skipValue()
		}
		return nil
	}); err != nil {
		return nil, d, err
	}
	if err := p.end(); err != nil {
		return nil, d, err
	}
	ids = make([]int64, 0, len(slots))
	for _, s := range slots {
		if s.ok {
			ids = append(ids, s.n)
		}
	}
	return ids, d, typeErr
}

// end checks that only white space follows the payload.
func (p *changeParser) end() error {
	p.skipSpace()
	if p.i != len(p.b) {
		return errors.New("data after the payload object")
	}
	return nil
}

// idSlot is one element of "ids": its value, if it is a 64-bit integer.
type idSlot struct {
	n  int64
	ok bool
}

// ids decodes "ids": null or an array of numbers or strings holding
// numbers. As encoding/json does, a repeated key decodes into the earlier
// slice: a null element keeps what the earlier array had at its index.
func (p *changeParser) ids(prev []idSlot) (slots []idSlot, typeErr, err error) {
	if done, terr, err := p.nullOr('[', "ids", "an array"); done {
		return nil, terr, err
	}
	slots = make([]idSlot, 0, 4)
	err = p.array(func() error {
		var slot idSlot
		switch c := p.peek(); {
		case c == '-' || (c >= '0' && c <= '9'):
			lit, err := p.number()
			if err != nil {
				return err
			}
			slot.n, err = strconv.ParseInt(string(lit), 10, 64)
			slot.ok = err == nil
		case c == '"':
			s, err := p.str()
			if err != nil {
				return err
			}
			if !validNumber(s) {
				if typeErr == nil {
					typeErr = fmt.Errorf("ids: invalid number literal %q", s)
				}
			} else {
				slot.n, err = strconv.ParseInt(s, 10, 64)
				slot.ok = err == nil
			}
		case c == 'n':
			if !p.literal("null") {
				return p.syntaxError("in a literal")
			}
			if i := len(slots); i < len(prev) {
				slot = prev[i]
			}
		default:
			if err := p.skipValue(); err != nil {
				return err
			}
			if typeErr == nil {
				typeErr = typeError("ids", "numbers")
			}
		}
		slots = append(slots, slot)
		return nil
	})
	return slots, typeErr, err
}

// data decodes "data" into d (merging into what an earlier "data" set).
func (p *changeParser) data(d *wireData) (typeErr, err error) {
	note := func(e error) {
		if typeErr == nil {
			typeErr = e
		}
	}
	if done, terr, err := p.nullOr('{', "data", "an object"); done {
		return terr, err // null leaves data as it was
	}
	err = p.object(func(key []byte) error {
		var terr error
		var err error
		switch {
		case fieldIs(key, "schema"):
			terr, err = p.stringField("data.schema", &d.schema)
		case fieldIs(key, "table"):
			terr, err = p.stringField("data.table", &d.table)
		case fieldIs(key, "type"):
			terr, err = p.stringField("data.type", &d.typ)
		case fieldIs(key, "commit_timestamp"):
			if p.literal("null") {
				d.commitTimestamp = nil
				return nil
			}
			var s string
			if terr, err = p.stringField("data.commit_timestamp", &s); err == nil && terr == nil {
				d.commitTimestamp = &s
			}
		case fieldIs(key, "columns"):
			start := p.i
			if err = p.skipValue(); err == nil {
				d.columns = p.b[start:p.i:p.i]
			}
		case fieldIs(key, "record"):
			terr, err = p.recordField("data.record", &d.record)
		case fieldIs(key, "old_record"):
			terr, err = p.recordField("data.old_record", &d.oldRecord)
		case fieldIs(key, "errors"):
			terr, err = p.stringsField("data.errors", &d.errors)
		default:
			err = p.skipValue()
		}
		if terr != nil {
			note(terr)
		}
		return err
	})
	return typeErr, err
}

// nullOr starts a value that must be null or open with delim. It consumes a
// null, and skips a value of any other type, returning a type error naming
// field and what it wants: either way done is true and the value is
// consumed (a null is done with neither error). Otherwise the value, which
// opens with delim, is left to the caller.
func (p *changeParser) nullOr(delim byte, field, want string) (done bool, typeErr, err error) {
	switch p.peek() {
	case 'n':
		if !p.literal("null") {
			return true, nil, p.syntaxError("in a literal")
		}
		return true, nil, nil
	case delim:
		return false, nil, nil
	}
	if err := p.skipValue(); err != nil {
		return true, nil, err
	}
	return true, typeError(field, want), nil
}

// stringField decodes a string into *dst; null leaves it as it was.
func (p *changeParser) stringField(field string, dst *string) (typeErr, err error) {
	switch p.peek() {
	case '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		*dst = s
		return nil, nil
	case 'n':
		if !p.literal("null") {
			return nil, p.syntaxError("in a literal")
		}
		return nil, nil
	}
	if err := p.skipValue(); err != nil {
		return nil, err
	}
	return typeError(field, "a string"), nil
}

// stringsField decodes null or an array of strings (null elements are "").
func (p *changeParser) stringsField(field string, dst *[]string) (typeErr, err error) {
	if done, terr, err := p.nullOr('[', field, "an array of strings"); done {
		if terr == nil && err == nil {
			*dst = nil
		}
		return terr, err
	}
	// As encoding/json does, a repeated key decodes into the earlier slice:
	// a null element keeps what the earlier array had at its index.
	prev := *dst
	out := []string{}
	err = p.array(func() error {
		var s string
		if i := len(out); i < len(prev) {
			s = prev[i]
		}
		terr, err := p.stringField(field, &s)
		if terr != nil && typeErr == nil {
			typeErr = terr
		}
		out = append(out, s)
		return err
	})
	*dst = out
	return typeErr, err
}

// recordField decodes null or an object of any values into *dst, merging
// into a map an earlier key left there.
func (p *changeParser) recordField(field string, dst *map[string]any) (typeErr, err error) {
	if done, terr, err := p.nullOr('{', field, "an object"); done {
		if terr == nil && err == nil {
			*dst = nil
		}
		return terr, err
	}
	if *dst == nil {
		*dst = make(map[string]any, 16)
	}
	m := *dst
	return nil, p.objectKeys(func(key string) error {
		v, err := p.value()
		if err != nil {
			return err
		}
		m[key] = v
		return nil
	})
}

// value decodes any JSON value as encoding/json decodes into an any with
// UseNumber.
func (p *changeParser) value() (any, error) {
	switch c := p.peek(); {
	case c == '"':
		return p.str()
	case c == '{':
		m := map[string]any{}
		err := p.objectKeys(func(key string) error {
			v, err := p.value()
			if err != nil {
				return err
			}
			m[key] = v
			return nil
		})
		return m, err
	case c == '[':
		a := []any{}
		err := p.array(func() error {
			v, err := p.value()
			if err != nil {
				return err
			}
			a = append(a, v)
			return nil
		})
		return a, err
	case c == '-' || (c >= '0' && c <= '9'):
		lit, err := p.number()
		return json.Number(lit), err
	case c == 't':
		if p.literal("true") {
			return true, nil
		}
	case c == 'f':
		if p.literal("false") {
			return false, nil
		}
	case c == 'n':
		if p.literal("null") {
			return nil, nil
		}
	}
	return nil, p.syntaxError("looking for a value")
}

// skipValue checks and skips one value of any type.
func (p *changeParser) skipValue() error {
	switch c := p.peek(); {
	case c == '"':
		_, err := p.rawString()
		return err
	case c == '{':
		return p.object(func([]byte) error { return p.skipValue() })
	case c == '[':
		return p.array(p.skipValue)
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := p.number()
		return err
	case c == 't':
		if p.literal("true") {
			return nil
		}
	case c == 'f':
		if p.literal("false") {
			return nil
		}
	case c == 'n':
		if p.literal("null") {
			return nil
		}
	}
	return p.syntaxError("looking for a value")
}

// object walks an object at the parser's position, calling member with
// each key as written (escapes and all: fieldIs unescapes what it must);
// member must consume the value.
func (p *changeParser) object(member func(rawKey []byte) error) error {
	return p.sequence('{', '}', "after an object value", func() error {
		if p.peek() != '"' {
			return p.syntaxError("looking for an object key")
		}
		key, err := p.rawString()
		if err != nil {
			return err
		}
		p.skipSpace()
		if p.peek() != ':' {
			return p.syntaxError("after an object key")
		}
		p.i++
		p.skipSpace()
		return member(key)
	})
}

// objectKeys is object with each key unescaped (and interned).
func (p *changeParser) objectKeys(member func(key string) error) error {
	return p.object(func(raw []byte) error {
		return member(keyString(raw))
	})
}

// array walks an array at the parser's position; elem must consume one
// element.
func (p *changeParser) array(elem func() error) error {
	return p.sequence('[', ']', "after an array element", elem)
}

// sequence walks the comma-separated items of an object or array between
// its delimiters; item must consume one item.
func (p *changeParser) sequence(open, close byte, after string, item func() error) error {
	if err := p.open(open); err != nil {
		return err
	}
	if p.peek() == close {
		p.i++
		p.depth--
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.i++
			p.skipSpace()
		case close:
			p.i++
			p.depth--
			return nil
		default:
			return p.syntaxError(after)
		}
	}
}

// open consumes the opening delimiter of an array or object.
func (p *changeParser) open(delim byte) error {
	if p.peek() != delim {
		return p.syntaxError("looking for " + string(delim))
	}
	p.depth++
	if p.depth > maxNestingDepth {
		return fmt.Errorf("%w: nested deeper than %d", errSyntax, maxNestingDepth)
	}
	p.i++
	p.skipSpace()
	return nil
}

func (p *changeParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *changeParser) skipSpace() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// literal consumes lit (true, false or null) if it is next.
func (p *changeParser) literal(lit string) bool {
	if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
		p.i += len(lit)
		return true
	}
	return false
}

// number consumes a JSON number and returns its text.
func (p *changeParser) number() ([]byte, error) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return nil, p.syntaxError("in a number")
	}
	if p.peek() == '.' {
		p.i++
		if !isDigit(p.peek()) {
			return nil, p.syntaxError("after a decimal point")
		}
		p.digits()
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if !isDigit(p.peek()) {
			return nil, p.syntaxError("in an exponent")
		}
		p.digits()
	}
	return p.b[start:p.i], nil
}

func (p *changeParser) digits() {
	for p.i < len(p.b) && isDigit(p.b[p.i]) {
		p.i++
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// validNumber reports whether s is a JSON number, as json.Number requires
// of a string decoded into it.
func validNumber(s string) bool {
	p := changeParser{b: []byte(s)}
	_, err := p.number()
	return err == nil && p.i == len(s)
}

// rawString consumes a string and returns its bytes between the quotes,
// escapes still in. It checks escapes and rejects control characters.
func (p *changeParser) rawString() ([]byte, error) {
	p.i++ // the opening quote
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, nil
		case c == '\\':
			p.i++
			switch p.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				p.i++
				for range 4 {
					if !isHex(p.peek()) {
						return nil, p.syntaxError("in a \\u escape")
					}
					p.i++
				}
			default:
				return nil, p.syntaxError("in a string escape")
			}
		case c < 0x20:
			return nil, p.syntaxError("in a string")
		default:
			p.i++
		}
	}
	return nil, p.syntaxError("in a string")
}

// str consumes a string and returns it unescaped.
func (p *changeParser) str() (string, error) {
	raw, err := p.rawString()
	if err != nil {
		return "", err
	}
	return unescape(raw), nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// unescape turns a checked string body into its value: escapes resolved,
// each byte of invalid UTF-8 and each lone surrogate as U+FFFD.
func unescape(raw []byte) string {
	if !hasBackslash(raw) && utf8.Valid(raw) {
		return string(raw)
	}
	out := make([]byte, 0, len(raw)+8)
	for r := 0; r < len(raw); {
		c := raw[r]
		switch {
		case c == '\\':
			switch raw[r+1] {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				rr := hex4(raw[r+2:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(raw) && raw[r] == '\\' && raw[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(raw[r+2:])); dec != unicode.ReplacementChar {
							out = utf8.AppendRune(out, dec)
							r += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				out = utf8.AppendRune(out, rr)
				continue
			default: // '"', '\\', '/'
				out = append(out, raw[r+1])
			}
			r += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			r++
		default:
			rr, size := utf8.DecodeRune(raw[r:])
			if rr == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, raw[r:r+size]...)
			}
			r += size
		}
	}
	return string(out)
}

func hasBackslash(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// hex4 reads four hex digits (already checked by rawString).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// fieldIs reports whether an object key as written names field, matched as
// encoding/json matches struct fields: exactly, or else as bytes.EqualFold
// matches them (Unicode simple folding, so "ſchema" names schema too),
// after unescaping.
func fieldIs(rawKey []byte, field string) bool {
	if string(rawKey) == field {
		return true
	}
	if hasBackslash(rawKey) {
		return strings.EqualFold(unescape(rawKey), field)
	}
	return strings.EqualFold(string(rawKey), field)
}

// recordKeys interns record keys: every change of a table repeats the
// same column names, and a map key would otherwise be a new string each
// time. It holds at most maxRecordKeys keys of up to 64 bytes.
var recordKeys = struct {
	sync.RWMutex
	m map[string]string
}{m: map[string]string{}}

const maxRecordKeys = 4096

// keyString unescapes an object key, interning short plain ones.
func keyString(raw []byte) string {
	if len(raw) > 64 || hasBackslash(raw) {
		return unescape(raw)
	}
	recordKeys.RLock()
	s, ok := recordKeys.m[string(raw)]
	recordKeys.RUnlock()
	if ok {
		return s
	}
	s = unescape(raw)
	recordKeys.Lock()
	if len(recordKeys.m) < maxRecordKeys {
		recordKeys.m[string(raw)] = s
	}
	recordKeys.Unlock()
	return s
}
