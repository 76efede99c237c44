package realtimetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/meshhook/meshhook-alerts/internal/jsonenc"
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
	// pre is set for changes decoded from the WAL, whose records are
	// encoded while decoding (Record and OldRecord are then unused).
	pre *preEncoded
}

// walSource carries the database-side identity of a decoded change.
type walSource struct {
	relID uint32
	// keys holds the primary key values as Postgres text, for the
	// row-visibility query.
	keys []keyValue
	// keyTypes holds the SQL type names of the primary key columns.
	keyTypes map[string]string
}

// keyValue is one primary key column's value as Postgres text.
type keyValue struct {
	name, text string
}

// keyText returns the text of primary key column name.
func (s *walSource) keyText(name string) (string, bool) {
	for _, kv := range s.keys {
		if kv.name == name {
			return kv.text, true
		}
	}
	return "", false
}

// preEncoded is what the WAL decoder encodes up front for a change.
type preEncoded struct {
	record, oldRecord encodedRecord
	// columnsJSON is the "columns" array when every column is visible.
	columnsJSON []byte
	// commitTS is the commit timestamp as the payload carries it.
	commitTS string
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

// recordField is one key of an encoded record.
type recordField struct {
	name string
	// key is the JSON of name followed by a colon; nil means it is encoded
	// when written.
	key []byte
	// value is the value's JSON as given or decoded; filters and the size
	// limits read it.
	value json.RawMessage
	// out is value as frames carry it: compact, with <, >, &, U+2028 and
	// U+2029 escaped the way encoding/json embeds JSON.
	out []byte
}

// encodedRecord is a record encoded value by value, in column order (then
// alphabetically for keys that are not columns).
type encodedRecord struct {
	fields []recordField
}

// encodeRecord encodes each value of rec, ordering keys by columns and then
// alphabetically for keys that are not columns.
func encodeRecord(rec map[string]any, columns []Column) (encodedRecord, error) {
	out := encodedRecord{fields: make([]recordField, 0, len(rec))}
	add := func(k string, v any) error {
		raw, ok := v.(json.RawMessage)
		if !ok {
			b, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("record value %q: %w", k, err)
			}
			raw = b
		}
		if len(raw) == 0 {
			raw = json.RawMessage("null")
		}
		final, err := json.Marshal(raw) // compacts and escapes like the payload encoder
		if err != nil {
			return fmt.Errorf("record value %q: %w", k, err)
		}
		out.fields = append(out.fields, recordField{name: k, value: raw, out: final})
		return nil
	}
	seen := make(map[string]bool, len(columns))
	for _, c := range columns {
		if v, ok := rec[c.Name]; ok && !seen[c.Name] {
			if err := add(c.Name, v); err != nil {
				return encodedRecord{}, err
			}
			seen[c.Name] = true
		}
	}
	var rest []string
	for k := range rec {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		if err := add(k, rec[k]); err != nil {
			return encodedRecord{}, err
		}
	}
	return out, nil
}

// lookup returns the value of key.
func (r encodedRecord) lookup(key string) (json.RawMessage, bool) {
	for _, f := range r.fields {
		if f.name == key {
			return f.value, true
		}
	}
	return nil, false
}

func (r encodedRecord) size() int {
	n := 2
	for _, f := range r.fields {
		n += len(f.name) + 4 + len(f.value)
	}
	return n
}

// appendJSON appends the record as a JSON object with the fields keep
// accepts (all when keep is nil).
func (r encodedRecord) appendJSON(dst []byte, keep func(f *recordField) bool) []byte {
	dst = append(dst, '{')
	first := true
	for i := range r.fields {
		f := &r.fields[i]
		if keep != nil && !keep(f) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if f.key != nil {
			dst = append(dst, f.key...)
		} else {
			dst = append(jsonenc.AppendString(dst, f.name), ':')
		}
		dst = append(dst, f.out...)
	}
	return append(dst, '}')
}

// preparedChange is a change with its records encoded once per dispatch.
type preparedChange struct {
	*Change
	record, oldRecord encodedRecord
	hasRecord         bool
	hasOldRecord      bool
	tooLarge          bool
	commitTS          string
	columnsJSON       []byte // "columns" when every column is visible
}

// prepare sets p up for dispatching c: records encoded (or taken as the
// WAL decoder encoded them) and the payload limit applied.
func (p *preparedChange) prepare(c *Change, maxRecordBytes int, forceTruncate bool) error {
	*p = preparedChange{Change: c, hasRecord: c.Type != Delete, hasOldRecord: c.Type != Insert}
	if c.pre != nil {
		p.record, p.oldRecord = c.pre.record, c.pre.oldRecord
		p.commitTS, p.columnsJSON = c.pre.commitTS, c.pre.columnsJSON
	} else {
		var err error
		if p.hasRecord {
			if p.record, err = encodeRecord(c.Record, c.Columns); err != nil {
				return err
			}
		}
		if p.hasOldRecord {
			if p.oldRecord, err = encodeRecord(c.OldRecord, c.Columns); err != nil {
				return err
			}
		}
		p.commitTS = formatCommitTimestamp(c.CommitTimestamp)
		p.columnsJSON = appendColumns(nil, c.Columns, nil)
	}
	size := p.record.size() + p.oldRecord.size()
	p.tooLarge = forceTruncate || (maxRecordBytes > 0 && size > maxRecordBytes)
	return nil
}

// cellLookup returns the filter view of rec.
func (p *preparedChange) cellLookup(rec encodedRecord) func(string) cell {
	return func(col string) cell {
		raw, ok := rec.lookup(col)
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

// withAllColumns returns acc with Columns nil when it allows every column
// of the change, so that the common case takes the unfiltered path.
func (acc access) withAllColumns(columns []Column) access {
	if acc.Columns == nil {
		return acc
	}
	for _, c := range columns {
		if !acc.Columns[c.Name] {
			return acc
		}
	}
	acc.Columns = nil
	return acc
}

// appendData appends the payload's "data" object for a subscriber with the
// given access and column selection (nil = all columns). Keys and values
// come out exactly as encoding/json would marshal them: schema, table,
// commit_timestamp, type, columns, record, old_record, errors.
func (p *preparedChange) appendData(dst []byte, acc access, sel []string) []byte {
	dst = append(dst, `{"schema":`...)
	dst = jsonenc.AppendString(dst, p.Schema)
	dst = append(dst, `,"table":`...)
	dst = jsonenc.AppendString(dst, p.Table)
	if acc.Error != "" {
		dst = append(dst, `,"commit_timestamp":null,"type":`...)
		dst = jsonenc.AppendString(dst, p.Type)
		dst = append(dst, `,"columns":[]`...)
		if p.Type != Delete {
			dst = append(dst, `,"record":{}`...)
		}
		if p.Type == Update {
			dst = append(dst, `,"old_record":{}`...)
		}
		dst = append(dst, `,"errors":[`...)
		dst = jsonenc.AppendString(dst, acc.Error)
		return append(dst, "]}"...)
	}
	dst = append(dst, `,"commit_timestamp":`...)
	dst = jsonenc.AppendString(dst, p.commitTS)
	dst = append(dst, `,"type":`...)
	dst = jsonenc.AppendString(dst, p.Type)
	dst = append(dst, `,"columns":`...)

	all := acc.Columns == nil && sel == nil
	isPK := func(name string) bool { return slices.Contains(p.PrimaryKey, name) }
	allowed := func(name string) bool {
		if acc.Columns != nil && !acc.Columns[name] {
			return false
		}
		return sel == nil || slices.Contains(sel, name) || isPK(name)
	}
	if all {
		dst = append(dst, p.columnsJSON...)
	} else {
		dst = appendColumns(dst, p.Columns, allowed)
	}
	if p.hasRecord {
		dst = append(dst, `,"record":`...)
		var keep func(f *recordField) bool
		if !all || p.tooLarge {
			keep = func(f *recordField) bool { return allowed(f.name) && p.small(f) }
		}
		dst = p.record.appendJSON(dst, keep)
	}
	if p.hasOldRecord {
		dst = append(dst, `,"old_record":`...)
		var keep func(f *recordField) bool
		if rlsDelete := p.Type == Delete && p.RLSEnabled; !all || p.tooLarge || rlsDelete {
			keep = func(f *recordField) bool {
				if rlsDelete && !isPK(f.name) {
					return false
				}
				return allowed(f.name) && p.small(f)
			}
		}
		dst = p.oldRecord.appendJSON(dst, keep)
	}
	if p.tooLarge {
		dst = append(dst, `,"errors":[`...)
		dst = jsonenc.AppendString(dst, ErrorPayloadTooLarge)
		return append(dst, "]}"...)
	}
	return append(dst, `,"errors":null}`...)
}

// small reports whether f survives the truncation of a too large payload.
func (p *preparedChange) small(f *recordField) bool {
	return !p.tooLarge || len(f.value) <= truncatedValueMax
}

// appendColumns appends the "columns" array: the columns keep accepts (all
// when keep is nil) as {"name":...,"type":...} objects.
func appendColumns(dst []byte, columns []Column, keep func(name string) bool) []byte {
	dst = append(dst, '[')
	first := true
	for _, c := range columns {
		if keep != nil && !keep(c.Name) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, `{"name":`...)
		dst = jsonenc.AppendString(dst, c.Name)
		dst = append(dst, `,"type":`...)
		dst = jsonenc.AppendString(dst, c.Type)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendPayload appends the payload of a postgres_changes frame: with the
// new API {"ids":[...],"data":...}, with the legacy one the data itself.
func appendPayload(dst []byte, newAPI bool, ids []int64, data []byte) []byte {
	if !newAPI {
		return append(dst, data...)
	}
	if ids == nil {
		dst = append(dst, `{"ids":null,"data":`...)
		dst = append(dst, data...)
		return append(dst, '}')
	}
	dst = append(dst, `{"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, id, 10)
	}
	dst = append(dst, `],"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}
