package realtimetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Change types as they appear in the payload's "type" field.
const (
	Insert = "INSERT"
	Update = "UPDATE"
	Delete = "DELETE"
)

// Payload error strings Realtime puts into the "errors" field.
const (
	ErrorPayloadTooLarge = "Error 413: Payload Too Large"
	ErrorUnauthorized    = "Error 401: Unauthorized"
	ErrorNoPrimaryKey    = "Error 400: Bad Request, no primary key"
)

// truncatedValueMax is the largest value (as JSON text) kept in a record
// that exceeds the payload limit.
const truncatedValueMax = 64

// Column names one column of a changed row and its pg_type.typname.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Change is one committed row change, the unit Realtime delivers as a
// postgres_changes frame. The CDC builds them from the WAL; tests may build
// them by hand and pass them to Server.Publish.
type Change struct {
	// Schema and Table name the changed relation.
	Schema string
	Table  string
	// Type is Insert, Update or Delete.
	Type string
	// CommitTimestamp is the commit time of the transaction; the payload
	// carries it in UTC with millisecond precision.
	CommitTimestamp time.Time
	// Columns are the relation's columns in attribute order.
	Columns []Column
	// Record is the new row (INSERT, UPDATE); nil for DELETE. Values are any
	// JSON-marshalable value; json.RawMessage is embedded verbatim.
	Record map[string]any
	// OldRecord is the old row or its replica identity (UPDATE, DELETE); nil
	// for INSERT.
	OldRecord map[string]any
	// PrimaryKey names the primary key columns. They survive `select` column
	// lists, and are the only old_record columns of a DELETE on a table with
	// row level security.
	PrimaryKey []string
	// RLSEnabled reports whether row level security is enabled on the table.
	RLSEnabled bool

	// src is set for changes decoded from the WAL; it lets the server check
	// visibility and privileges against the database.
	src *walSource
}

// walSource carries the database-side identity of a decoded change.
type walSource struct {
	relID uint32
	// keyText holds the primary key values as Postgres text, for the
	// row-visibility query.
	keyText map[string]string
	// keyTypes holds the SQL type names of the primary key columns.
	keyTypes map[string]string
}

// validate reports what is wrong with a hand-built change.
func (c *Change) validate() error {
	switch c.Type {
	case Insert, Update, Delete:
	default:
		return fmt.Errorf("change type %q: want INSERT, UPDATE or DELETE", c.Type)
	}
	if c.Schema == "" || c.Table == "" {
		return fmt.Errorf("change of %q.%q: schema and table are required", c.Schema, c.Table)
	}
	return nil
}

// encodedRecord is a record marshalled value by value, in column order.
type encodedRecord struct {
	keys   []string
	values map[string]json.RawMessage
}

func (r encodedRecord) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range r.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(mustJSON(k))
		b.WriteByte(':')
		b.Write(r.values[k])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// encodeRecord marshals each value of rec, ordering keys by columns and then
// alphabetically for keys that are not columns.
func encodeRecord(rec map[string]any, columns []Column) (encodedRecord, error) {
	out := encodedRecord{values: make(map[string]json.RawMessage, len(rec))}
	for k, v := range rec {
		raw, ok := v.(json.RawMessage)
		if !ok {
			b, err := json.Marshal(v)
			if err != nil {
				return encodedRecord{}, fmt.Errorf("record value %q: %w", k, err)
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

// filtered returns the record restricted to keys for which keep is true.
func (r encodedRecord) filtered(keep func(key string, value json.RawMessage) bool) encodedRecord {
	out := encodedRecord{values: make(map[string]json.RawMessage)}
	for _, k := range r.keys {
		if keep(k, r.values[k]) {
			out.keys = append(out.keys, k)
			out.values[k] = r.values[k]
		}
	}
	return out
}

func (r encodedRecord) size() int {
	n := 2
	for _, k := range r.keys {
		n += len(k) + 4 + len(r.values[k])
	}
	return n
}

// preparedChange is a change with its records encoded once per dispatch.
type preparedChange struct {
	*Change
	record, oldRecord encodedRecord
	hasRecord         bool
	hasOldRecord      bool
	tooLarge          bool
	commitTS          string
}

func prepareChange(c *Change, maxRecordBytes int, forceTruncate bool) (*preparedChange, error) {
	p := &preparedChange{Change: c, commitTS: c.CommitTimestamp.UTC().Format("2006-01-02T15:04:05.000Z")}
	var err error
	if c.Type != Delete {
		if p.record, err = encodeRecord(c.Record, c.Columns); err != nil {
			return nil, err
		}
		p.hasRecord = true
	}
	if c.Type != Insert {
		if p.oldRecord, err = encodeRecord(c.OldRecord, c.Columns); err != nil {
			return nil, err
		}
		p.hasOldRecord = true
	}
	size := p.record.size() + p.oldRecord.size()
	p.tooLarge = forceTruncate || (maxRecordBytes > 0 && size > maxRecordBytes)
	return p, nil
}

// cellLookup returns the filter view of rec.
func (p *preparedChange) cellLookup(rec encodedRecord) func(string) cell {
	return func(col string) cell {
		raw, ok := rec.values[col]
		if !ok {
			return cell{}
		}
		text, null := cellText(raw)
		typ := ""
		for _, c := range p.Columns {
			if c.Name == col {
				typ = c.Type
				break
			}
		}
		return cell{Text: text, Null: null, Type: typ, Exists: true}
	}
}

// matches reports whether the binding wants this change: relation, action
// and filters (INSERT/UPDATE test the new row, DELETE the old identity).
func (p *preparedChange) matches(b binding) bool {
	if !b.matchesRelation(p.Schema, p.Table) || !b.matchesEvent(p.Type) {
		return false
	}
	if len(b.Filters) == 0 {
		return true
	}
	if p.Type == Delete {
		return visibleThroughFilters(b.Filters, p.cellLookup(p.oldRecord))
	}
	return visibleThroughFilters(b.Filters, p.cellLookup(p.record))
}

// access is what one subscriber role may see of a change.
type access struct {
	// Visible is false when RLS hides the row from the role.
	Visible bool
	// Columns limits the columns to those the role may SELECT; nil means all.
	Columns map[string]bool
	// Error replaces the payload with an error row (ErrorUnauthorized,
	// ErrorNoPrimaryKey).
	Error string
}

// fullAccess is the access of a role that sees everything.
var fullAccess = access{Visible: true}

// changeData is the "data" object of a postgres_changes payload.
type changeData struct {
	Schema          string         `json:"schema"`
	Table           string         `json:"table"`
	CommitTimestamp *string        `json:"commit_timestamp"`
	Type            string         `json:"type"`
	Columns         []Column       `json:"columns"`
	Record          *encodedRecord `json:"record,omitempty"`
	OldRecord       *encodedRecord `json:"old_record,omitempty"`
	Errors          []string       `json:"errors"`
}

// data builds the payload data for a subscriber with the given access and
// column selection (nil = all columns).
func (p *preparedChange) data(acc access, sel []string) changeData {
	if acc.Error != "" {
		d := changeData{Schema: p.Schema, Table: p.Table, Type: p.Type, Columns: []Column{}, Errors: []string{acc.Error}}
		empty := encodedRecord{}
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
	d := changeData{Schema: p.Schema, Table: p.Table, CommitTimestamp: &ts, Type: p.Type, Columns: []Column{}}
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
