package realtimetest

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests hold the WAL decoder and the payload encoder to the
// reference path in refpath_test.go: same input, byte-identical frames.

// pgoutput message builders, for the decoder tests.

// tcol is one tuple column: kind 'n', 'u', 't' or 'b' and its text.
type tcol struct {
	kind byte
	text string
}

func txt(s string) tcol { return tcol{kind: 't', text: s} }

var (
	null  = tcol{kind: 'n'}
	toast = tcol{kind: 'u'}
)

func tupleBytes(cols []tcol) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(cols)))
	for _, c := range cols {
		b = append(b, c.kind)
		if c.kind == 't' || c.kind == 'b' {
			b = binary.BigEndian.AppendUint32(b, uint32(len(c.text)))
			b = append(b, c.text...)
		}
	}
	return b
}

// rowMsg builds an Insert ('I'), Update ('U') or Delete ('D') message;
// oldKind is 'K', 'O' or 0 for no old tuple.
func rowMsg(kind byte, relID uint32, oldKind byte, old, neu []tcol) []byte {
	b := binary.BigEndian.AppendUint32([]byte{kind}, relID)
	if oldKind != 0 {
		b = append(b, oldKind)
		b = append(b, tupleBytes(old)...)
	}
	if kind != 'D' {
		b = append(b, 'N')
		b = append(b, tupleBytes(neu)...)
	}
	return b
}

// testRelation builds a prepared relation of the given columns ("name
// type"); key names the replica identity columns, pk the primary key.
func testRelation(t *testing.T, cols []string, key, pk []string) *relation {
	t.Helper()
	rel := &relation{id: 7, schema: "public", table: "t<&>", pk: pk, pkTypes: map[string]string{}}
	for _, c := range cols {
		name, typ, ok := strings.Cut(c, " ")
		require.True(t, ok)
		ti := valueTypes[typ]
		require.NotNil(t, ti, typ)
		rel.columns = append(rel.columns, relColumn{name: name, typ: ti, key: contains(key, name)})
	}
	for _, k := range pk {
		rel.pkTypes[k] = "bigint"
	}
	rel.prepare()
	return rel
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// wideColumns cover every value type; id is the key.
var wideColumns = []string{"id int8", "body text", "n numeric", "f float8", "ok bool", "doc jsonb", "raw json",
	"at timestamptz", "local timestamp", "uid uuid", "bin bytea", "day date", "tags _text", "nums _int4", "docs _jsonb",
	"odd\"name<> text"}

func wideRow(id string) []tcol {
	return []tcol{txt(id), txt("body <b>&amp;</b> \u2028 é"), txt("12.50"), txt("NaN"), txt("t"), txt(`{"k": [1, 2], "h": "<x>"}`),
		txt(`{"a" : 1}`), txt("2025-11-03 09:32:55.123+05:30"), txt("2025-11-03 09:32:55.5"),
		txt("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), txt(`\x0102`), txt("2025-11-03"), txt(`{a,"b c",NULL}`),
		txt(`{{1,2},{3,4}}`), txt(`{"{\"h\": \"<&>\"}",NULL}`), txt("odd")}
}

// walCase is one pgoutput row message and the relation it is for.
type walCase struct {
	name string
	rel  *relation
	msg  []byte
	rls  bool
}

func walCases(t *testing.T) []walCase {
	wide := testRelation(t, wideColumns, []string{"id"}, []string{"id"})
	var names []string
	for _, c := range wideColumns {
		name, _, _ := strings.Cut(c, " ")
		names = append(names, name)
	}
	full := testRelation(t, wideColumns, names, []string{"id"}) // REPLICA IDENTITY FULL
	nopk := testRelation(t, []string{"a text", "b int4"}, nil, nil)
	twoKey := testRelation(t, []string{"a int4", "b text", "c text"}, []string{"a", "b"}, []string{"b", "a"})
	allNull := make([]tcol, len(wideColumns))
	for i := range allNull {
		allNull[i] = null
	}
	allNull[0] = txt("2")
	keyOnly := make([]tcol, len(wideColumns))
	for i := range keyOnly {
		keyOnly[i] = null
	}
	keyOnly[0] = txt("1")
	deletedKey := make([]tcol, len(wideColumns))
	for i := range deletedKey {
		deletedKey[i] = null
	}
	deletedKey[0] = txt("9")
	withToast := wideRow("1")
	withToast[1], withToast[5] = toast, toast
	withBinary := wideRow("1")
	withBinary[2] = tcol{kind: 'b', text: "\x00\x01"}
	return []walCase{
		{"insert", wide, rowMsg('I', 7, 0, nil, wideRow("1")), false},
		{"insert all null", wide, rowMsg('I', 7, 0, nil, allNull), true},
		{"insert short tuple", wide, rowMsg('I', 7, 0, nil, wideRow("1")[:3]), false},
		{"insert long tuple", wide, rowMsg('I', 7, 0, nil, append(wideRow("1"), txt("extra"))), false},
		{"insert binary column", wide, rowMsg('I', 7, 0, nil, withBinary), false},
		{"update default identity", wide, rowMsg('U', 7, 0, nil, wideRow("1")), false},
		{"update unchanged toast", wide, rowMsg('U', 7, 0, nil, withToast), true},
		{"update key change", wide, rowMsg('U', 7, 'K', keyOnly, wideRow("3")), false},
		{"update full identity", full, rowMsg('U', 7, 'O', allNull, wideRow("2")), false},
		{"update full identity toast filled", full, rowMsg('U', 7, 'O', wideRow("1"), withToast), true},
		{"update full identity toast in both", full, rowMsg('U', 7, 'O', withToast, withToast), false},
		{"update full identity short new", full, rowMsg('U', 7, 'O', wideRow("1"), wideRow("1")[:4]), false},
		{"update binary column", full, rowMsg('U', 7, 'O', wideRow("1"), withBinary), false},
		{"delete key", wide, rowMsg('D', 7, 'K', deletedKey, nil), false},
		{"delete key rls", wide, rowMsg('D', 7, 'K', deletedKey, nil), true},
		{"delete full", full, rowMsg('D', 7, 'O', wideRow("1"), nil), false},
		{"delete full rls", full, rowMsg('D', 7, 'O', wideRow("1"), nil), true},
		{"insert no primary key", nopk, rowMsg('I', 7, 0, nil, []tcol{txt("x"), txt("1")}), false},
		{"update two-column key", twoKey, rowMsg('U', 7, 0, nil, []tcol{txt("1"), txt("k<"), txt("v")}), false},
		{"delete two-column key", twoKey, rowMsg('D', 7, 'K', []tcol{txt("1"), txt("k<"), null}, nil), true},
	}
}

// accessCase is a subscriber's view of a change.
type accessCase struct {
	name string
	acc  access
	sel  []string
}

func accessCases(rel *relation) []accessCase {
	all := map[string]bool{"extra": true}
	for _, c := range rel.columns {
		all[c.name] = true
	}
	some := map[string]bool{}
	for i, c := range rel.columns {
		if i%2 == 0 {
			some[c.name] = true
		}
	}
	return []accessCase{
		{"full", fullAccess, nil},
		{"all columns granted", access{Visible: true, Columns: all}, nil},
		{"some columns granted", access{Visible: true, Columns: some}, nil},
		{"no columns granted", access{Visible: true, Columns: map[string]bool{}}, nil},
		{"select", fullAccess, []string{"body", "b", "nope"}},
		{"select and some columns", access{Visible: true, Columns: some}, []string{"n", "ok", "c"}},
		{"unauthorized", access{Error: ErrorUnauthorized}, nil},
		{"no primary key", access{Error: ErrorNoPrimaryKey}, []string{"a"}},
	}
}

func TestWALFrames_MatchReference(t *testing.T) {
	commit := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	for _, tc := range walCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			d := &walDecoder{relations: map[uint32]*relation{7: tc.rel}, commitTime: commit, commitTS: formatCommitTimestamp(commit)}
			m, err := d.parseRow(tc.msg)
			require.NoError(t, err)
			c := d.build(tc.rel, m, tc.rls)

			parsed, err := pglogrepl.Parse(tc.msg)
			require.NoError(t, err)
			refChange, refKeys := refWALChange(tc.rel, parsed, commit, tc.rls)

			// The database identity used for row visibility.
			gotKeys := map[string]string{}
			for _, kv := range c.src.keys {
				gotKeys[kv.name] = kv.text
			}
			assert.Equal(t, refKeys, gotKeys, "primary key text")
			assert.Equal(t, tc.rel.id, c.src.relID)

			for _, limit := range []struct {
				name     string
				max      int
				truncate bool
			}{{"no limit", 0, false}, {"default limit", DefaultMaxRecordBytes, false}, {"small limit", 200, false}, {"forced", 0, true}} {
				var p preparedChange
				require.NoError(t, p.prepare(c, limit.max, limit.truncate))
				ref, err := refPrepare(refChange, limit.max, limit.truncate)
				require.NoError(t, err)
				require.Equal(t, ref.tooLarge, p.tooLarge, limit.name)
				assertSameRecords(t, ref, &p)

				for _, ac := range accessCases(tc.rel) {
					for _, vsn := range vsns {
						for _, newAPI := range []bool{true, false} {
							ids := []int64{123}
							if newAPI {
								ids = []int64{5, 3}
							}
							want := refFrame(vsn, "realtime:x<y>", newAPI, ids, ref, ac.acc, ac.sel)
							codec, _ := negotiateCodec(vsn)
							for _, acc := range []access{ac.acc, ac.acc.withAllColumns(p.Columns)} {
								got := changeFrame(codec, "realtime:x<y>", p.Type, newAPI, ids, p.appendData(nil, acc, ac.sel))
								require.Equal(t, want, string(got), "%s, %s, vsn %s, new API %v", limit.name, ac.name, vsn, newAPI)
							}
						}
					}
				}
			}
		})
	}
}

// assertSameRecords checks the values filters read and the record sizes.
func assertSameRecords(t *testing.T, ref *refPrepared, p *preparedChange) {
	t.Helper()
	for _, pair := range []struct {
		name string
		ref  refRecord
		got  encodedRecord
	}{{"record", ref.record, p.record}, {"old_record", ref.oldRecord, p.oldRecord}} {
		var keys []string
		for _, f := range pair.got.fields {
			keys = append(keys, f.name)
			assert.Equal(t, string(pair.ref.values[f.name]), string(f.value), "%s.%s", pair.name, f.name)
		}
		assert.Equal(t, pair.ref.keys, keys, pair.name)
		assert.Equal(t, pair.ref.size(), pair.got.size(), pair.name)
	}
}

func TestPublishFrames_MatchReference(t *testing.T) {
	commit := time.Date(2026, 1, 1, 0, 0, 0, 999999999, time.UTC)
	cols := []Column{{"id", "int8"}, {"title", "text"}, {"meta", "jsonb"}, {"done", "bool"}}
	changes := []Change{
		{Schema: "public", Table: "todos", Type: Insert, CommitTimestamp: commit, Columns: cols, PrimaryKey: []string{"id"},
			Record: map[string]any{"id": 1, "title": "a <b> & \u2028", "meta": json.RawMessage(` { "h" : "<&>" , "n": [1, 2] } `),
				"done": false, "zeta": []int{1, 2}, "alpha": nil, "big": json.RawMessage(`9007199254740993`), "empty": json.RawMessage(nil),
				"f": 1.5, "m": map[string]any{"b": "<", "a": 1}}},
		{Schema: "public", Table: "todos", Type: Update, CommitTimestamp: commit, Columns: cols, PrimaryKey: []string{"id"},
			Record: map[string]any{"id": 1, "title": strings.Repeat("x", 100)}, OldRecord: map[string]any{"id": 1}},
		{Schema: "public", Table: "todos", Type: Delete, Columns: cols, PrimaryKey: []string{"id"}, RLSEnabled: true,
			OldRecord: map[string]any{"id": 1, "title": "gone"}},
		{Schema: "s", Table: "t", Type: Insert},
		{Schema: "s", Table: "t", Type: Update, Columns: []Column{{"id", "int4"}, {"id", "int4"}}, Record: map[string]any{"id": 1}},
	}
	for i := range changes {
		c := &changes[i]
		for _, truncate := range []bool{false, true} {
			var p preparedChange
			require.NoError(t, p.prepare(c, DefaultMaxRecordBytes, truncate))
			ref, err := refPrepare(c, DefaultMaxRecordBytes, truncate)
			require.NoError(t, err)
			assertSameRecords(t, ref, &p)
			for _, ac := range []accessCase{{"full", fullAccess, nil}, {"select", fullAccess, []string{"title"}}, {"error", access{Error: ErrorUnauthorized}, nil}} {
				for _, vsn := range vsns {
					for _, newAPI := range []bool{true, false} {
						want := refFrame(vsn, "realtime:todos", newAPI, []int64{42}, ref, ac.acc, ac.sel)
						codec, _ := negotiateCodec(vsn)
						got := changeFrame(codec, "realtime:todos", p.Type, newAPI, []int64{42}, p.appendData(nil, ac.acc, ac.sel))
						require.Equal(t, want, string(got), "change %d, truncate %v, %s, vsn %s, new API %v", i, truncate, ac.name, vsn, newAPI)
					}
				}
			}
		}
	}
}

func TestPublish_RejectsInvalidRawJSON(t *testing.T) {
	ts := newTestServer(t, Options{})
	err := ts.Publish(Change{Schema: "public", Table: "todos", Type: Insert, Record: map[string]any{"bad": json.RawMessage(`{oops`)}})
	assert.ErrorContains(t, err, `record value "bad"`)
}

func TestParseRow_RejectsMalformedMessages(t *testing.T) {
	d := &walDecoder{}
	good := rowMsg('U', 7, 'K', []tcol{txt("1")}, []tcol{txt("1"), null})
	_, err := d.parseRow(good)
	require.NoError(t, err)
	for i := 1; i < len(good); i++ {
		_, err := d.parseRow(good[:i])
		assert.Error(t, err, "truncated to %d bytes", i)
	}
	bad := rowMsg('I', 7, 0, nil, []tcol{{kind: 'x'}})
	_, err = d.parseRow(bad)
	assert.ErrorContains(t, err, "unknown tuple data kind")
	_, err = d.parseRow(rowMsg('D', 7, 0, nil, nil))
	assert.Error(t, err, "DELETE without old tuple")
	_, err = d.parseRow(append(rowMsg('U', 7, 0, nil, nil)[:5], 'X'))
	assert.Error(t, err, "UPDATE with an unknown tuple type")
}

// TestWALDecoder_ReusesStateAcrossChanges runs a stream of changes through
// one decoder, whose buffers and timestamp memos carry over from change to
// change.
func TestWALDecoder_ReusesStateAcrossChanges(t *testing.T) {
	commit := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rel := testRelation(t, wideColumns, []string{"id"}, []string{"id"})
	d := &walDecoder{relations: map[uint32]*relation{7: rel}, commitTime: commit, commitTS: formatCommitTimestamp(commit)}
	stamps := []string{"2025-11-03 09:32:55.123+05:30", "2025-11-03 09:32:55.123+05:30", "2025-11-03 09:32:55.124+05:30",
		"2026-01-01 00:00:00+00", "2025-11-03 09:32:55.123+05:30", "not a time"}
	var msgs [][]byte
	for i, ts := range stamps {
		row := wideRow(itoa(i))
		row[7] = txt(ts)
		row[8] = txt(strings.TrimSuffix(ts, "+05:30"))
		if i%2 == 1 {
			row[1] = txt(strings.Repeat("long ", i*20))
		}
		msgs = append(msgs, rowMsg('I', 7, 0, nil, row), rowMsg('U', 7, 0, nil, row))
	}
	msgs = append(msgs, rowMsg('I', 7, 0, nil, wideRow("99")[:2]))

	codec, _ := negotiateCodec("2.0.0")
	for i, msg := range msgs {
		m, err := d.parseRow(msg)
		require.NoError(t, err)
		change := d.build(rel, m, false)
		var p preparedChange
		require.NoError(t, p.prepare(change, 0, false))
		got := changeFrame(codec, "realtime:s", p.Type, true, []int64{1}, p.appendData(nil, fullAccess, nil))

		parsed, err := pglogrepl.Parse(msg)
		require.NoError(t, err)
		refChange, _ := refWALChange(rel, parsed, commit, false)
		ref, err := refPrepare(refChange, 0, false)
		require.NoError(t, err)
		require.Equal(t, refFrame("2.0.0", "realtime:s", true, []int64{1}, ref, fullAccess, nil), string(got), "message %d", i)
	}
}
