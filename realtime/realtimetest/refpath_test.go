package realtimetest

// This file keeps the stand-in's first, straightforward encoding path (maps
// of json.RawMessage, encoding/json on structs, one frame per change) as a
// reference: the equivalence tests assert that the fast path produces the
// very same bytes for the same input.

import (
	"bytes"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
)

// refDecodeValue is the reference rendering of a column value.
func refDecodeValue(text string, t *typeInfo) json.RawMessage {
	if t == nil {
		return refJSON(text)
	}
	if t.Elem != nil && (t.Category == 'A' || strings.HasPrefix(t.Name, "_")) {
		elems, ok := parseArrayLiteral(text)
		if !ok {
			return refJSON(text)
		}
		return refEncodeArray(elems, t.Elem)
	}
	if t.Name == "bytea" {
		return refJSON(strings.TrimPrefix(text, `\x`))
	}
	return refScalarJSON(text, t.Name)
}

func refScalarJSON(text, typ string) json.RawMessage {
	switch typ {
	case "int2", "int4", "int8", "oid", "xid", "cid", "numeric", "float4", "float8":
		if refIsJSONNumber(text) {
			return json.RawMessage(text)
		}
		return refJSON(text)
	case "bool":
		switch text {
		case "t", "true":
			return json.RawMessage("true")
		case "f", "false":
			return json.RawMessage("false")
		}
		return refJSON(text)
	case "json", "jsonb":
		if json.Valid([]byte(text)) {
			return compactJSON([]byte(text))
		}
		return refJSON(text)
	case "timestamptz":
		if t, ok := refParsePGTimestamp(text, true); ok {
			return refJSON(t.UTC().Format("2006-01-02T15:04:05.999999-07:00"))
		}
		return refJSON(text)
	case "timestamp":
		if t, ok := refParsePGTimestamp(text, false); ok {
			return refJSON(t.Format("2006-01-02T15:04:05.999999"))
		}
		return refJSON(text)
	default:
		return refJSON(text)
	}
}

func refEncodeArray(elems []arrayElem, elem *typeInfo) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, e := range elems {
		if i > 0 {
			b.WriteByte(',')
		}
		switch {
		case e.IsArray:
			b.Write(refEncodeArray(e.Sub, elem))
		case e.Null:
			b.WriteString("null")
		default:
			b.Write(refScalarJSON(e.Text, elem.Name))
		}
	}
	b.WriteByte(']')
	return b.Bytes()
}

func refIsJSONNumber(s string) bool {
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

func refParsePGTimestamp(s string, withZone bool) (time.Time, bool) {
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

// refJSON is json.Marshal of a value that cannot fail.
func refJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return b
}

// refTuple is a tuple's values as the reference decoder kept them.
type refTuple struct {
	json map[string]json.RawMessage
	text map[string]string
}

func refDecodeTuple(r *relation, t *pglogrepl.TupleData, keyOnly bool) *refTuple {
	if t == nil {
		return nil
	}
	out := &refTuple{json: make(map[string]json.RawMessage), text: make(map[string]string)}
	for i, col := range t.Columns {
		if i >= len(r.columns) {
			break
		}
		rc := r.columns[i]
		if keyOnly && !rc.key {
			continue
		}
		switch col.DataType {
		case pglogrepl.TupleDataTypeNull:
			out.json[rc.name] = json.RawMessage("null")
		case pglogrepl.TupleDataTypeToast:
		case pglogrepl.TupleDataTypeText:
			text := string(col.Data)
			out.json[rc.name] = refDecodeValue(text, rc.typ)
			out.text[rc.name] = text
		}
	}
	return out
}

func refHasValue(r *relation, t *pglogrepl.TupleData, name string) bool {
	if t == nil {
		return false
	}
	for i, col := range t.Columns {
		if i < len(r.columns) && r.columns[i].name == name {
			return col.DataType != pglogrepl.TupleDataTypeToast
		}
	}
	return false
}

func refAsRecord(vals map[string]json.RawMessage) map[string]any {
	out := make(map[string]any, len(vals))
	for k, v := range vals {
		out[k] = v
	}
	return out
}

// refWALChange is the reference decoding of one pgoutput row message into
// a Change with map records, plus the primary key text values.
func refWALChange(rel *relation, msg pglogrepl.Message, commit time.Time, rls bool) (*Change, map[string]string) {
	var (
		typ                string
		newTuple, oldTuple *pglogrepl.TupleData
		oldType            uint8
	)
	switch m := msg.(type) {
	case *pglogrepl.InsertMessage:
		typ, newTuple = Insert, m.Tuple
	case *pglogrepl.UpdateMessage:
		typ, newTuple, oldTuple, oldType = Update, m.NewTuple, m.OldTuple, m.OldTupleType
	case *pglogrepl.DeleteMessage:
		typ, oldTuple, oldType = Delete, m.OldTuple, m.OldTupleType
	default:
		return nil, nil
	}
	newVals := refDecodeTuple(rel, newTuple, false)
	oldVals := refDecodeTuple(rel, oldTuple, oldType == pglogrepl.UpdateMessageTupleTypeKey)
	cols := make([]Column, len(rel.columns))
	for i, c := range rel.columns {
		cols[i] = Column{Name: c.name, Type: c.typ.Name}
	}
	c := &Change{Schema: rel.schema, Table: rel.table, Type: typ, CommitTimestamp: commit,
		Columns: cols, PrimaryKey: rel.pk, RLSEnabled: rls}
	keySource := newVals
	switch typ {
	case Insert:
		c.Record = refAsRecord(newVals.json)
	case Update:
		if oldVals != nil {
			for k, v := range oldVals.json {
				if _, ok := newVals.json[k]; !ok && !refHasValue(rel, newTuple, k) {
					newVals.json[k] = v
				}
			}
		}
		c.Record = refAsRecord(newVals.json)
		if oldVals != nil {
			c.OldRecord = refAsRecord(oldVals.json)
		} else {
			old := make(map[string]json.RawMessage)
			for _, col := range rel.columns {
				if v, ok := newVals.json[col.name]; ok && col.key {
					old[col.name] = v
				}
			}
			c.OldRecord = refAsRecord(old)
		}
	case Delete:
		if oldVals == nil {
			oldVals = &refTuple{json: map[string]json.RawMessage{}, text: map[string]string{}}
		}
		c.OldRecord = refAsRecord(oldVals.json)
		keySource = oldVals
	}
	keys := make(map[string]string)
	if keySource != nil {
		for _, k := range rel.pk {
			if v, ok := keySource.text[k]; ok {
				keys[k] = v
			}
		}
	}
	return c, keys
}

// refRecord is the reference encodedRecord.
type refRecord struct {
	keys   []string
	values map[string]json.RawMessage
}

func (r refRecord) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range r.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(refJSON(k))
		b.WriteByte(':')
		b.Write(r.values[k])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func refEncodeRecord(rec map[string]any, columns []Column) (refRecord, error) {
	out := refRecord{values: make(map[string]json.RawMessage, len(rec))}
	for k, v := range rec {
		raw, ok := v.(json.RawMessage)
		if !ok {
			b, err := json.Marshal(v)
			if err != nil {
				return refRecord{}, err
			}
			raw = b
		}
		if len(raw) == 0 {
			raw = json.RawMessage("null")
		}
		out.values[k] = raw
	}
	seen := make(map[string]bool, len(columns))
	for _, c := range columns {
		if _, ok := out.values[c.Name]; ok && !seen[c.Name] {
			out.keys = append(out.keys, c.Name)
			seen[c.Name] = true
		}
	}
	var rest []string
	for k := range out.values {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	out.keys = append(out.keys, rest...)
	return out, nil
}

func (r refRecord) filtered(keep func(key string, value json.RawMessage) bool) refRecord {
	out := refRecord{values: make(map[string]json.RawMessage)}
	for _, k := range r.keys {
		if keep(k, r.values[k]) {
			out.keys = append(out.keys, k)
			out.values[k] = r.values[k]
		}
	}
	return out
}

func (r refRecord) size() int {
	n := 2
	for _, k := range r.keys {
		n += len(k) + 4 + len(r.values[k])
	}
	return n
}

type refPrepared struct {
	*Change
	record, oldRecord refRecord
	hasRecord         bool
	hasOldRecord      bool
	tooLarge          bool
	commitTS          string
}

func refPrepare(c *Change, maxRecordBytes int, forceTruncate bool) (*refPrepared, error) {
	p := &refPrepared{Change: c, commitTS: c.CommitTimestamp.UTC().Format("2006-01-02T15:04:05.000Z")}
	var err error
	if c.Type != Delete {
		if p.record, err = refEncodeRecord(c.Record, c.Columns); err != nil {
			return nil, err
		}
		p.hasRecord = true
	}
	if c.Type != Insert {
		if p.oldRecord, err = refEncodeRecord(c.OldRecord, c.Columns); err != nil {
			return nil, err
		}
		p.hasOldRecord = true
	}
	size := p.record.size() + p.oldRecord.size()
	p.tooLarge = forceTruncate || (maxRecordBytes > 0 && size > maxRecordBytes)
	return p, nil
}

type refChangeData struct {
	Schema          string     `json:"schema"`
	Table           string     `json:"table"`
	CommitTimestamp *string    `json:"commit_timestamp"`
	Type            string     `json:"type"`
	Columns         []Column   `json:"columns"`
	Record          *refRecord `json:"record,omitempty"`
	OldRecord       *refRecord `json:"old_record,omitempty"`
	Errors          []string   `json:"errors"`
}

func (p *refPrepared) data(acc access, sel []string) refChangeData {
	if acc.Error != "" {
		d := refChangeData{Schema: p.Schema, Table: p.Table, Type: p.Type, Columns: []Column{}, Errors: []string{acc.Error}}
		empty := refRecord{}
		if p.Type != Delete {
			d.Record = &empty
		}
		if p.Type == Update {
			d.OldRecord = &empty
		}
		return d
	}
	isPK := func(name string) bool { return slices.Contains(p.PrimaryKey, name) }
	allowed := func(name string) bool {
		if acc.Columns != nil && !acc.Columns[name] {
			return false
		}
		return sel == nil || slices.Contains(sel, name) || isPK(name)
	}
	small := func(_ string, v json.RawMessage) bool { return !p.tooLarge || len(v) <= truncatedValueMax }
	ts := p.commitTS
	d := refChangeData{Schema: p.Schema, Table: p.Table, CommitTimestamp: &ts, Type: p.Type, Columns: []Column{}}
	for _, c := range p.Columns {
		if allowed(c.Name) {
			d.Columns = append(d.Columns, c)
		}
	}
	if p.hasRecord {
		r := p.record.filtered(func(k string, v json.RawMessage) bool { return allowed(k) && small(k, v) })
		d.Record = &r
	}
	if p.hasOldRecord {
		r := p.oldRecord.filtered(func(k string, v json.RawMessage) bool {
			if p.Type == Delete && p.RLSEnabled && !isPK(k) {
				return false
			}
			return allowed(k) && small(k, v)
		})
		d.OldRecord = &r
	}
	if p.tooLarge {
		d.Errors = []string{ErrorPayloadTooLarge}
	}
	return d
}

// refFrame is the reference frame of one change for a channel: the payload
// marshalled with encoding/json and wrapped by the reference codec.
func refFrame(vsn, topic string, newAPI bool, ids []int64, p *refPrepared, acc access, sel []string) string {
	data := p.data(acc, sel)
	var event string
	var payload json.RawMessage
	if newAPI {
		event = "postgres_changes"
		payload = refJSON(struct {
			IDs  []int64       `json:"ids"`
			Data refChangeData `json:"data"`
		}{ids, data})
	} else {
		event = p.Type
		payload = refJSON(data)
	}
	var b bytes.Buffer
	if vsn == "1.0.0" {
		b.WriteString(`{"topic":`)
		b.Write(refJSON(topic))
		b.WriteString(`,"event":`)
		b.Write(refJSON(event))
		b.WriteString(`,"payload":`)
		b.Write(payload)
		b.WriteString(`,"ref":null}`)
		return b.String()
	}
	b.WriteString(`[null,null,`)
	b.Write(refJSON(topic))
	b.WriteByte(',')
	b.Write(refJSON(event))
	b.WriteByte(',')
	b.Write(payload)
	b.WriteByte(']')
	return b.String()
}
