package realtimetest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

const typesDDL = `
do $$ begin execute format('alter database %I set timezone = %L', current_database(), 'Asia/Kolkata'); end $$;
create table public.rt_types (
  id   bigint primary key,
  t    text,
  n    numeric,
  f    float8,
  b    bool,
  j    json,
  jb   jsonb,
  ts   timestamptz,
  tsl  timestamp,
  u    uuid,
  by   bytea,
  d    date,
  iv   interval,
  ta   text[],
  ia   int4[],
  jba  jsonb[],
  tza  timestamptz[],
  big  text
);
alter publication supabase_realtime add table public.rt_types;
`

// TestCDC_FramesMatchReferenceOnRealWAL streams real pgoutput changes of
// many column types through the server and, from a second slot, through the
// reference decoder and encoder, and requires byte-identical frames.
func TestCDC_FramesMatchReferenceOnRealWAL(t *testing.T) {
	env := newCDCEnv(t, typesDDL, Options{})
	want := startReferenceStream(t, env)
	binding := map[string]any{"event": "*", "schema": "public", "table": "rt_types"}
	clients := map[string]*rawClient{}
	ids := map[string][]int64{}
	for _, vsn := range vsns {
		c := dialClient(t, env.ts, vsn, pgtest.ServiceRoleKey())
		_, ids[vsn] = c.joinAndSubscribe("realtime:types<&>", joinPayload("", binding))
		clients[vsn] = c
	}

	statements := []string{
		`insert into public.rt_types values (1, 'plain <b>&amp;</b> é ✓ ` + "\u2028" + ` "q" \ tab	end', 12.50, 'NaN', true,
			'{"b" : 1, "a": [1, 2], "h": "<x>"}', '{"k": [1, 2], "s": "x & y"}', '2025-11-03 09:32:55.123456+00',
			'2024-02-29 23:59:59.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x0102ff', '2025-11-03', '1 day 02:03:04',
			array['a', 'b c', null, '<q>', 'x"y'], array[[1, 2], [3, 4]], array['{"a": 1}'::jsonb, null],
			array['2025-11-03 09:32:55+00'::timestamptz, null], 'small')`,
		`insert into public.rt_types (id) values (2)`,
		`insert into public.rt_types (id, f, ts) values (3, '-Infinity', '0001-01-01 00:00:00+00')`,
		`update public.rt_types set big = (select string_agg(md5(i::text), '') from generate_series(1, 1000) i) where id = 1`,
		`update public.rt_types set t = 'changed' where id = 1`,
		`update public.rt_types set id = 4 where id = 3`,
		`alter table public.rt_types replica identity full`,
		`update public.rt_types set b = false where id = 1`,
		`update public.rt_types set n = 1e20 where id = 2`,
		`delete from public.rt_types where id = 4`,
		`alter table public.rt_types replica identity default`,
		`delete from public.rt_types where id = 2`,
		`begin; insert into public.rt_types (id, t) values (10, 'a'); update public.rt_types set t = 'b' where id = 10; delete from public.rt_types where id = 10; commit`,
	}
	for _, sql := range statements {
		env.exec(t, sql)
	}
	const changes = 13
	for i := range changes {
		var exp referenceChange
		select {
		case exp = <-want:
		case <-time.After(waitTimeout):
			t.Fatalf("reference stream: no change %d within %s", i, waitTimeout)
		}
		for _, vsn := range vsns {
			got := clients[vsn].next()
			expected := refFrame(vsn, "realtime:types<&>", true, ids[vsn], exp.prepared, fullAccess, nil)
			require.Equal(t, expected, got.Raw, "change %d (%s), vsn %s", i, exp.prepared.Type, vsn)
		}
	}
	for _, c := range clients {
		c.expectNone(200 * time.Millisecond)
	}
}

// referenceChange is a change decoded and prepared by the reference path.
type referenceChange struct {
	prepared *refPrepared
}

// startReferenceStream opens a second temporary slot on the publication and
// decodes its changes with the reference path, in commit order.
func startReferenceStream(t *testing.T, env *cdcEnv) <-chan referenceChange {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg, err := pgconn.ParseConfig(env.db.URL)
	require.NoError(t, err)
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	slot := randomSlotName()
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	require.NoError(t, err)
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	require.NoError(t, err)
	require.NoError(t, pglogrepl.StartReplication(ctx, conn, slot, lsn, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + DefaultPublication + "'"}}))

	out := make(chan referenceChange, 64)
	done := make(chan struct{})
	meta := newCatalogCache(env.db.Pool)
	go func() {
		defer close(done)
		relations := map[uint32]*relation{}
		var commit time.Time
		for {
			raw, err := conn.ReceiveMessage(ctx)
			if err != nil {
				return
			}
			cd, ok := raw.(*pgproto3.CopyData)
			if !ok || len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
				continue
			}
			xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				return
			}
			msg, err := pglogrepl.Parse(xld.WALData)
			if err != nil {
				return
			}
			var relID uint32
			switch m := msg.(type) {
			case *pglogrepl.RelationMessage:
				rel, err := meta.relation(ctx, m)
				if err != nil {
					return
				}
				relations[m.RelationID] = rel
				continue
			case *pglogrepl.BeginMessage:
				commit = m.CommitTime
				continue
			case *pglogrepl.InsertMessage:
				relID = m.RelationID
			case *pglogrepl.UpdateMessage:
				relID = m.RelationID
			case *pglogrepl.DeleteMessage:
				relID = m.RelationID
			default:
				continue
			}
			c, _ := refWALChange(relations[relID], msg, commit, false)
			p, err := refPrepare(c, DefaultMaxRecordBytes, false)
			if err != nil {
				return
			}
			select {
			case out <- referenceChange{prepared: p}:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = conn.Close(context.Background())
		// The temporary slot goes with its walsender, shortly after.
		require.Eventually(t, func() bool {
			var n int
			err := env.db.Pool.QueryRow(context.Background(), `select count(*) from pg_replication_slots where slot_name = $1`, slot).Scan(&n)
			return err == nil && n == 0
		}, waitTimeout, 20*time.Millisecond)
	})
	return out
}
