// Package jsonscan reads JSON in one pass over its bytes, for the hot
// paths that decode the same few shapes thousands of times a second
// (Realtime frame headers and change payloads, PostgREST's answers on the
// delivery path), where encoding/json scans a value once to find its end,
// again to check it and a third time to fill a struct through reflection.
// It is the module's one JSON scanner; colder paths use encoding/json.
// github.com/go-json-experiment/json (the encoding/json/v2 candidate) was
// measured in its place and cost 16-20 % more CPU on a page of leased
// alerts (docs/benchmarks.md, "JSON"), so it stays.
//
// The Parser accepts exactly the JSON encoding/json accepts and yields the
// same values; the decoders built on it are held to encoding/json by
// differential fuzz tests. In particular:
//
//   - any JSON syntax error is an error, and End rejects anything but white
//     space after the value;
//   - FieldIs matches object keys to field names as encoding/json matches
//     struct fields: exactly, or else case-insensitively (Unicode simple
//     folding), after unescaping;
//   - strings are unescaped as encoding/json does, invalid UTF-8 and lone
//     surrogates becoming U+FFFD;
//   - nesting deeper than 10,000 is an error.
package jsonscan

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxNestingDepth is encoding/json's limit on nested arrays and objects.
const MaxNestingDepth = 10000

// Parser reads one JSON text. Its zero value is not useful: use NewParser.
type Parser struct {
	b     []byte
	i     int
	depth int
}

// ErrSyntax is wrapped by every syntax error.
var ErrSyntax = errors.New("invalid JSON")

// SyntaxError reports a JSON syntax error at the parser's position.
func (p *Parser) SyntaxError(what string) error {
	if p.i >= len(p.b) {
		return fmt.Errorf("%w: unexpected end of input, %s", ErrSyntax, what)
	}
	return fmt.Errorf("%w: unexpected %q at offset %d, %s", ErrSyntax, p.b[p.i], p.i, what)
}

// TypeError reports a value of the wrong type for field.
func TypeError(field, want string) error {
	return fmt.Errorf("%s: want %s", field, want)
}

// End checks that only white space follows the value read.
func (p *Parser) End() error {
	p.SkipSpace()
	if p.i != len(p.b) {
		return fmt.Errorf("%w: data after the JSON value", ErrSyntax)
	}
	return nil
}

// NullOr starts a value that must be null or open with delim. It consumes a
// null, and skips a value of any other type, returning a type error naming
// field and what it wants: either way done is true and the value is
// consumed (a null is done with neither error). Otherwise the value, which
// opens with delim, is left to the caller.
func (p *Parser) NullOr(delim byte, field, want string) (done bool, typeErr, err error) {
	switch p.Peek() {
	case 'n':
		if !p.Literal("null") {
			return true, nil, p.SyntaxError("in a literal")
		}
		return true, nil, nil
	case delim:
		return false, nil, nil
	}
	if err := p.SkipValue(); err != nil {
		return true, nil, err
	}
	return true, TypeError(field, want), nil
}

// StringField decodes a string into *dst; null leaves it as it was.
func (p *Parser) StringField(field string, dst *string) (typeErr, err error) {
	switch p.Peek() {
	case '"':
		s, err := p.Str()
		if err != nil {
			return nil, err
		}
		*dst = s
		return nil, nil
	case 'n':
		if !p.Literal("null") {
			return nil, p.SyntaxError("in a literal")
		}
		return nil, nil
	}
	if err := p.SkipValue(); err != nil {
		return nil, err
	}
	return TypeError(field, "a string"), nil
}

// NullableString decodes null (setting *dst to nil) or a string (setting
// it to the string) into *dst; a value of another type leaves *dst as it
// was and is returned as a type error naming field.
func (p *Parser) NullableString(field string, dst **string) (typeErr, err error) {
	switch p.Peek() {
	case 'n':
		if !p.Literal("null") {
			return nil, p.SyntaxError("in a literal")
		}
		*dst = nil
		return nil, nil
	case '"':
		s, err := p.Str()
		if err != nil {
			return nil, err
		}
		*dst = &s
		return nil, nil
	}
	if err := p.SkipValue(); err != nil {
		return nil, err
	}
	return TypeError(field, "a string"), nil
}

// SkipValue checks and skips one value of any type.
func (p *Parser) SkipValue() error {
	switch c := p.Peek(); {
	case c == '"':
		_, err := p.RawString()
		return err
	case c == '{':
		return p.Object(func([]byte) error { return p.SkipValue() })
	case c == '[':
		return p.Array(p.SkipValue)
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := p.Number()
		return err
	case c == 't':
		if p.Literal("true") {
			return nil
		}
	case c == 'f':
		if p.Literal("false") {
			return nil
		}
	case c == 'n':
		if p.Literal("null") {
			return nil
		}
	}
	return p.SyntaxError("looking for a value")
}

// Object walks an object at the parser's position, calling member with
// each key as written (escapes and all: FieldIs unescapes what it must);
// member must consume the value.
func (p *Parser) Object(member func(rawKey []byte) error) error {
	return p.sequence('{', '}', "after an object value", func() error {
		if p.Peek() != '"' {
			return p.SyntaxError("looking for an object key")
		}
		key, err := p.RawString()
		if err != nil {
			return err
		}
		p.SkipSpace()
		if p.Peek() != ':' {
			return p.SyntaxError("after an object key")
		}
		p.i++
		p.SkipSpace()
		return member(key)
	})
}

// Array walks an array at the parser's position; elem must consume one
// element.
func (p *Parser) Array(elem func() error) error {
	return p.sequence('[', ']', "after an array element", elem)
}

// sequence walks the comma-separated items of an object or array between
// its delimiters; item must consume one item.
func (p *Parser) sequence(open, close byte, after string, item func() error) error {
	if err := p.open(open); err != nil {
		return err
	}
	if p.Peek() == close {
		p.i++
		p.depth--
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		p.SkipSpace()
		switch p.Peek() {
		case ',':
			p.i++
			p.SkipSpace()
		case close:
			p.i++
			p.depth--
			return nil
		default:
			return p.SyntaxError(after)
		}
	}
}

// open consumes the opening delimiter of an array or object.
func (p *Parser) open(delim byte) error {
	if p.Peek() != delim {
		return p.SyntaxError("looking for " + string(delim))
	}
	p.depth++
	if p.depth > MaxNestingDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrSyntax, MaxNestingDepth)
	}
	p.i++
	p.SkipSpace()
	return nil
}

// Consume consumes c if it is the next byte, reporting whether it was.
func (p *Parser) Consume(c byte) bool {
	if p.Peek() == c && p.i < len(p.b) {
		p.i++
		return true
	}
	return false
}

// Peek returns the next byte, 0 at the end.
func (p *Parser) Peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// SkipSpace skips JSON white space.
func (p *Parser) SkipSpace() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// Literal consumes lit (true, false or null) if it is next.
func (p *Parser) Literal(lit string) bool {
	if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
		p.i += len(lit)
		return true
	}
	return false
}

// Number consumes a JSON number and returns its text.
func (p *Parser) Number() ([]byte, error) {
	start := p.i
	if p.Peek() == '-' {
		p.i++
	}
	switch c := p.Peek(); {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return nil, p.SyntaxError("in a number")
	}
	if p.Peek() == '.' {
		p.i++
		if !isDigit(p.Peek()) {
			return nil, p.SyntaxError("after a decimal point")
		}
		p.digits()
	}
	if c := p.Peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.Peek(); c == '+' || c == '-' {
			p.i++
		}
		if !isDigit(p.Peek()) {
			return nil, p.SyntaxError("in an exponent")
		}
		p.digits()
	}
	return p.b[start:p.i], nil
}

func (p *Parser) digits() {
	for p.i < len(p.b) && isDigit(p.b[p.i]) {
		p.i++
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// ValidNumber reports whether s is a JSON number, as json.Number requires
// of a string decoded into it.
func ValidNumber(s string) bool {
	p := NewParser([]byte(s))
	_, err := p.Number()
	return err == nil && p.i == len(s)
}

// RawString consumes a string and returns its bytes between the quotes,
// escapes still in. It checks escapes and rejects control characters.
func (p *Parser) RawString() ([]byte, error) {
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
			switch p.Peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				p.i++
				for range 4 {
					if !isHex(p.Peek()) {
						return nil, p.SyntaxError("in a \\u escape")
					}
					p.i++
				}
			default:
				return nil, p.SyntaxError("in a string escape")
			}
		case c < 0x20:
			return nil, p.SyntaxError("in a string")
		default:
			p.i++
		}
	}
	return nil, p.SyntaxError("in a string")
}

// Str consumes a string and returns it unescaped.
func (p *Parser) Str() (string, error) {
	raw, err := p.RawString()
	if err != nil {
		return "", err
	}
	return Unescape(raw), nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// Unescape turns a checked string body into its value: escapes resolved,
// each byte of invalid UTF-8 and each lone surrogate as U+FFFD.
func Unescape(raw []byte) string {
	if !HasBackslash(raw) && utf8.Valid(raw) {
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

// HasBackslash reports whether b holds an escape.
func HasBackslash(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// hex4 reads four hex digits (already checked by RawString).
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

// FieldIs reports whether an object key as written names field, matched as
// encoding/json matches struct fields: exactly, or else as bytes.EqualFold
// matches them (Unicode simple folding, so "ſchema" names schema too),
// after unescaping.
func FieldIs(rawKey []byte, field string) bool {
	if string(rawKey) == field {
		return true
	}
	if HasBackslash(rawKey) {
		return strings.EqualFold(Unescape(rawKey), field)
	}
	return strings.EqualFold(string(rawKey), field)
}

// NewParser returns a parser at the start of b.
func NewParser(b []byte) Parser { return Parser{b: b} }

// Offset is the parser's position in its input.
func (p *Parser) Offset() int { return p.i }

// Since returns the input from start to the parser's position (capacity
// capped, so appending to it cannot overwrite the input).
func (p *Parser) Since(start int) []byte { return p.b[start:p.i:p.i] }

// Valid reports whether b is exactly one JSON value, as json.Valid does.
func Valid(b []byte) bool {
	p := NewParser(b)
	p.SkipSpace()
	return p.SkipValue() == nil && p.End() == nil
}

// DecodeString decodes raw, which must be one JSON string (white space
// around it allowed), as json.Unmarshal into a string would.
func DecodeString(raw []byte) (string, error) {
	p := NewParser(raw)
	p.SkipSpace()
	if p.Peek() != '"' {
		return "", errors.New("must be a string")
	}
	s, err := p.Str()
	if err != nil {
		return "", err
	}
	if p.SkipSpace(); p.i != len(raw) {
		return "", errors.New("data after the string")
	}
	return s, nil
}

// Value decodes one value of any type as encoding/json decodes it into an
// any with UseNumber: objects as map[string]any (a repeated key keeps the
// last value), arrays as []any, numbers as json.Number, strings, booleans
// and nil. key turns each raw object key into a string, for example to
// intern keys that repeat row after row; nil unescapes each.
func (p *Parser) Value(key func(rawKey []byte) string) (any, error) {
	if key == nil {
		key = Unescape
	}
	return p.value(key)
}

func (p *Parser) value(key func(rawKey []byte) string) (any, error) {
	switch c := p.Peek(); {
	case c == '"':
		return p.Str()
	case c == '{':
		m := map[string]any{}
		err := p.Object(func(raw []byte) error {
			v, err := p.value(key)
			if err != nil {
				return err
			}
			m[key(raw)] = v
			return nil
		})
		return m, err
	case c == '[':
		a := []any{}
		err := p.Array(func() error {
			v, err := p.value(key)
			if err != nil {
				return err
			}
			a = append(a, v)
			return nil
		})
		return a, err
	case c == '-' || (c >= '0' && c <= '9'):
		lit, err := p.Number()
		return json.Number(lit), err
	case c == 't':
		if p.Literal("true") {
			return true, nil
		}
	case c == 'f':
		if p.Literal("false") {
			return false, nil
		}
	case c == 'n':
		if p.Literal("null") {
			return nil, nil
		}
	}
	return nil, p.SyntaxError("looking for a value")
}
