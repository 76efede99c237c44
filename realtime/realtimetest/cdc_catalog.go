package realtimetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// catalogCache answers catalog questions for the decoder: type names and
// primary keys. Safe for concurrent use.
type catalogCache struct {
	pool *pgxpool.Pool

	mu     sync.Mutex // guards types, bypass, rls and cols
	types  map[uint32]*typeInfo
	bypass map[string]bool
	rls    map[uint32]rlsState
	cols   map[colsKey]colsState
}

// colsKey and colsState cache the columns a role may select from a table.
type colsKey struct {
	relID uint32
	role  string
}

type colsState struct {
	cols map[string]bool // shared, read-only
	at   time.Time
}

// rlsState is whether a table had row level security when last read.
type rlsState struct {
	on bool
	at time.Time
}

// catalogTTL is how long a table's row-level-security setting and a role's
// column privileges are trusted: a burst of changes to one table costs one
// catalog read, and a change of either takes effect within it (Realtime
// reads them once per poll batch).
const catalogTTL = time.Second

func newCatalogCache(pool *pgxpool.Pool) *catalogCache {
	return &catalogCache{pool: pool, types: make(map[uint32]*typeInfo), bypass: make(map[string]bool),
		rls: make(map[uint32]rlsState), cols: make(map[colsKey]colsState)}
}

// columnPrivileges returns the columns of relID that role may select (as
// read within the last catalogTTL: a burst of changes costs one catalog read
// per table and role). The map is shared: callers must not change it.
func (m *catalogCache) columnPrivileges(ctx context.Context, relID uint32, role string) (map[string]bool, error) {
	now := time.Now()
	k := colsKey{relID, role}
	m.mu.Lock()
	st, ok := m.cols[k]
	m.mu.Unlock()
	if ok && now.Sub(st.at) < catalogTTL {
		return st.cols, nil
	}
	rows, err := m.pool.Query(ctx, `
		select attname::text, has_column_privilege($2, attrelid, attnum, 'SELECT')
		from pg_attribute
		where attrelid = $1 and attnum > 0 and not attisdropped`, relID, role)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := make(map[string]bool)
	for rows.Next() {
		var name string
		var ok bool
		if err := rows.Scan(&name, &ok); err != nil {
			return nil, err
		}
		if ok {
			cols[name] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.cols[k] = colsState{cols: cols, at: now}
	m.mu.Unlock()
	return cols, nil
}

// bypassesRLS reports whether role is a superuser or has BYPASSRLS, cached.
func (m *catalogCache) bypassesRLS(ctx context.Context, role string) (bool, error) {
	m.mu.Lock()
	b, ok := m.bypass[role]
	m.mu.Unlock()
	if ok {
		return b, nil
	}
	err := m.pool.QueryRow(ctx, `select coalesce((select rolsuper or rolbypassrls from pg_roles where rolname = $1), false)`, role).Scan(&b)
	if err != nil {
		return false, fmt.Errorf("attributes of role %q: %w", role, err)
	}
	m.mu.Lock()
	m.bypass[role] = b
	m.mu.Unlock()
	return b, nil
}

// typeInfo returns the pg_type facts for oid, cached.
func (m *catalogCache) typeInfo(ctx context.Context, oid uint32) (*typeInfo, error) {
	m.mu.Lock()
	t, ok := m.types[oid]
	m.mu.Unlock()
	if ok {
		return t, nil
	}
	var (
		name     string
		elem     uint32
		category string
	)
	err := m.pool.QueryRow(ctx, `select typname::text, typelem, typcategory::text from pg_type where oid = $1`, oid).
		Scan(&name, &elem, &category)
	if err != nil {
		return nil, fmt.Errorf("look up type %d: %w", oid, err)
	}
	t = &typeInfo{OID: oid, Name: name}
	if category != "" {
		t.Category = category[0]
	}
	if elem != 0 && t.Category == 'A' {
		if t.Elem, err = m.typeInfo(ctx, elem); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	m.types[oid] = t
	m.mu.Unlock()
	return t, nil
}

// relation builds the relation for a pgoutput Relation message.
func (m *catalogCache) relation(ctx context.Context, msg *pglogrepl.RelationMessage) (*relation, error) {
	rel := &relation{id: msg.RelationID, schema: msg.Namespace, table: msg.RelationName, pkTypes: make(map[string]string)}
	for _, col := range msg.Columns {
		t, err := m.typeInfo(ctx, col.DataType)
		if err != nil {
			return nil, fmt.Errorf("relation %s.%s column %s: %w", msg.Namespace, msg.RelationName, col.Name, err)
		}
		rel.columns = append(rel.columns, relColumn{name: col.Name, typ: t, key: col.Flags&1 != 0})
	}
	rows, err := m.pool.Query(ctx, `
		select a.attname::text, format_type(a.atttypid, null)
		from pg_index i
		join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
		where i.indrelid = $1 and i.indisprimary
		order by array_position(i.indkey::int2[], a.attnum)`, msg.RelationID)
	if err != nil {
		return nil, fmt.Errorf("primary key of %s.%s: %w", msg.Namespace, msg.RelationName, err)
	}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return nil, fmt.Errorf("primary key of %s.%s: %w", msg.Namespace, msg.RelationName, err)
		}
		rel.pk = append(rel.pk, name)
		rel.pkTypes[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("primary key of %s.%s: %w", msg.Namespace, msg.RelationName, err)
	}
	rel.prepare()
	return rel, nil
}

// rlsEnabled reports whether row level security is enabled on the table
// (as read within the last catalogTTL).
func (m *catalogCache) rlsEnabled(ctx context.Context, relID uint32) (bool, error) {
	now := time.Now()
	m.mu.Lock()
	st, ok := m.rls[relID]
	m.mu.Unlock()
	if ok && now.Sub(st.at) < catalogTTL {
		return st.on, nil
	}
	var on bool
	if err := m.pool.QueryRow(ctx, `select relrowsecurity from pg_class where oid = $1`, relID).Scan(&on); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil // dropped meanwhile
		}
		return false, fmt.Errorf("row level security of relation %d: %w", relID, err)
	}
	m.mu.Lock()
	m.rls[relID] = rlsState{on: on, at: now}
	m.mu.Unlock()
	return on, nil
}

// authorize implements backend: column privileges, the primary-key checks
// and, for INSERT/UPDATE on tables with row level security, whether the row
// is visible to the subscriber's role and claims (like realtime.apply_rls:
// `exists(select 1 from table where pk = ...)` under the role).
func (c *CDC) authorize(ctx context.Context, ch *Change, claims tokenClaims) access {
	src := ch.src
	// Built only when there is something to log: this runs for every change.
	log := func() *zap.Logger {
		return c.log.With(zap.String("table", ch.Schema+"."+ch.Table), zap.String("role", claims.Role))
	}
	cols, err := c.meta.columnPrivileges(ctx, src.relID, claims.Role)
	if err != nil {
		log().Debug("column privileges", zap.Error(err))
		return access{}
	}

	if ch.Type != Delete {
		if len(ch.PrimaryKey) == 0 {
			return access{Error: ErrorNoPrimaryKey}
		}
		for _, k := range ch.PrimaryKey {
			if !cols[k] {
				return access{Error: ErrorUnauthorized}
			}
		}
	}
	acc := access{Visible: true, Columns: cols}
	if !ch.RLSEnabled || ch.Type == Delete {
		return acc
	}
	// Roles that bypass RLS see every change, even of rows that are gone by
	// the time the change is delivered.
	if bypass, err := c.meta.bypassesRLS(ctx, claims.Role); err != nil {
		log().Debug("role attributes", zap.Error(err))
	} else if bypass {
		return acc
	}
	visible, err := c.rowVisible(ctx, ch, claims)
	if err != nil {
		log().Debug("row visibility check", zap.Error(err))
		visible = false
	}
	acc.Visible = visible
	return acc
}

// rowVisible runs the visibility probe in a rolled-back transaction with
// the subscriber's role and request.jwt.claims.
func (c *CDC) rowVisible(ctx context.Context, ch *Change, claims tokenClaims) (bool, error) {
	var where []string
	args := []any{}
	for _, k := range ch.PrimaryKey {
		v, ok := ch.src.keyText(k)
		if !ok {
			return false, fmt.Errorf("primary key column %q has no value", k)
		}
		args = append(args, v)
		where = append(where, fmt.Sprintf("%s = $%d::text::%s", pgx.Identifier{k}.Sanitize(), len(args), ch.src.keyTypes[k]))
	}
	query := fmt.Sprintf("select exists(select 1 from %s where %s)",
		pgx.Identifier{ch.Schema, ch.Table}.Sanitize(), strings.Join(where, " and "))

	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`,
		claims.Role, string(claims.Raw)); err != nil {
		return false, err
	}
	var visible bool
	if err := tx.QueryRow(ctx, query, args...).Scan(&visible); err != nil {
		return false, err
	}
	return visible, nil
}

// validateSubscription implements backend: the checks Realtime's
// subscription insert and its subscription_check_filters trigger make.
func (c *CDC) validateSubscription(ctx context.Context, b binding, claims tokenClaims) string {
	rows, err := c.pool.Query(ctx, `
		select format('%I.%I', schemaname, tablename)::regclass::oid
		from pg_publication_tables
		where pubname = $1
		  and schemaname like (case $2 when '*' then '%' else $2 end) escape ''
		  and tablename like (case $3 when '*' then '%' else $3 end) escape ''`,
		c.opts.Publication, b.Schema, b.Table)
	if err != nil {
		return inspectError(err)
	}
	relIDs, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
	if err != nil {
		return inspectError(err)
	}
	if len(relIDs) == 0 {
		return "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [" + b.logParams() + "]"
	}
	for _, relID := range relIDs {
		if err := c.checkFilters(ctx, relID, b, claims.Role); err != nil {
			return "Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: [" +
				b.logParams() + "]. Exception: " + postgrexMessage(err)
		}
	}
	return ""
}

// checkFilters mirrors realtime.subscription_check_filters for one table.
func (c *CDC) checkFilters(ctx context.Context, relID uint32, b binding, role string) error {
	if len(b.Filters) == 0 && len(b.Select) == 0 {
		return nil
	}
	rows, err := c.pool.Query(ctx, `
		select attname::text, atttypid::regtype::text
		from pg_attribute
		where attrelid = $1 and attnum > 0 and not attisdropped
		  and has_column_privilege($2, attrelid, attnum, 'SELECT')`, relID, role)
	if err != nil {
		return err
	}
	types := make(map[string]string)
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return err
		}
		types[name] = typ
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, f := range b.Filters {
		typ, ok := types[f.Column]
		if !ok {
			return raised("invalid column for filter " + f.Column)
		}
		if f.Op == "in" {
			var n int
			if err := c.pool.QueryRow(ctx, fmt.Sprintf(`select coalesce(jsonb_array_length(to_jsonb($1::text::%s[])), 0)`, typ), f.Value).Scan(&n); err != nil {
				return err
			}
			if n > 100 {
				return raised("too many values for `in` filter. Maximum 100")
			}
			continue
		}
		if _, err := c.pool.Exec(ctx, fmt.Sprintf(`select to_jsonb($1::text::%s)`, typ), f.Value); err != nil {
			return err
		}
	}
	for _, col := range b.Select {
		if _, ok := types[col]; !ok {
			return raised("invalid column for select " + col)
		}
	}
	return nil
}

// raised is an exception raised by a Realtime trigger (RAISE EXCEPTION).
func raised(msg string) error {
	return &pgconn.PgError{Severity: "ERROR", Code: "P0001", Message: msg}
}

// conditionNames maps the SQLSTATEs the checks can produce to the
// condition names Postgrex prints.
var conditionNames = map[string]string{
	"P0001": "raise_exception",
	"22P02": "invalid_text_representation",
	"22003": "numeric_value_out_of_range",
	"22007": "invalid_datetime_format",
	"22008": "datetime_field_overflow",
	"22023": "invalid_parameter_value",
	"42704": "undefined_object",
	"42703": "undefined_column",
	"42P01": "undefined_table",
	"42501": "insufficient_privilege",
}

// postgrexMessage renders a database error like Postgrex.Error's message:
// "ERROR 22P02 (invalid_text_representation) invalid input syntax ...".
func postgrexMessage(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err.Error()
	}
	name := conditionNames[pgErr.Code]
	if name == "" {
		name = strings.ToLower(pgErr.Code)
	}
	return fmt.Sprintf("%s %s (%s) %s", pgErr.Severity, pgErr.Code, name, pgErr.Message)
}

// inspectError renders an unexpected error the way the channel reports
// other subscription failures (inspect of an error tuple).
func inspectError(err error) string {
	return "{:error, " + inspectString(err.Error()) + "}"
}
