package realtime

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/meshhook/meshhook-alerts/internal/jsonscan"
)

// This file decodes a postgres_changes payload in one pass over its bytes.
//
// The reader spent about half the daemon's CPU in encoding/json on these
// payloads under load: a json.Decoder scans the whole value once to find
// its end, again to check it and a third time to fill the struct through
// reflection. The decoder here, built on internal/jsonscan's one-pass
// parser, accepts exactly what encoding/json (with UseNumber) accepts into
// the wire struct and yields the same values; a differential fuzz test
// holds it to that. In particular:
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

// changeParser is the state of one payload's decoding.
type changeParser struct{ jsonscan.Parser }

// wireData is the payload's "data" object as decoded.
type wireData struct {
	schema, table, typ string
	commitTimestamp    *string
	columns            []byte // the raw "columns" value; nil if absent
	record, oldRecord  map[string]any
	errors             []string
}

// parseChangePayload decodes a postgres_changes payload into ids and data.
func parseChangePayload(payload []byte) (ids []int64, d wireData, err error) {
	p := changeParser{jsonscan.NewParser(payload)}
	var slots []idSlot
	p.SkipSpace()
	// The payload: an object, or null (which leaves everything empty).
	if p.Literal("null") {
		return []int64{}, d, p.End()
	}
	var typeErr error // the first wrong type; decoding goes on, as encoding/json's does
	note := func(e error) {
		if typeErr == nil {
			typeErr = e
		}
	}
	if p.Peek() != '{' {
		if err := p.SkipValue(); err != nil {
			return nil, d, err
		}
		note(jsonscan.TypeError("payload", "an object"))
	} else if err := p.Object(func(key []byte) error {
		switch {
		case jsonscan.FieldIs(key, "ids"):
			v, terr, err := p.ids(slots)
			if err != nil {
				return err
			}
			if terr != nil {
				note(terr)
			}
			slots = v
		case jsonscan.FieldIs(key, "data"):
			terr, err := p.data(&d)
			if err != nil {
				return err
			}
			if terr != nil {
				note(terr)
			}
		default:
			return p.SkipValue()
		}
		return nil
	}); err != nil {
		return nil, d, err
	}
	if err := p.End(); err != nil {
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

// idSlot is one element of "ids": its value, if it is a 64-bit integer.
type idSlot struct {
	n  int64
	ok bool
}

// ids decodes "ids": null or an array of numbers or strings holding
// numbers. As encoding/json does, a repeated key decodes into the earlier
// slice: a null element keeps what the earlier array had at its index.
func (p *changeParser) ids(prev []idSlot) (slots []idSlot, typeErr, err error) {
	if done, terr, err := p.NullOr('[', "ids", "an array"); done {
		return nil, terr, err
	}
	slots = make([]idSlot, 0, 4)
	err = p.Array(func() error {
		var slot idSlot
		switch c := p.Peek(); {
		case c == '-' || (c >= '0' && c <= '9'):
			lit, err := p.Number()
			if err != nil {
				return err
			}
			slot.n, err = strconv.ParseInt(string(lit), 10, 64)
			slot.ok = err == nil
		case c == '"':
			s, err := p.Str()
			if err != nil {
				return err
			}
			if !jsonscan.ValidNumber(s) {
				if typeErr == nil {
					typeErr = fmt.Errorf("ids: invalid number literal %q", s)
				}
			} else {
				slot.n, err = strconv.ParseInt(s, 10, 64)
				slot.ok = err == nil
			}
		case c == 'n':
			if !p.Literal("null") {
				return p.SyntaxError("in a literal")
			}
			if i := len(slots); i < len(prev) {
				slot = prev[i]
			}
		default:
			if err := p.SkipValue(); err != nil {
				return err
			}
			if typeErr == nil {
				typeErr = jsonscan.TypeError("ids", "numbers")
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
	if done, terr, err := p.NullOr('{', "data", "an object"); done {
		return terr, err // null leaves data as it was
	}
	err = p.Object(func(key []byte) error {
		var terr error
		var err error
		switch {
		case jsonscan.FieldIs(key, "schema"):
			terr, err = p.StringField("data.schema", &d.schema)
		case jsonscan.FieldIs(key, "table"):
			terr, err = p.StringField("data.table", &d.table)
		case jsonscan.FieldIs(key, "type"):
			terr, err = p.StringField("data.type", &d.typ)
		case jsonscan.FieldIs(key, "commit_timestamp"):
			terr, err = p.NullableString("data.commit_timestamp", &d.commitTimestamp)
		case jsonscan.FieldIs(key, "columns"):
			start := p.Offset()
			if err = p.SkipValue(); err == nil {
				d.columns = p.Since(start)
			}
		case jsonscan.FieldIs(key, "record"):
			terr, err = p.recordField("data.record", &d.record)
		case jsonscan.FieldIs(key, "old_record"):
			terr, err = p.recordField("data.old_record", &d.oldRecord)
		case jsonscan.FieldIs(key, "errors"):
			terr, err = p.stringsField("data.errors", &d.errors)
		default:
			err = p.SkipValue()
		}
		if terr != nil {
			note(terr)
		}
		return err
	})
	return typeErr, err
}

// stringsField decodes null or an array of strings (null elements are "").
func (p *changeParser) stringsField(field string, dst *[]string) (typeErr, err error) {
	if done, terr, err := p.NullOr('[', field, "an array of strings"); done {
		if terr == nil && err == nil {
			*dst = nil
		}
		return terr, err
	}
	// As encoding/json does, a repeated key decodes into the earlier slice:
	// a null element keeps what the earlier array had at its index.
	prev := *dst
	out := []string{}
	err = p.Array(func() error {
		var s string
		if i := len(out); i < len(prev) {
			s = prev[i]
		}
		terr, err := p.StringField(field, &s)
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
	if done, terr, err := p.NullOr('{', field, "an object"); done {
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
// UseNumber, interning object keys.
func (p *changeParser) value() (any, error) { return p.Value(keyString) }

// objectKeys is object with each key unescaped (and interned).
func (p *changeParser) objectKeys(member func(key string) error) error {
	return p.Object(func(raw []byte) error {
		return member(keyString(raw))
	})
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
	if len(raw) > 64 || jsonscan.HasBackslash(raw) {
		return jsonscan.Unescape(raw)
	}
	recordKeys.RLock()
	s, ok := recordKeys.m[string(raw)]
	recordKeys.RUnlock()
	if ok {
		return s
	}
	s = jsonscan.Unescape(raw)
	recordKeys.Lock()
	if len(recordKeys.m) < maxRecordKeys {
		recordKeys.m[string(raw)] = s
	}
	recordKeys.Unlock()
	return s
}
