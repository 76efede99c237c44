package realtimetest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"go.uber.org/zap"
)

// relation is a published table as announced by a pgoutput Relation
// message, enriched from the catalog.
type relation struct {
	id      uint32
	schema  string
	table   string
	columns []relColumn
	pk      []string          // primary key columns, in key order
	pkTypes map[string]string // primary key column -> SQL type name
}

type relColumn struct {
	name string
	typ  *typeInfo
	key  bool // part of the replica identity
}

func (r *relation) columnList() []Column {
	out := make([]Column, len(r.columns))
	for i, c := range r.columns {
		out[i] = Column{Name: c.name, Type: c.typ.Name}
	}
	return out
}

// walDecoder turns one replication session's pgoutput messages into
// Changes. Relation messages are cached per session, as pgoutput sends each
// relation once per session (and again after it changes).
type walDecoder struct {
	cdc        *CDC
	relations  map[uint32]*relation
	commitTime time.Time
}

// decodedTuple is a tuple's values: JSON for the payload and text for
// database lookups. Unchanged TOAST values are absent from both.
type decodedTuple struct {
	json map[string]json.RawMessage
	text map[string]string
}

// handle processes one pgoutput message. It returns the end LSN of a
// transaction when the message is its commit.
func (d *walDecoder) handle(ctx context.Context, data []byte, inTx *bool) (pglogrepl.LSN, error) {
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
	case *pglogrepl.BeginMessage:
		d.commitTime = m.CommitTime
		*inTx = true
	case *pglogrepl.CommitMessage:
		*inTx = false
		return m.TransactionEndLSN, nil
	case *pglogrepl.InsertMessage:
		return 0, d.emit(ctx, Insert, m.RelationID, m.Tuple, nil, 0)
	case *pglogrepl.UpdateMessage:
		return 0, d.emit(ctx, Update, m.RelationID, m.NewTuple, m.OldTuple, m.OldTupleType)
	case *pglogrepl.DeleteMessage:
		return 0, d.emit(ctx, Delete, m.RelationID, nil, m.OldTuple, m.OldTupleType)
	default:
		// Truncate, Type, Origin, Message: Realtime emits nothing for them.
	}
	return 0, nil
}

// emit builds the Change for one row operation and delivers it.
func (d *walDecoder) emit(ctx context.Context, typ string, relID uint32, newTuple, oldTuple *pglogrepl.TupleData, oldType uint8) error {
	rel, ok := d.relations[relID]
	if !ok {
		return fmt.Errorf("pgoutput: change for unknown relation %d", relID)
	}
	newVals := rel.decode(newTuple, false)
	// A 'K' old tuple carries only the replica identity columns.
	oldVals := rel.decode(oldTuple, oldType == pglogrepl.UpdateMessageTupleTypeKey)

	c := &Change{
		Schema:          rel.schema,
		Table:           rel.table,
		Type:            typ,
		CommitTimestamp: d.commitTime,
		Columns:         rel.columnList(),
		PrimaryKey:      rel.pk,
	}
	keySource := newVals
	switch typ {
	case Insert:
		c.Record = asRecord(newVals.json)
	case Update:
		// Unchanged TOAST values come from the old tuple when it has them
		// (REPLICA IDENTITY FULL); otherwise they are missing, as in Realtime.
		if oldVals != nil {
			for k, v := range oldVals.json {
				if _, ok := newVals.json[k]; !ok && !rel.hasValue(newTuple, k) {
					newVals.json[k] = v
				}
			}
		}
		c.Record = asRecord(newVals.json)
		if oldVals != nil {
			c.OldRecord = asRecord(oldVals.json)
		} else {
			// No old tuple: the identity is the key columns of the new row.
			old := make(map[string]json.RawMessage)
			for _, col := range rel.columns {
				if v, ok := newVals.json[col.name]; ok && col.key {
					old[col.name] = v
				}
			}
			c.OldRecord = asRecord(old)
		}
	case Delete:
		if oldVals == nil {
			oldVals = &decodedTuple{json: map[string]json.RawMessage{}, text: map[string]string{}}
		}
		c.OldRecord = asRecord(oldVals.json)
		keySource = oldVals
	}
	rls, err := d.cdc.meta.rlsEnabled(ctx, rel.id)
	if err != nil {
		return err
	}
	c.RLSEnabled = rls
	c.src = &walSource{relID: rel.id, keyText: make(map[string]string), keyTypes: rel.pkTypes}
	if keySource != nil {
		for _, k := range rel.pk {
			if v, ok := keySource.text[k]; ok {
				c.src.keyText[k] = v
			}
		}
	}
	d.cdc.decoded.Add(1)
	if err := d.cdc.srv.deliver(ctx, c); err != nil {
		d.cdc.log.Warn("deliver change", zap.String("table", rel.schema+"."+rel.table), zap.Error(err))
	}
	return nil
}

// decode converts a tuple to values; nil tuple gives nil. With keyOnly,
// non-identity columns are skipped.
func (r *relation) decode(t *pglogrepl.TupleData, keyOnly bool) *decodedTuple {
	if t == nil {
		return nil
	}
	out := &decodedTuple{json: make(map[string]json.RawMessage), text: make(map[string]string)}
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
			// unchanged TOAST value: omitted
		case pglogrepl.TupleDataTypeText:
			text := string(col.Data)
			out.json[rc.name] = decodeValue(text, rc.typ)
			out.text[rc.name] = text
		}
	}
	return out
}

// hasValue reports whether tuple t carries a value (possibly null) for the
// named column, i.e. it is not an unchanged TOAST value.
func (r *relation) hasValue(t *pglogrepl.TupleData, name string) bool {
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

func asRecord(vals map[string]json.RawMessage) map[string]any {
	out := make(map[string]any, len(vals))
	for k, v := range vals {
		out[k] = v
	}
	return out
}
