package realtimetest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

func jsonNumber(s string) json.Number { return json.Number(s) }

// mustField returns payload.data.<path...> of a postgres_changes frame as raw JSON.
func mustField(t *testing.T, f frame, path ...string) json.RawMessage {
	t.Helper()
	var p struct {
		Data json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(f.Payload, &p), f.Raw)
	cur := p.Data
	for _, k := range path {
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(cur, &m), f.Raw)
		v, ok := m[k]
		require.True(t, ok, "no %q in %s", k, cur)
		cur = v
	}
	return cur
}

func frameIDs(t *testing.T, f frame) []int64 {
	t.Helper()
	var p struct {
		IDs []int64 `json:"ids"`
	}
	require.NoError(t, json.Unmarshal(f.Payload, &p), f.Raw)
	return p.IDs
}

var todoColumns = []Column{{"id", "int8"}, {"title", "text"}, {"done", "bool"}}

func TestPublish_FramesIDsAndFilters(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			c := dialClient(t, ts, vsn, pgtest.ServiceRoleKey())
			_, ids := c.joinAndSubscribe("realtime:todos", joinPayload("",
				map[string]any{"event": "INSERT", "schema": "public", "table": "todos"},
				map[string]any{"event": "*", "schema": "public", "table": "todos", "filter": "id=eq.1"},
				map[string]any{"event": "DELETE", "schema": "public", "table": "todos"},
				map[string]any{"event": "*", "schema": "public", "table": "other"},
			))
			insertID, filterID, deleteID := ids[0], ids[1], ids[2]
			ts0 := time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.FixedZone("x", 3600))

			require.NoError(t, ts.Publish(Change{Schema: "public", Table: "todos", Type: Insert, CommitTimestamp: ts0, Columns: todoColumns,
				Record: map[string]any{"id": 1, "title": "a", "done": false}, PrimaryKey: []string{"id"}}))
			f := c.next()
			assert.Equal(t, "postgres_changes", f.Event)
			assert.Equal(t, "null", string(f.Ref))
			if vsn == "2.0.0" {
				assert.Equal(t, "null", string(f.JoinRef))
				assert.True(t, strings.HasPrefix(f.Raw, `[null,null,"realtime:todos","postgres_changes",`), f.Raw)
			}
			assert.ElementsMatch(t, []int64{insertID, filterID}, frameIDs(t, f), "one frame listing every matching binding")
			var data map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(mustField(t, f), &data))
			assert.JSONEq(t, `"2025-12-31T23:00:00.123Z"`, string(data["commit_timestamp"]))
			assert.JSONEq(t, `"INSERT"`, string(data["type"]))
			assert.JSONEq(t, `[{"name":"id","type":"int8"},{"name":"title","type":"text"},{"name":"done","type":"bool"}]`, string(data["columns"]))
			assert.JSONEq(t, `{"id":1,"title":"a","done":false}`, string(data["record"]))
			assert.Equal(t, "null", string(data["errors"]))
			_, hasOld := data["old_record"]
			assert.False(t, hasOld, "no old_record on INSERT")

			require.NoError(t, ts.Publish(Change{Schema: "public", Table: "todos", Type: Insert, Columns: todoColumns,
				Record: map[string]any{"id": 2, "title": "b", "done": false}}))
			f = c.next()
			assert.Equal(t, []int64{insertID}, frameIDs(t, f))

			// UPDATE: only the filtered wildcard binding matches, on the new row.
			require.NoError(t, ts.Publish(Change{Schema: "public", Table: "todos", Type: Update, Columns: todoColumns,
				Record: map[string]any{"id": 2, "title": "b", "done": true}, OldRecord: map[string]any{"id": 2}}))
			require.NoError(t, ts.Publish(Change{Schema: "public", Table: "todos", Type: Update, Columns: todoColumns,
				Record: map[string]any{"id": 1, "title": "a", "done": true}, OldRecord: map[string]any{"id": 1}}))
			f = c.next()
			assert.Equal(t, []int64{filterID}, frameIDs(t, f))
			assert.JSONEq(t, `{"id":1}`, string(mustField(t, f, "old_record")))

			// DELETE: filters apply to old_record.
			require.NoError(t, ts.Publish(Change{Schema: "public", Table: "todos", Type: Delete, Columns: todoColumns,
				OldRecord: map[string]any{"id": 1}}))
			f = c.next()
			assert.ElementsMatch(t, []int64{filterID, deleteID}, frameIDs(t, f))
			data = nil
			require.NoError(t, json.Unmarshal(mustField(t, f), &data))
			_, hasRecord := data["record"]
			assert.False(t, hasRecord, "no record on DELETE")

			// Other tables and schemas do not reach this channel.
			require.NoError(t, ts.Publish(Change{Schema: "private", Table: "todos", Type: Insert, Record: map[string]any{"id": 1}}))
			c.expectNone(200 * time.Millisecond)
			assert.Equal(t, 4, ts.DeliveredChanges())
		})
	}
}

func TestPublish_RLSDeleteKeepsPrimaryKeyAndSelect(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialClient(t, ts, "2.0.0", pgtest.ServiceRoleKey())
	_, ids := c.joinAndSubscribe("realtime:s", joinPayload("",
		map[string]any{"event": "*", "schema": "public", "table": "todos"},
		map[string]any{"event": "*", "schema": "public", "table": "todos", "select": []string{"title"}},
	))
	require.NoError(t, ts.Publish(Change{Schema: "public", Table: "todos", Type: Delete, Columns: todoColumns, PrimaryKey: []string{"id"},
		RLSEnabled: true, OldRecord: map[string]any{"id": 7, "title": "x", "done": true}}))
	f1, f2 := c.next(), c.next()
	assert.Equal(t, []int64{ids[0]}, frameIDs(t, f1), "bindings with different select lists get separate frames")
	assert.JSONEq(t, `{"id":7}`, string(mustField(t, f1, "old_record")))
	assert.Equal(t, []int64{ids[1]}, frameIDs(t, f2))
	assert.JSONEq(t, `[{"name":"id","type":"int8"},{"name":"title","type":"text"}]`, string(mustField(t, f2, "columns")))
}

func TestPublish_RejectsInvalidChange(t *testing.T) {
	ts := newTestServer(t, Options{})
	assert.Error(t, ts.Publish(Change{Schema: "public", Table: "t", Type: "TRUNCATE"}))
	assert.Error(t, ts.Publish(Change{Table: "t", Type: Insert}))
	assert.Error(t, ts.Publish(Change{Schema: "public", Table: "t", Type: Insert, Record: map[string]any{"x": func() {}}}))
}

func TestPublish_PayloadLimit(t *testing.T) {
	ts := newTestServer(t, Options{MaxRecordBytes: 200})
	c := dialClient(t, ts, "1.0.0", pgtest.ServiceRoleKey())
	c.joinAndSubscribe("realtime:big", joinPayload("", allPublic))
	require.NoError(t, ts.Publish(Change{Schema: "public", Table: "todos", Type: Update, Columns: todoColumns,
		Record:    map[string]any{"id": 12, "title": strings.Repeat("y", 300)},
		OldRecord: map[string]any{"id": 12, "title": strings.Repeat("z", 62)}}))
	f := c.next()
	assert.JSONEq(t, `["Error 413: Payload Too Large"]`, string(mustField(t, f, "errors")))
	assert.JSONEq(t, `{"id":12}`, string(mustField(t, f, "record")))
	// 62 characters plus quotes is exactly 64 bytes of JSON: kept.
	assert.JSONEq(t, `{"id":12,"title":"`+strings.Repeat("z", 62)+`"}`, string(mustField(t, f, "old_record")))
}
