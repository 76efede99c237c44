package realtime

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Event is a value delivered on [Client.Events]: *Change, Ready or Gap.
type Event interface{ isEvent() }

// Column describes one column of a change (wire "columns").
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Change is one postgres_changes row change.
//
// Record (INSERT, UPDATE) and OldRecord (UPDATE, DELETE; primary key only
// unless REPLICA IDENTITY FULL) hold decoded JSON values; numbers are
// json.Number so int8 and numeric values keep their precision. Errors is the
// server's errors list. Incomplete is set when the server truncated the row
// ("Error 413: Payload Too Large"): values longer than 64 bytes are missing,
// the primary key is present, and the consumer should re-read the row.
// Columns is shared by every change that listed the same columns: treat it
// as read-only.
type Change struct {
	// Channel is the ChannelSpec name the change arrived on.
	Channel string
	// Bindings are the indexes into ChannelSpec.Bindings that matched.
	Bindings        []int
	Type            string
	Schema          string
	Table           string
	CommitTimestamp time.Time
	Columns         []Column
	Record          map[string]any
	OldRecord       map[string]any
	Errors          []string
	Incomplete      bool
	ReceivedAt      time.Time
}

// Ready reports that the server confirmed the channel's postgres_changes
// subscription ("Subscribed to PostgreSQL"). It is emitted every time the
// confirmation arrives (first join, rejoin, token refresh, server-side
// resubscribe); changes committed before it may have been missed, so the
// consumer should catch up from the database.
type Ready struct {
	Channel string
	At      time.Time
}

// Gap reports that Dropped changes for Channel were discarded because the
// Events buffer was full. At is when the first of them was dropped. The
// consumer should catch up from the database.
type Gap struct {
	Channel string
	Dropped int
	At      time.Time
}

func (*Change) isEvent() {}
func (Ready) isEvent()   {}
func (Gap) isEvent()     {}

// decodedChange is a postgres_changes payload decoded by the reader, before
// it is matched against a channel's bindings.
type decodedChange struct {
	ids    []int64
	change Change
}

// decodeChange decodes a postgres_changes payload (§3). Values inside
// records are decoded as encoding/json decodes them with UseNumber. Ids that
// are not integers are ignored.
func decodeChange(payload json.RawMessage, receivedAt time.Time) (*decodedChange, error) {
	ids, w, err := parseChangePayload(payload)
	if err != nil {
		return nil, fmt.Errorf("decode postgres_changes payload: %w", err)
	}
	if w.typ == "" {
		return nil, fmt.Errorf("decode postgres_changes payload: missing data.type")
	}
	d := &decodedChange{ids: ids}
	c := &d.change
	c.Type = w.typ
	c.Schema = w.schema
	c.Table = w.table
	cols, err := columnsOf(w.columns)
	if err != nil {
		return nil, fmt.Errorf("decode postgres_changes payload: columns: %w", err)
	}
	c.Columns = cols
	c.Record = w.record
	c.OldRecord = w.oldRecord
	c.Errors = w.errors
	c.ReceivedAt = receivedAt
	if ts := w.commitTimestamp; ts != nil {
		c.CommitTimestamp = parseCommitTimestamp(*ts)
	}
	for _, e := range c.Errors {
		if strings.Contains(e, "413") || strings.Contains(e, "Payload Too Large") {
			c.Incomplete = true
			break
		}
	}
	return d, nil
}

// columnLists caches decoded column lists by their JSON text: every change
// of a table lists the same columns, and decoding them anew for each change
// cost a tenth of the client's CPU under load. It holds at most
// maxColumnLists entries (tables and column sets seen), then stops adding.
var columnLists = struct {
	sync.RWMutex
	m map[string][]Column
}{m: map[string][]Column{}}

const maxColumnLists = 1024

func columnsOf(raw json.RawMessage) ([]Column, error) {
	if len(raw) == 0 || string(raw) == jsonNull {
		return nil, nil
	}
	columnLists.RLock()
	cols, ok := columnLists.m[string(raw)]
	columnLists.RUnlock()
	if ok {
		return cols, nil
	}
	if err := json.Unmarshal(raw, &cols); err != nil {
		return nil, err
	}
	columnLists.Lock()
	if len(columnLists.m) < maxColumnLists {
		columnLists.m[string(raw)] = cols
	}
	columnLists.Unlock()
	return cols, nil
}

// matchBindings returns the indexes of bindings whose server id is in ids
// and whose event accepts changeType (§3.5). serverIDs[i] is the id the
// server assigned to bindings[i].
func matchBindings(bindings []Binding, serverIDs []int64, ids []int64, changeType string) []int {
	var matched []int
	for i, b := range bindings {
		if i >= len(serverIDs) {
			break
		}
		if b.Event != "*" && !strings.EqualFold(b.Event, changeType) {
			continue
		}
		for _, id := range ids {
			if id == serverIDs[i] {
				matched = append(matched, i)
				break
			}
		}
	}
	return matched
}

// parseCommitTimestamp parses a commit_timestamp; Realtime sends RFC 3339
// with milliseconds, the other layouts are Postgres renderings. An
// unparsable value yields the zero time rather than losing the change; it is
// informational only.
func parseCommitTimestamp(s string) time.Time {
	layouts := [...]string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999Z07",
	}
	for _, layout := range layouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}
