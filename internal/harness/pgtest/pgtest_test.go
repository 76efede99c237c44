package pgtest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

func TestNewDatabaseIsSupabaseShaped(t *testing.T) {
	db := Shared(t).NewDatabase(t)
	ctx := context.Background()

	var bypass bool
	require.NoError(t, db.Pool.QueryRow(ctx, `select rolbypassrls from pg_roles where rolname = 'service_role'`).Scan(&bypass))
	require.True(t, bypass, "service_role must bypass RLS")

	var walLevel string
	require.NoError(t, db.Pool.QueryRow(ctx, `show wal_level`).Scan(&walLevel))
	require.Equal(t, "logical", walLevel)

	var pubs int
	require.NoError(t, db.Pool.QueryRow(ctx, `select count(*) from pg_publication where pubname = 'supabase_realtime'`).Scan(&pubs))
	require.Equal(t, 1, pubs)

	// auth.uid() reads the claims a request puts into the transaction.
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `select set_config('request.jwt.claims', '{"sub":"7d0c6a9e-3a4b-4a8e-9a51-2a3f1f0e7c11","role":"authenticated"}', true)`)
	require.NoError(t, err)
	var uid, role string
	require.NoError(t, tx.QueryRow(ctx, `select auth.uid()::text, auth.role()`).Scan(&uid, &role))
	require.Equal(t, "7d0c6a9e-3a4b-4a8e-9a51-2a3f1f0e7c11", uid)
	require.Equal(t, "authenticated", role)
}

func TestRLSHidesOtherOwnersRuns(t *testing.T) {
	db := Shared(t).NewDatabase(t)
	ctx := context.Background()
	owner := "11111111-1111-1111-1111-111111111111"
	other := "22222222-2222-2222-2222-222222222222"
	_, err := db.Pool.Exec(ctx, `
		insert into projects (id, owner, name) values
		  ('aaaaaaaa-0000-0000-0000-000000000001', $1, 'mine'),
		  ('aaaaaaaa-0000-0000-0000-000000000002', $2, 'theirs');
		`, owner, other)
	require.NoError(t, err)

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `set local role authenticated`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `select set_config('request.jwt.claims', json_build_object('sub', $1::text, 'role', 'authenticated')::text, true)`, owner)
	require.NoError(t, err)
	var names []string
	rows, err := tx.Query(ctx, `select name from projects order by name`)
	require.NoError(t, err)
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"mine"}, names)
}

func TestClonesAreIndependent(t *testing.T) {
	c := Shared(t)
	a, b := c.NewDatabase(t), c.NewDatabase(t)
	ctx := context.Background()
	_, err := a.Pool.Exec(ctx, `insert into projects (owner, name) values (gen_random_uuid(), 'only-in-a')`)
	require.NoError(t, err)
	var n int
	require.NoError(t, b.Pool.QueryRow(ctx, `select count(*) from projects`).Scan(&n))
	require.Zero(t, n)
}
