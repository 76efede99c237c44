package realtimetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/internal/jsonenc"
)

// relation is a published table as announced by a pgoutput Relation
// message, enriched from the catalog. It is read-only once built.
type relation struct {
	id      uint32
	schema  string
	table   string
	columns []relColumn
	pk      []string          // primary key columns, in key order
	pkTypes map[string]string // primary key column -> SQL type name

	// Derived once by prepare, for the payloads:
	list        []Column // the columns as Change.Columns carries them (shared)
	columnsJSON []byte   // the "columns" array of a subscriber who sees every column
	pkIndex     []int    // for each pk column, its index in columns, or -1
}

type relColumn struct {
	name string
	typ  *typeInfo
	key  bool // part of the replica identity

	kind    valueKind
	keyJSON []byte // the column's record key: "name":
}

// prepare derives the per-relation encoding state from columns and pk.
func (r *relation) prepare() {
	r.list = make([]Column, len(r.columns))
	for i := range r.columns {
		c := &r.columns[i]
		c.kind = kindOf(c.typ)
		c.keyJSON = append(jsonenc.AppendString(nil, c.name), ':')
		r.list[i] = Column{Name: c.name, Type: c.typ.Name}
	}
	r.columnsJSON = appendColumns(nil, r.list, nil)
	r.pkIndex = make([]int, len(r.pk))
	for i, k := range r.pk {
		r.pkIndex[i] = -1
		for j, c := range r.columns {
			if c.name == k {
				r.pkIndex[i] = j
				break
			}
		}
	}
}

// walDecoder turns one replication session's pgoutput messages into
// Changes. Relation messages are cached per session, as pgoutput sends each
// relation once per session (and again after it changes). A decoder is used
// by one goroutine; the Changes it delivers share its buffers and are valid
// only until deliver returns.
type walDecoder struct {
	cdc       *CDC
	relations map[uint32]*relation
	batch     *pollBatch // the poll in progress

	commitTime time.Time
	commitTS   string // commitTime as payloads carry it

	// Reused for every change:
	newTuple, oldTuple []tupleColumn
	values             []byte        // encoded values of the current change
	spans              []valueSpan   // per column: new tuple's value, then old tuple's
	fields             []recordField // record, then old record
	pre                preEncoded    // the current change's records
	change             Change        // the current change
	src                walSource     // its database identity
	keys               []keyValue    // its primary key values

	// memos holds, per relation, the last timestamp decoded per column.
	memos map[uint32][]valueMemo
}

// valueMemo is the last value decoded for a column whose rendering is
// costly (timestamps): bulk changes repeat them (a transaction's now(), the
// created_at of rows inserted together).
type valueMemo struct {
	text, out []byte
}

func newWALDecoder(c *CDC) *walDecoder {
	return &walDecoder{cdc: c, relations: make(map[uint32]*relation), memos: make(map[uint32][]valueMemo), batch: &pollBatch{}}
}

// tupleColumn is one column of a pgoutput TupleData: its kind ('n' null,
// 'u' unchanged TOAST value, 't' text, 'b' binary) and, for 't' and 'b',
// its bytes (aliasing the message).
type tupleColumn struct {
	kind byte
	data []byte
}

// Tuple column kinds of pgoutput.
const (
	tupleNull  = 'n'
	tupleToast = 'u'
	tupleText  = 't'
	tupleBin   = 'b'
)

// errShortMessage reports a pgoutput message that ends early.
var errShortMessage = errors.New("message too short")

// parseTuple reads a pgoutput TupleData from src into dst (reused) and
// returns the columns and the rest of src.
func parseTuple(src []byte, dst []tupleColumn) ([]tupleColumn, []byte, error) {
	if len(src) < 2 {
		return nil, nil, errShortMessage
	}
	n := int(binary.BigEndian.Uint16(src))
	src = src[2:]
	dst = dst[:0]
	for i := 0; i < n; i++ {
		if len(src) < 1 {
			return nil, nil, errShortMessage
		}
		kind := src[0]
		src = src[1:]
		switch kind {
		case tupleNull, tupleToast:
			dst = append(dst, tupleColumn{kind: kind})
		case tupleText, tupleBin:
			if len(src) < 4 {
				return nil, nil, errShortMessage
			}
			l := binary.BigEndian.Uint32(src)
			src = src[4:]
			if uint64(l) > uint64(len(src)) {
				return nil, nil, errShortMessage
			}
			dst = append(dst, tupleColumn{kind: kind, data: src[:l:l]})
			src = src[l:]
		default:
			return nil, nil, fmt.Errorf("column %d: unknown tuple data kind %q", i, kind)
		}
	}
	return dst, src, nil
}

// rowMessage is a pgoutput Insert, Update or Delete message.
type rowMessage struct {
	typ      string // Insert, Update or Delete
	relID    uint32
	newTuple []tupleColumn // nil for Delete
	oldTuple []tupleColumn // nil when the message has none
	hasOld   bool
	oldKey   bool // the old tuple is 'K': replica identity columns only
}

// parseRow reads an Insert ('I'), Update ('U') or Delete ('D') message of
// protocol version 1 into the decoder's reused tuples.
func (d *walDecoder) parseRow(data []byte) (rowMessage, error) {
	m := rowMessage{}
	switch data[0] {
	case 'I':
		m.typ = Insert
	case 'U':
		m.typ = Update
	case 'D':
		m.typ = Delete
	}
	if len(data) < 6 {
		return m, fmt.Errorf("%s message: %w", m.typ, errShortMessage)
	}
	m.relID = binary.BigEndian.Uint32(data[1:])
	rest := data[5:]
	var err error
	if m.typ != Insert && (rest[0] == 'K' || rest[0] == 'O') {
		m.hasOld, m.oldKey = true, rest[0] == 'K'
		if d.oldTuple, rest, err = parseTuple(rest[1:], d.oldTuple); err != nil {
			return m, fmt.Errorf("%s message old tuple: %w", m.typ, err)
		}
		m.oldTuple = d.oldTuple
	}
	if m.typ == Delete {
		if !m.hasOld {
			return m, fmt.Errorf("DELETE message: tuple type %q, want K or O", rest[0])
		}
		return m, nil
	}
	if len(rest) < 1 || rest[0] != 'N' {
		return m, fmt.Errorf("%s message: missing new tuple", m.typ)
	}
	if d.newTuple, _, err = parseTuple(rest[1:], d.newTuple); err != nil {
		return m, fmt.Errorf("%s message new tuple: %w", m.typ, err)
	}
	m.newTuple = d.newTuple
	return m, nil
}

// handle processes one pgoutput message. It returns the end LSN of a
// transaction when the message is its commit.
func (d *walDecoder) handle(ctx context.Context, data []byte, inTx *bool) (pglogrepl.LSN, error) {
	if len(data) == 0 {
		return 0, errors.New("parse pgoutput message: empty message")
	}
	switch data[0] {
	case 'I', 'U', 'D':
		m, err := d.parseRow(data)
		if err != nil {
			return 0, fmt.Errorf("parse pgoutput message: %w", err)
		}
		return 0, d.emit(ctx, m)
	}
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return 0, fmt.Errorf("parse pgoutput message: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		rel, err := d.cdc.meta.relation(ctx, m)
		if err != nil {
			return 0, err
		}
		d.relations[m.RelationID] = rel
		delete(d.memos, m.RelationID)
	case *pglogrepl.BeginMessage:
		d.commitTime = m.CommitTime
		d.commitTS = formatCommitTimestamp(m.CommitTime)
		*inTx = true
	case *pglogrepl.CommitMessage:
		*inTx = false
		return m.TransactionEndLSN, nil
	default:
		// Truncate, Type, Origin, Message: Realtime emits nothing for them.
	}
	return 0, nil
}

// valueSpan locates one encoded value in walDecoder.values; ok is false
// when the tuple has no value for the column (unchanged TOAST, binary, not
// part of a key-only tuple, or past the tuple's end).
type valueSpan struct {
	start, end int
	ok         bool
}

// emit builds the Change for one row operation and delivers it, unless
// the poll it belongs to is skipped for the event rate.
func (d *walDecoder) emit(ctx context.Context, m rowMessage) error {
	rel, ok := d.relations[m.relID]
	if !ok {
		return fmt.Errorf("pgoutput: change for unknown relation %d", m.relID)
	}
	srv := d.cdc.srv
	b := d.batch
	b.changes++
	if b.skipping(srv.rate) {
		d.cdc.decoded.Add(1)
		return nil
	}
	rls, err := d.cdc.meta.rlsEnabled(ctx, rel.id)
	if err != nil {
		return err
	}
	c := d.build(rel, m, rls)
	d.cdc.decoded.Add(1)
	n, err := srv.deliver(ctx, c)
	if err != nil {
		d.cdc.log.Warn("deliver change", zap.String("table", rel.schema+"."+rel.table), zap.Error(err))
	}
	if n > 0 {
		b.delivered++
		srv.rate.add(n)
	}
	return nil
}

// build decodes row message m of rel into the decoder's reused Change.
func (d *walDecoder) build(rel *relation, m rowMessage, rls bool) *Change {
	n := len(rel.columns)
	d.values = d.values[:0]
	if cap(d.spans) < 2*n {
		d.spans = make([]valueSpan, 2*n)
	}
	d.spans = d.spans[:2*n]
	clear(d.spans)
	newSpans, oldSpans := d.spans[:n], d.spans[n:]
	if m.newTuple != nil {
		d.decodeTuple(rel, m.newTuple, false, newSpans)
	}
	if m.hasOld {
		d.decodeTuple(rel, m.oldTuple, m.oldKey, oldSpans)
	}

	// Record and old record, in column order, share one slice.
	d.fields = d.fields[:0]
	var rec, old encodedRecord
	switch m.typ {
	case Insert:
		rec = d.record(rel, newSpans, false)
	case Update:
		// Unchanged TOAST values come from the old tuple when it has them
		// (REPLICA IDENTITY FULL); otherwise they are missing, as in Realtime.
		if m.hasOld {
			for i := range newSpans {
				if !newSpans[i].ok && oldSpans[i].ok && !hasValue(m.newTuple, i) {
					newSpans[i] = oldSpans[i]
				}
			}
		}
		rec = d.record(rel, newSpans, false)
		if m.hasOld {
			old = d.record(rel, oldSpans, false)
		} else {
			// No old tuple: the identity is the key columns of the new row.
			old = d.record(rel, newSpans, true)
		}
	case Delete:
		old = d.record(rel, oldSpans, false)
	}

	keyTuple, keyOnly := m.newTuple, false
	if m.typ == Delete {
		keyTuple, keyOnly = m.oldTuple, m.oldKey
	}
	d.keys = d.keys[:0]
	for i, k := range rel.pk {
		j := rel.pkIndex[i]
		if j < 0 || j >= len(keyTuple) || keyTuple[j].kind != tupleText || (keyOnly && !rel.columns[j].key) {
			continue
		}
		d.keys = append(d.keys, keyValue{name: k, text: string(keyTuple[j].data)})
	}
	d.src = walSource{relID: rel.id, keys: d.keys, keyTypes: rel.pkTypes}
	d.pre = preEncoded{record: rec, oldRecord: old, columnsJSON: rel.columnsJSON, commitTS: d.commitTS}
	d.change = Change{
		Schema:          rel.schema,
		Table:           rel.table,
		Type:            m.typ,
		CommitTimestamp: d.commitTime,
		Columns:         rel.list,
		PrimaryKey:      rel.pk,
		RLSEnabled:      rls,
		src:             &d.src,
		pre:             &d.pre,
	}
	return &d.change
}

// decodeTuple encodes the values of tuple t into d.values and records where
// each column's value is. With keyOnly, non-identity columns are skipped.
func (d *walDecoder) decodeTuple(rel *relation, t []tupleColumn, keyOnly bool, spans []valueSpan) {
	memos := d.memos[rel.id]
	if len(memos) != len(rel.columns) {
		memos = make([]valueMemo, len(rel.columns))
		if d.memos == nil {
			d.memos = make(map[uint32][]valueMemo)
		}
		d.memos[rel.id] = memos
	}
	for i, col := range t {
		if i >= len(rel.columns) {
			break
		}
		rc := &rel.columns[i]
		if keyOnly && !rc.key {
			continue
		}
		start := len(d.values)
		switch col.kind {
		case tupleNull:
			d.values = append(d.values, "null"...)
		case tupleText:
			if rc.kind != kindTimestamptz && rc.kind != kindTimestamp {
				d.values = appendValue(d.values, col.data, rc.kind, rc.typ.Elem)
				break
			}
			m := &memos[i]
			if m.out != nil && bytes.Equal(m.text, col.data) {
				d.values = append(d.values, m.out...)
				break
			}
			d.values = appendValue(d.values, col.data, rc.kind, rc.typ.Elem)
			m.text = append(m.text[:0], col.data...)
			m.out = append(m.out[:0], d.values[start:]...)
		default:
			continue // unchanged TOAST value or binary: no value
		}
		spans[i] = valueSpan{start: start, end: len(d.values), ok: true}
	}
}

// record appends the fields for the spans (of the replica identity columns
// only, with keyOnly) to d.fields and returns them as a record.
func (d *walDecoder) record(rel *relation, spans []valueSpan, keyOnly bool) encodedRecord {
	start := len(d.fields)
	for i, sp := range spans {
		if !sp.ok || (keyOnly && !rel.columns[i].key) {
			continue
		}
		v := d.values[sp.start:sp.end:sp.end]
		out := v
		if rel.columns[i].kind == kindJSON || rel.columns[i].kind == kindArray {
			out = htmlEscaped(v)
		}
		d.fields = append(d.fields, recordField{name: rel.columns[i].name, key: rel.columns[i].keyJSON, value: v, out: out})
	}
	return encodedRecord{fields: d.fields[start:len(d.fields):len(d.fields)]}
}

// hasValue reports whether tuple t carries a value (possibly null, possibly
// binary) for column i, i.e. it is not an unchanged TOAST value.
func hasValue(t []tupleColumn, i int) bool {
	return i < len(t) && t[i].kind != tupleToast
}

// formatCommitTimestamp renders a commit time as payloads carry it: UTC,
// millisecond precision.
func formatCommitTimestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
