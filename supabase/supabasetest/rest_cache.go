package supabasetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// This file is the stand-in's schema cache: the tables and functions
// requests name, read from the catalog once and kept for a short time
// instead of being read on every request.
//
// PostgREST keeps its schema cache until it is told to reload it (NOTIFY
// pgrst, 'reload schema'), and Supabase sends that notification on every
// DDL statement through event triggers, so on Supabase a schema change is
// visible at once. The stand-in gets there without the notification:
//
//   - what the catalog lacks is never cached: a table or function that is
//     not found is looked up again by the next request;
//   - a request that fails in a way a changed schema can explain (unknown
//     column or function, type mismatch, ...) after using cached entries
//     reads them again and, if they changed, is served once more;
//   - entries expire after RESTOptions.SchemaCacheTTL;
//   - REST.ReloadSchema drops everything, and REST.ListenSchemaReloads
//     does that on NOTIFY pgrst like PostgREST.

// defaultSchemaCacheTTL bounds how long a cached entry is used.
const defaultSchemaCacheTTL = time.Second

// cacheKey names a table or function.
type cacheKey struct{ schema, name string }

// cachedTable is a table and when it was read.
type cachedTable struct {
	tbl    *table
	loaded time.Time
}

// cachedRoutines are the overloads of a function and when they were read.
type cachedRoutines struct {
	fns    []*routine
	loaded time.Time
}

// schemaCache caches catalog lookups. It is safe for concurrent use.
type schemaCache struct {
	pool *pgxpool.Pool
	ttl  time.Duration // <= 0: nothing is cached
	now  func() time.Time

	mu             sync.Mutex
	gen            uint64 // bumped by reset: loads begun before are not stored
	tableEntries   map[cacheKey]cachedTable
	routineEntries map[cacheKey]cachedRoutines
}

func newSchemaCache(pool *pgxpool.Pool, ttl time.Duration) *schemaCache {
	return &schemaCache{
		pool:           pool,
		ttl:            ttl,
		now:            time.Now,
		tableEntries:   map[cacheKey]cachedTable{},
		routineEntries: map[cacheKey]cachedRoutines{},
	}
}

// reset drops every entry.
func (c *schemaCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.tableEntries)
	clear(c.routineEntries)
}

// valid reports whether an entry loaded at t may still be used.
func (c *schemaCache) valid(t time.Time) bool {
	return c.ttl > 0 && c.now().Sub(t) < c.ttl
}

// table returns schema.name (nil when there is no such relation), from the
// cache unless fresh is set; cached reports that it came from the cache.
func (c *schemaCache) table(ctx context.Context, schema, name string, fresh bool) (tbl *table, cached bool, err error) {
	key := cacheKey{schema, name}
	c.mu.Lock()
	e, ok := c.tableEntries[key]
	gen := c.gen
	c.mu.Unlock()
	if ok && !fresh && c.valid(e.loaded) {
		return e.tbl, true, nil
	}
	loaded := c.now()
	tbl, err = loadTableQualified(ctx, c.pool, schema, name)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		if tbl == nil || c.ttl <= 0 {
			delete(c.tableEntries, key)
		} else {
			c.tableEntries[key] = cachedTable{tbl: tbl, loaded: loaded}
		}
	}
	return tbl, false, nil
}

// routines returns the overloads of schema.name, from the cache unless
// fresh is set; cached reports that they came from the cache.
func (c *schemaCache) routines(ctx context.Context, schema, name string, fresh bool) (fns []*routine, cached bool, err error) {
	key := cacheKey{schema, name}
	c.mu.Lock()
	e, ok := c.routineEntries[key]
	gen := c.gen
	c.mu.Unlock()
	if ok && !fresh && c.valid(e.loaded) {
		return e.fns, true, nil
	}
	loaded := c.now()
	fns, err = loadRoutines(ctx, c.pool, schema, name)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		if len(fns) == 0 || c.ttl <= 0 {
			delete(c.routineEntries, key)
		} else {
			c.routineEntries[key] = cachedRoutines{fns: fns, loaded: loaded}
		}
	}
	return fns, false, nil
}

// tableChanged reads schema.name again (updating the cache) and reports
// whether it differs from old.
func (c *schemaCache) tableChanged(ctx context.Context, schema, name string, old *table) (bool, error) {
	tbl, _, err := c.table(ctx, schema, name, true)
	if err != nil {
		return false, err
	}
	return tbl == nil || tbl.fp != old.fp, nil
}

// routinesChanged reads the overloads of schema.name again (updating the
// cache) and reports whether they differ from the cached ones used before.
func (c *schemaCache) routinesChanged(ctx context.Context, schema, name string, old []*routine) (bool, error) {
	fns, _, err := c.routines(ctx, schema, name, true)
	if err != nil {
		return false, err
	}
	return routinesFingerprint(fns) != routinesFingerprint(old), nil
}

// loadTableQualified reads a table with every name in its column types and
// defaults schema-qualified (search_path is pg_catalog alone while the
// catalog is read), so the SQL built from it means the same whatever the
// search_path it is parsed with.
func loadTableQualified(ctx context.Context, pool *pgxpool.Pool, schema, name string) (*table, error) {
	var tbl *table
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select set_config('search_path', 'pg_catalog', true)`); err != nil {
			return fmt.Errorf("load table %s.%s: %w", schema, name, err)
		}
		var err error
		tbl, err = loadTable(ctx, tx, schema, name)
		return err
	})
	return tbl, err
}

// staleCatalogError reports whether code is an error a schema changed
// since it was cached can explain: the stand-in's own (unknown column or
// function, ambiguous overloads, PUT filters against the primary key),
// PostgreSQL's undefined or mismatched objects (class 42, but for missing
// privileges), values converted to a column's or argument's old type
// (class 22), writes in a read-only transaction (a function's volatility
// changed), NOT NULL violations (a column default changed) and plans whose
// result type changed.
func staleCatalogError(code string) bool {
	switch code {
	case "PGRST105", "PGRST202", "PGRST203", "PGRST204", "25006", "23502", "0A000":
		return true
	case "42501":
		return false
	}
	return strings.HasPrefix(code, "42") || strings.HasPrefix(code, "22")
}
