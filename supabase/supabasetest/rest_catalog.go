package supabasetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// This file reads what PostgREST keeps in its schema cache from the catalog
// (rest_cache.go decides when).

// column is one attribute of a table or view.
type column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`    // format_type(atttypid, atttypmod), schema-qualified when loaded by loadTableQualified
	BaseType string `json:"base"`    // type name with domains resolved (jsonb, tsvector, ...)
	Default  string `json:"default"` // pg_get_expr of the default, "" when none
	HasDef   bool   `json:"has_default"`
}

// table is a table, view, materialized view or foreign table of an exposed schema.
type table struct {
	Schema  string
	Name    string
	Columns []column
	PK      []string
	byName  map[string]*column
	fp      string // fingerprint: the catalog row it was built from
}

func (t *table) column(name string) *column {
	if t == nil {
		return nil
	}
	return t.byName[name]
}

// queryer is the part of pgx.Tx the catalog needs.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const tableQuery = `
select json_build_object(
  'columns', coalesce((
    select json_agg(json_build_object(
      'name', a.attname,
      'type', format_type(a.atttypid, a.atttypmod),
      'base', coalesce(bt.typname, t.typname),
      'default', case
        when a.attidentity <> '' then
          format('nextval(%L::regclass)', pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname))
        when a.attgenerated = '' then coalesce(pg_get_expr(d.adbin, d.adrelid), '')
        else '' end,
      'has_default', a.attidentity <> '' or (a.attgenerated = '' and d.adbin is not null)) order by a.attnum)
    from pg_attribute a
    join pg_type t on t.oid = a.atttypid
    left join pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
    left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]'),
  'pk', coalesce((
    select json_agg(a.attname order by k.ord)
    from pg_constraint con
    cross join lateral unnest(con.conkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
    where con.conrelid = c.oid and con.contype = 'p'), '[]'))::text
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'v', 'm', 'f', 'p')`

// loadTable returns the table, or nil when the schema has no such relation.
func loadTable(ctx context.Context, q queryer, schema, name string) (*table, error) {
	var raw string
	err := q.QueryRow(ctx, tableQuery, schema, name).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load table %s.%s: %w", schema, name, err)
	}
	var meta struct {
		Columns []column `json:"columns"`
		PK      []string `json:"pk"`
	}
	if err := json.Unmarshal([]byte(raw), &meta); err != nil {
		return nil, fmt.Errorf("decode table %s.%s: %w", schema, name, err)
	}
	t := &table{Schema: schema, Name: name, Columns: meta.Columns, PK: meta.PK, byName: map[string]*column{}, fp: raw}
	for i := range t.Columns {
		t.byName[t.Columns[i].Name] = &t.Columns[i]
	}
	return t, nil
}

// tableNames lists the relations of a schema (for "Perhaps you meant" hints).
func tableNames(ctx context.Context, q queryer, schema string) ([]string, error) {
	return stringList(ctx, q, `
select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = $1 and c.relkind in ('r', 'v', 'm', 'f', 'p') order by 1`, schema)
}

// routineParam is one input parameter of a function.
type routineParam struct {
	Name     string `json:"name"`
	Type     string `json:"type"`    // as PostgREST shows it (format_type)
	SQLType  string `json:"sqltype"` // Type, schema-qualified unless in pg_catalog: for SQL
	Variadic bool   `json:"variadic"`
	Required bool   `json:"-"`
}

// routine is a callable function of an exposed schema.
type routine struct {
	Schema     string
	Name       string
	Params     []routineParam
	RetSet     bool
	Composite  bool // returns a row type (table, composite type or OUT/TABLE columns)
	Void       bool
	Volatility string // "v", "s" or "i"
	fp         string // fingerprint: the catalog row it was built from
}

// scalar reports whether the function returns a single non-row value.
func (r *routine) scalar() bool { return !r.Composite && !r.RetSet }

const routineQuery = `
select p.proretset, p.provolatile::text,
  p.prorettype = 'void'::regtype,
  (rt.typtype = 'c' or (p.prorettype = 'record'::regtype and
     coalesce((select bool_or(m in ('o', 'b', 't')) from unnest(p.proargmodes) m), false))),
  p.pronargdefaults::int,
  coalesce((
    select json_agg(json_build_object('name', x.name, 'type', format_type(x.typ, null),
      'sqltype', case when tn.nspname = 'pg_catalog' or not pg_type_is_visible(x.typ) then format_type(x.typ, null)
                      else quote_ident(tn.nspname) || '.' || format_type(x.typ, null) end,
      'variadic', x.mode = 'v') order by x.i)
    from (
      select i, coalesce(p.proargnames[i], '') as name,
             coalesce(p.proallargtypes[i], p.proargtypes[i - 1]) as typ,
             coalesce(p.proargmodes[i], 'i') as mode
      from generate_series(1, coalesce(array_length(p.proallargtypes, 1), p.pronargs::int)) as i
    ) x
    join pg_type xt on xt.oid = x.typ
    join pg_namespace tn on tn.oid = xt.typnamespace
    where x.mode in ('i', 'b', 'v')), '[]')::text
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type rt on rt.oid = p.prorettype
where n.nspname = $1 and p.proname = $2 and p.prokind = 'f'`

// loadRoutines returns every overload of schema.name.
func loadRoutines(ctx context.Context, q queryer, schema, name string) ([]*routine, error) {
	rows, err := q.Query(ctx, routineQuery, schema, name)
	if err != nil {
		return nil, fmt.Errorf("load function %s.%s: %w", schema, name, err)
	}
	defer rows.Close()
	var out []*routine
	for rows.Next() {
		r := &routine{Schema: schema, Name: name}
		var nDefaults int
		var params string
		if err := rows.Scan(&r.RetSet, &r.Volatility, &r.Void, &r.Composite, &nDefaults, &params); err != nil {
			return nil, fmt.Errorf("load function %s.%s: %w", schema, name, err)
		}
		if err := json.Unmarshal([]byte(params), &r.Params); err != nil {
			return nil, fmt.Errorf("decode function %s.%s: %w", schema, name, err)
		}
		for i := range r.Params {
			r.Params[i].Required = i < len(r.Params)-nDefaults
		}
		r.fp = fmt.Sprint(r.RetSet, r.Volatility, r.Void, r.Composite, nDefaults, params)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load function %s.%s: %w", schema, name, err)
	}
	return out, nil
}

// routinesFingerprint identifies the catalog rows of a set of overloads.
func routinesFingerprint(rs []*routine) string {
	fps := make([]string, len(rs))
	for i, r := range rs {
		fps[i] = r.fp
	}
	sort.Strings(fps)
	return strings.Join(fps, "\n")
}

// routineNames lists the function names of a schema.
func routineNames(ctx context.Context, q queryer, schema string) ([]string, error) {
	return stringList(ctx, q, `
select distinct p.proname::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = $1 and p.prokind = 'f' order by 1`, schema)
}

func stringList(ctx context.Context, q queryer, sql string, args ...any) ([]string, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// matchRoutine picks the overload PostgREST would call for the given
// argument names (PostgREST.Plan.findProc). isPost with a JSON body also
// admits a function taking a single unnamed json/jsonb parameter.
func matchRoutine(cands []*routine, keys []string, isPost bool) (*routine, *apiError, bool) {
	keySet := map[string]bool{}
	for _, k := range keys {
		keySet[k] = true
	}
	var named, fallback []*routine
	for _, r := range cands {
		switch {
		case paramsMatch(r, keySet):
			named = append(named, r)
		case isPost && len(r.Params) == 1 && r.Params[0].Name == "" &&
			(r.Params[0].Type == "json" || r.Params[0].Type == "jsonb"):
			fallback = append(fallback, r)
		}
	}
	switch {
	case len(named) == 1:
		return named[0], nil, true
	case len(named) > 1:
		return nil, errAmbiguousRPC(named), false
	case len(fallback) == 1:
		return fallback[0], nil, true
	case len(fallback) > 1:
		return nil, errAmbiguousRPC(fallback), false
	}
	return nil, nil, false
}

func paramsMatch(r *routine, keys map[string]bool) bool {
	if len(r.Params) == 0 {
		return len(keys) == 0
	}
	names := map[string]bool{}
	for _, p := range r.Params {
		names[p.Name] = true
		if p.Required && !keys[p.Name] {
			return false
		}
	}
	for k := range keys {
		if !names[k] {
			return false
		}
	}
	return true
}

func errAmbiguousRPC(rs []*routine) *apiError {
	var descs []string
	for _, r := range rs {
		var ps []string
		for _, p := range r.Params {
			ps = append(ps, p.Name+" => "+p.Type)
		}
		descs = append(descs, r.Schema+"."+r.Name+"("+strings.Join(ps, ", ")+")")
	}
	return newAPIError(300, "PGRST203", "Could not choose the best candidate function between: "+strings.Join(descs, ", "), nil,
		strp("Try renaming the parameters or the function itself in the database so function overloading can be resolved"))
}

// errNoRPC is PGRST202 with PostgREST's message, details and fuzzy hint.
func errNoRPC(schema, name string, keys []string, isPost bool, allNames []string, overloads []*routine) *apiError {
	keys = append([]string(nil), keys...)
	sort.Strings(keys)
	fn := schema + "." + name
	prms := "(" + strings.Join(keys, ", ") + ")"
	detPrms := " with parameter"
	if len(keys) > 1 {
		detPrms += "s "
	} else {
		detPrms += " "
	}
	detPrms += strings.Join(keys, ", ")
	if len(keys) == 0 {
		prms, detPrms = " without parameters", " without parameters"
	}
	details := "Searched for the function " + fn + detPrms
	if isPost {
		details += " or with a single unnamed json/jsonb parameter"
	}
	details += ", but no matches were found in the schema cache."
	var hint *string
	if len(overloads) == 0 {
		if best, ok := fuzzyBest(name, allNames, 0.75); ok && best != name {
			hint = strp("Perhaps you meant to call the function " + schema + "." + best)
		}
	} else {
		var lists []string
		for _, r := range overloads {
			var ns []string
			for _, p := range r.Params {
				ns = append(ns, p.Name)
			}
			sort.Strings(ns)
			lists = append(lists, "("+strings.Join(ns, ", ")+")")
		}
		if best, ok := fuzzyBest("("+strings.Join(keys, ", ")+")", lists, 0.33); ok {
			hint = strp("Perhaps you meant to call the function " + fn + best)
		}
	}
	return newAPIError(404, "PGRST202", "Could not find the function "+fn+prms+" in the schema cache", strp(details), hint)
}
