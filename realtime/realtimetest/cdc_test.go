package realtimetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

const itemsDDL = `
create table public.rt_items (
  id     bigint primary key,
  kind   text not null default 'a',
  amount numeric,
  big    int8,
  flag   bool,
  tags   text[],
  nums   int4[],
  meta   jsonb,
  at     timestamptz,
  data   bytea,
  note   text
);
alter publication supabase_realtime add table public.rt_items;
create table public.rt_hidden (id bigint primary key, v text);
`

// cdcEnv is a database with the test tables, a server and a CDC feeding it.
type cdcEnv struct {
	db  *pgtest.DB
	ts  *testServer
	cdc *CDC
}

func newCDCEnv(t *testing.T, ddl string, opts Options) *cdcEnv {
	t.Helper()
	db := pgtest.Shared(t).NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := db.Pool.Exec(ctx, ddl)
	require.NoError(t, err)
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	ts := newTestServer(t, opts)
	cdc, err := StartCDC(ctx, db.URL, ts.Server, CDCOptions{StatusInterval: 200 * time.Millisecond, Logger: opts.Logger})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cdc.Close()) })
	return &cdcEnv{db: db, ts: ts, cdc: cdc}
}

func (e *cdcEnv) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := e.db.Pool.Exec(ctx, sql, args...)
	require.NoError(t, err, sql)
}

// changeData decodes payload.data of a postgres_changes frame.
type testData struct {
	Schema          string                     `json:"schema"`
	Table           string                     `json:"table"`
	Type            string                     `json:"type"`
	CommitTimestamp string                     `json:"commit_timestamp"`
	Columns         []Column                   `json:"columns"`
	Record          map[string]json.RawMessage `json:"record"`
	OldRecord       map[string]json.RawMessage `json:"old_record"`
	Errors          []string                   `json:"errors"`
	raw             map[string]json.RawMessage
}

func dataOf(t *testing.T, f frame) testData {
	t.Helper()
	require.Equal(t, "postgres_changes", f.Event, f.Raw)
	raw := mustField(t, f)
	var d testData
	require.NoError(t, json.Unmarshal(raw, &d), f.Raw)
	require.NoError(t, json.Unmarshal(raw, &d.raw))
	return d
}

func compact(m map[string]json.RawMessage) string {
	b, _ := json.Marshal(m)
	return string(b)
}

var itemsBinding = map[string]any{"event": "*", "schema": "public", "table": "rt_items"}

func TestCDC_InsertUpdateDeleteInCommitOrder(t *testing.T) {
	env := newCDCEnv(t, itemsDDL, Options{})
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			c := dialClient(t, env.ts, vsn, pgtest.ServiceRoleKey())
			topic := "realtime:items-" + vsn
			_, ids := c.joinAndSubscribe(topic, joinPayload("", itemsBinding))

			id := map[string]int{"1.0.0": 1, "2.0.0": 2}[vsn]
			env.exec(t, `insert into public.rt_items (id, kind) values ($1, 'a')`, id)
			env.exec(t, `update public.rt_items set kind = 'b' where id = $1`, id)
			env.exec(t, `delete from public.rt_items where id = $1`, id)

			ins, upd, del := dataOf(t, c.next()), dataOf(t, c.next()), dataOf(t, c.next())
			assert.Equal(t, []string{Insert, Update, Delete}, []string{ins.Type, upd.Type, del.Type})
			for _, d := range []testData{ins, upd, del} {
				assert.Equal(t, "public", d.Schema)
				assert.Equal(t, "rt_items", d.Table)
				assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`, d.CommitTimestamp)
				assert.Equal(t, "null", string(d.raw["errors"]))
			}
			assert.Equal(t, []Column{
				{"id", "int8"}, {"kind", "text"}, {"amount", "numeric"}, {"big", "int8"}, {"flag", "bool"},
				{"tags", "_text"}, {"nums", "_int4"}, {"meta", "jsonb"}, {"at", "timestamptz"}, {"data", "bytea"}, {"note", "text"},
			}, ins.Columns)
			assert.LessOrEqual(t, ins.CommitTimestamp, upd.CommitTimestamp)
			assert.LessOrEqual(t, upd.CommitTimestamp, del.CommitTimestamp)

			assert.JSONEq(t, `{"id":`+itoa(id)+`,"kind":"a","amount":null,"big":null,"flag":null,"tags":null,"nums":null,"meta":null,"at":null,"data":null,"note":null}`, compact(ins.Record))
			assert.NotContains(t, ins.raw, "old_record")
			assert.Equal(t, `"b"`, string(upd.Record["kind"]))
			assert.JSONEq(t, `{"id":`+itoa(id)+`}`, compact(upd.OldRecord), "default replica identity: key only")
			assert.NotContains(t, del.raw, "record")
			assert.JSONEq(t, `{"id":`+itoa(id)+`}`, compact(del.OldRecord))
			assert.Equal(t, ids, frameIDs(t, c.next2(t, env, id)))
		})
	}
}

// next2 writes one more row and returns its frame, proving nothing else was queued.
func (c *rawClient) next2(t *testing.T, env *cdcEnv, id int) frame {
	t.Helper()
	env.exec(t, `insert into public.rt_items (id) values ($1)`, id+100)
	f := c.next()
	assert.Equal(t, itoa(id+100), string(dataOf(t, f).Record["id"]))
	return f
}

func itoa(n int) string { return formatInt(int64(n)) }

func TestCDC_ReplicaIdentityFullAndValueTypes(t *testing.T) {
	env := newCDCEnv(t, itemsDDL+`alter table public.rt_items replica identity full;`, Options{})
	c := dialClient(t, env.ts, "2.0.0", pgtest.ServiceRoleKey())
	c.joinAndSubscribe("realtime:types", joinPayload("", itemsBinding))

	env.exec(t, `insert into public.rt_items (id, kind, amount, big, flag, tags, nums, meta, at, data, note)
		values (9007199254740993, 'k', 12.50, 9223372036854775807, true, array['a','b c',null], array[1,2],
		        '{"k": [1, 2], "s": "x"}', '2025-11-03 09:32:55.123+00', '\x0102030405', null)`)
	ins := dataOf(t, c.next())
	assert.Equal(t, "9007199254740993", string(ins.Record["id"]), "int8 keeps full precision")
	assert.Equal(t, "9223372036854775807", string(ins.Record["big"]))
	assert.Equal(t, "12.50", string(ins.Record["amount"]))
	assert.Equal(t, "true", string(ins.Record["flag"]))
	assert.JSONEq(t, `["a","b c",null]`, string(ins.Record["tags"]))
	assert.JSONEq(t, `[1,2]`, string(ins.Record["nums"]))
	assert.JSONEq(t, `{"k":[1,2],"s":"x"}`, string(ins.Record["meta"]))
	assert.Equal(t, `"2025-11-03T09:32:55.123+00:00"`, string(ins.Record["at"]))
	assert.Equal(t, `"0102030405"`, string(ins.Record["data"]))
	assert.Equal(t, "null", string(ins.Record["note"]))

	env.exec(t, `update public.rt_items set kind = 'l', flag = false where id = 9007199254740993`)
	upd := dataOf(t, c.next())
	assert.Equal(t, `"k"`, string(upd.OldRecord["kind"]), "FULL identity: whole old row")
	assert.Equal(t, "true", string(upd.OldRecord["flag"]))
	assert.Len(t, upd.OldRecord, 11)
	assert.Equal(t, `"l"`, string(upd.Record["kind"]))

	env.exec(t, `delete from public.rt_items where id = 9007199254740993`)
	del := dataOf(t, c.next())
	assert.Len(t, del.OldRecord, 11, "no RLS: the full old row")
	assert.Equal(t, `"l"`, string(del.OldRecord["kind"]))
}

func TestCDC_UnchangedToastIsOmitted(t *testing.T) {
	env := newCDCEnv(t, itemsDDL, Options{})
	c := dialClient(t, env.ts, "2.0.0", pgtest.ServiceRoleKey())
	c.joinAndSubscribe("realtime:toast", joinPayload("", itemsBinding))
	env.exec(t, `insert into public.rt_items (id, note) select 1, string_agg(md5(i::text), '') from generate_series(1, 1000) i`)
	ins := dataOf(t, c.next())
	assert.Len(t, ins.Record["note"], 32000+2)
	env.exec(t, `update public.rt_items set kind = 'z' where id = 1`)
	upd := dataOf(t, c.next())
	assert.NotContains(t, upd.Record, "note", "unchanged TOAST value is missing without REPLICA IDENTITY FULL")
	assert.Equal(t, `"z"`, string(upd.Record["kind"]))
}

func TestCDC_TransactionSharesCommitTimestamp(t *testing.T) {
	env := newCDCEnv(t, itemsDDL, Options{})
	c := dialClient(t, env.ts, "2.0.0", pgtest.ServiceRoleKey())
	c.joinAndSubscribe("realtime:tx", joinPayload("", itemsBinding))
	env.exec(t, `insert into public.rt_hidden (id, v) values (1, 'not published')`)
	env.exec(t, `begin; insert into public.rt_items (id) values (3); insert into public.rt_items (id) values (1);
		update public.rt_items set kind = 'x' where id = 3; insert into public.rt_hidden values (2, 'x'); commit`)
	env.exec(t, `truncate public.rt_items`)
	env.exec(t, `insert into public.rt_items (id) values (42)`)
	a, b, u := dataOf(t, c.next()), dataOf(t, c.next()), dataOf(t, c.next())
	assert.Equal(t, "3", string(a.Record["id"]))
	assert.Equal(t, "1", string(b.Record["id"]))
	assert.Equal(t, Update, u.Type)
	assert.Equal(t, a.CommitTimestamp, b.CommitTimestamp)
	assert.Equal(t, a.CommitTimestamp, u.CommitTimestamp)
	last := dataOf(t, c.next())
	assert.Equal(t, "42", string(last.Record["id"]), "unpublished tables and TRUNCATE produce nothing")
	assert.Equal(t, 4, env.cdc.Changes())
}

func TestCDC_FiltersOnRealRows(t *testing.T) {
	env := newCDCEnv(t, itemsDDL, Options{})
	c := dialClient(t, env.ts, "1.0.0", pgtest.ServiceRoleKey())
	_, ids := c.joinAndSubscribe("realtime:f", joinPayload("",
		map[string]any{"event": "INSERT", "schema": "public", "table": "rt_items", "filter": "kind=eq.keep"},
		map[string]any{"event": "*", "schema": "public", "table": "rt_items", "filter": "id=in.(5,6)"},
	))
	env.exec(t, `insert into public.rt_items (id, kind) values (1, 'drop'), (2, 'keep'), (5, 'drop')`)
	env.exec(t, `update public.rt_items set kind = 'keep' where id = 1`)
	env.exec(t, `delete from public.rt_items where id in (2, 5)`)
	f := c.next()
	assert.Equal(t, []int64{ids[0]}, frameIDs(t, f))
	assert.Equal(t, "2", string(dataOf(t, f).Record["id"]))
	f = c.next()
	assert.Equal(t, []int64{ids[1]}, frameIDs(t, f))
	assert.Equal(t, "5", string(dataOf(t, f).Record["id"]))
	f = c.next() // the UPDATE matches neither; the DELETE of 5 matches by key
	d := dataOf(t, f)
	assert.Equal(t, Delete, d.Type)
	assert.Equal(t, "5", string(d.OldRecord["id"]))
	assert.Equal(t, []int64{ids[1]}, frameIDs(t, f))
	c.expectNone(300 * time.Millisecond)
}

func TestCDC_SubscriptionValidation(t *testing.T) {
	env := newCDCEnv(t, itemsDDL, Options{})
	cases := []struct {
		binding map[string]any
		want    string
	}{
		{map[string]any{"event": "*", "schema": "public", "table": "rt_hidden"},
			"Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [event: *, schema: public, table: rt_hidden, filters: [], select: nil]"},
		{map[string]any{"event": "*", "schema": "public", "table": "rt_items", "filter": "nope=eq.1"},
			`Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: [event: *, schema: public, table: rt_items, filters: [{"nope", "eq", "1", false}], select: nil]. Exception: ERROR P0001 (raise_exception) invalid column for filter nope`},
		{map[string]any{"event": "INSERT", "schema": "public", "table": "rt_items", "filter": "id=eq.abc"},
			`Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: [event: INSERT, schema: public, table: rt_items, filters: [{"id", "eq", "abc", false}], select: nil]. Exception: ERROR 22P02 (invalid_text_representation) invalid input syntax for type bigint: "abc"`},
	}
	for _, tc := range cases {
		c := dialClient(t, env.ts, "2.0.0", pgtest.ServiceRoleKey())
		c.join("realtime:v", joinPayload("", tc.binding))
		assert.Equal(t, "ok", c.next().payloadMap(t)["status"])
		sys := c.next()
		p := sys.payloadMap(t)
		assert.Equal(t, "postgres_changes", p["extension"])
		assert.Equal(t, "error", p["status"])
		assert.Equal(t, tc.want, p["message"])
	}
	// A wildcard schema subscription covers the published tables.
	c := dialClient(t, env.ts, "2.0.0", pgtest.ServiceRoleKey())
	c.joinAndSubscribe("realtime:all", joinPayload("", map[string]any{"event": "*", "schema": "*"}))
	env.exec(t, `insert into public.rt_items (id) values (7)`)
	assert.Equal(t, "7", string(dataOf(t, c.next()).Record["id"]))
}

const privateDDL = `
create table public.rt_private (
  id    bigint primary key,
  owner uuid not null,
  body  text
);
alter table public.rt_private replica identity full;
alter table public.rt_private enable row level security;
create policy rt_private_select on public.rt_private for select using (owner = auth.uid());
alter publication supabase_realtime add table public.rt_private;
`

func TestCDC_RowLevelSecurity(t *testing.T) {
	env := newCDCEnv(t, privateDDL, Options{})
	const userA = "11111111-1111-1111-1111-111111111111"
	const userB = "22222222-2222-2222-2222-222222222222"
	binding := map[string]any{"event": "*", "schema": "public", "table": "rt_private"}

	a := dialClient(t, env.ts, "2.0.0", pgtest.AnonKey())
	a.joinAndSubscribe("realtime:mine", joinPayload(pgtest.UserToken(userA, time.Hour), binding))
	svc := dialClient(t, env.ts, "2.0.0", pgtest.ServiceRoleKey())
	svc.joinAndSubscribe("realtime:all", joinPayload("", binding))
	anon := dialClient(t, env.ts, "2.0.0", pgtest.AnonKey())
	anon.joinAndSubscribe("realtime:anon", joinPayload("", binding))

	env.exec(t, `insert into public.rt_private values (1, $1, 'b secret')`, userB)
	env.exec(t, `insert into public.rt_private values (2, $1, 'a own')`, userA)
	env.exec(t, `update public.rt_private set body = 'b changed' where id = 1`)
	env.exec(t, `delete from public.rt_private where id = 1`)

	// The user sees only their own row, then the DELETE reduced to the key.
	d := dataOf(t, a.next())
	assert.Equal(t, Insert, d.Type)
	assert.Equal(t, "2", string(d.Record["id"]))
	assert.Equal(t, `"a own"`, string(d.Record["body"]))
	d = dataOf(t, a.next())
	assert.Equal(t, Delete, d.Type)
	assert.JSONEq(t, `{"id":1}`, compact(d.OldRecord), "RLS-enabled DELETE carries only the primary key")

	// service_role bypasses RLS and sees everything.
	var types []string
	for range 4 {
		types = append(types, dataOf(t, svc.next()).Type)
	}
	assert.Equal(t, []string{Insert, Insert, Update, Delete}, types)

	// anon sees no row (auth.uid() is null) but still every DELETE.
	d = dataOf(t, anon.next())
	assert.Equal(t, Delete, d.Type)
	anon.expectNone(200 * time.Millisecond)
}

func TestCDC_ColumnPrivilegesAndUnauthorizedKey(t *testing.T) {
	env := newCDCEnv(t, `
		create table public.rt_cols (id bigint primary key, pub text, secret text);
		revoke all on public.rt_cols from anon;
		grant select (pub, secret) on public.rt_cols to anon;
		revoke select on public.rt_cols from authenticated;
		grant select (id, pub) on public.rt_cols to authenticated;
		alter publication supabase_realtime add table public.rt_cols;`, Options{})
	binding := map[string]any{"event": "*", "schema": "public", "table": "rt_cols"}
	user := dialClient(t, env.ts, "2.0.0", pgtest.AnonKey())
	user.joinAndSubscribe("realtime:u", joinPayload(pgtest.UserToken("33333333-3333-3333-3333-333333333333", time.Hour), binding))
	anon := dialClient(t, env.ts, "2.0.0", pgtest.AnonKey())
	anon.joinAndSubscribe("realtime:a", joinPayload("", binding))

	env.exec(t, `insert into public.rt_cols values (1, 'p', 's')`)
	d := dataOf(t, user.next())
	assert.JSONEq(t, `{"id":1,"pub":"p"}`, compact(d.Record), "columns the role cannot select are left out")
	assert.Equal(t, []Column{{"id", "int8"}, {"pub", "text"}}, d.Columns)

	d = dataOf(t, anon.next())
	assert.Equal(t, []string{ErrorUnauthorized}, d.Errors, "no SELECT on the primary key")
	assert.Empty(t, d.Record)
	assert.Empty(t, d.Columns)
	assert.Equal(t, "null", string(d.raw["commit_timestamp"]))
}

func TestCDC_SlotAdvances(t *testing.T) {
	env := newCDCEnv(t, itemsDDL, Options{})
	ctx := context.Background()
	env.exec(t, `insert into public.rt_items (id) values (1)`)
	var target string
	require.NoError(t, env.db.Pool.QueryRow(ctx, `select pg_current_wal_lsn()::text`).Scan(&target))
	want, err := pglogrepl.ParseLSN(target)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var flushed *string
		err := env.db.Pool.QueryRow(ctx, `select confirmed_flush_lsn::text from pg_replication_slots
			where slot_name like 'realtimetest_%' and database = current_database()`).Scan(&flushed)
		if err != nil || flushed == nil {
			return false
		}
		got, err := pglogrepl.ParseLSN(*flushed)
		return err == nil && got >= want
	}, waitTimeout, 50*time.Millisecond)

	var temporary bool
	require.NoError(t, env.db.Pool.QueryRow(ctx, `select temporary from pg_replication_slots
		where slot_name like 'realtimetest_%' and database = current_database()`).Scan(&temporary))
	assert.True(t, temporary)
}

func TestCDC_StartErrors(t *testing.T) {
	db := pgtest.Shared(t).NewDatabase(t)
	ts := newTestServer(t, Options{})
	_, err := StartCDC(context.Background(), db.URL, ts.Server, CDCOptions{Publication: "nope"})
	assert.ErrorContains(t, err, `publication "nope" does not exist`)
	_, err = StartCDC(context.Background(), db.URL, nil, CDCOptions{})
	assert.Error(t, err)
}

func TestCDC_RestartsAfterStreamFailure(t *testing.T) {
	db := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, itemsDDL)
	require.NoError(t, err)
	ts := newTestServer(t, Options{})
	cdc, err := StartCDC(ctx, db.URL, ts.Server, CDCOptions{RetryInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cdc.Close()) })
	c := dialClient(t, ts, "2.0.0", pgtest.ServiceRoleKey())
	c.joinAndSubscribe("realtime:r", joinPayload("", itemsBinding))

	_, err = db.Pool.Exec(ctx, `select pg_terminate_backend(pid) from pg_stat_activity
		where backend_type = 'walsender' and datname = current_database()`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return cdc.Restarts() >= 1 && cdc.Err() != nil }, waitTimeout, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		var n int
		err := db.Pool.QueryRow(ctx, `select count(*) from pg_replication_slots
			where database = current_database() and active`).Scan(&n)
		return err == nil && n == 1
	}, waitTimeout, 20*time.Millisecond)

	// Once the new slot streams, changes flow again (earlier ones may be lost).
	_, err = db.Pool.Exec(ctx, `insert into public.rt_items (id) values (1)`)
	require.NoError(t, err)
	assert.Equal(t, "1", string(dataOf(t, c.next()).Record["id"]))
}
