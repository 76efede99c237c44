package supabasetest

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// This file turns parsed requests into SQL shaped like PostgREST's
// (PostgREST.Query.QueryBuilder / SqlFragment). Every user-supplied value is
// a bind parameter sent as text of unspecified type, so PostgreSQL infers it
// from the column, exactly as PostgREST's "unknown" literals; identifiers
// are always quoted.
//
// Every main statement returns one row:
//   total (int8|null), page_total (int8), body (text), location (text[]|null),
//   response_headers (text|null), response_status (text|null), inserted (int8|null)

// sqlBuilder accumulates SQL text and its bind arguments.
type sqlBuilder struct {
	strings.Builder
	args []any
}

// param binds v and returns its placeholder.
func (b *sqlBuilder) param(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

// ident quotes an identifier.
func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func qualifiedName(schema, name string) string { return ident(schema) + "." + ident(name) }

const (
	sourceCTE        = "pgrst_source"
	gucTail          = "nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status"
	insertedCounter  = "nullif(current_setting('pgrst.inserted', true), '')::int8"
	insertedIncrease = "set_config('pgrst.inserted', (coalesce(nullif(current_setting('pgrst.inserted', true), '')::int, 0) + 1)::text, true) <> '0'"
	insertedDecrease = "set_config('pgrst.inserted', (coalesce(nullif(current_setting('pgrst.inserted', true), '')::int, 0) - 1)::text, true) <> '-1'"
)

// relation is what field references are qualified with, plus the column
// types when known (to decide on to_jsonb()/to_tsvector() wrapping).
type relation struct {
	qual string // already quoted, e.g. "public"."items" or "items"
	tbl  *table
}

func (r relation) baseType(col string) string {
	if c := r.tbl.column(col); c != nil {
		return c.BaseType
	}
	return ""
}

// fieldSQL renders a column reference with its JSON path.
func (b *sqlBuilder) fieldSQL(r relation, f field) string {
	if f.Name == "*" {
		return r.qual + ".*"
	}
	s := r.qual + "." + ident(f.Name)
	if len(f.Path) == 0 {
		return s
	}
	if bt := r.baseType(f.Name); bt != "json" && bt != "jsonb" {
		s = "to_jsonb(" + s + ")"
	}
	for _, op := range f.Path {
		if op.IsIndex {
			s += op.Arrow + b.param(op.Key) + "::int"
		} else {
			s += op.Arrow + b.param(op.Key)
		}
	}
	return s
}

// pgArrayLiteral builds '{"a","b"}' with PostgreSQL array escaping.
func pgArrayLiteral(vals []string) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, v := range vals {
		if i > 0 {
			sb.WriteByte(',')
		}
		v = strings.ReplaceAll(v, "\x00", "")
		v = strings.ReplaceAll(v, `\`, `\\`)
		v = strings.ReplaceAll(v, `"`, `\"`)
		sb.WriteString(`"` + v + `"`)
	}
	sb.WriteByte('}')
	return sb.String()
}

// filterSQL renders one filter (PostgREST's pgFmtFilter).
func (b *sqlBuilder) filterSQL(r relation, f filter) string {
	op := f.Op
	lhs := b.fieldSQL(r, f.Field)
	var s string
	switch {
	case op.Op == "in":
		if len(op.List) == 1 && op.List[0] == "" {
			s = lhs + " = ANY('{}')"
		} else {
			s = lhs + " = ANY (" + b.param(pgArrayLiteral(op.List)) + ")"
		}
	case op.Op == "is":
		s = lhs + " IS " + isValues[op.Value]
	case op.Op == "isdistinct":
		s = lhs + " IS DISTINCT FROM " + b.param(op.Value)
	case ftsOperators[op.Op] != "":
		if r.baseType(f.Field.Name) != "tsvector" {
			if op.HasLang {
				lhs = "to_tsvector(" + b.param(op.Lang) + ", " + lhs + ")"
			} else {
				lhs = "to_tsvector(" + lhs + ")"
			}
		}
		arg := b.param(op.Value)
		if op.HasLang {
			arg = b.param(op.Lang) + ", " + arg
		}
		s = lhs + " @@ " + ftsOperators[op.Op] + "(" + arg + ")"
	case simpleOperators[op.Op] != "":
		s = lhs + " " + simpleOperators[op.Op] + " " + b.param(op.Value)
	default:
		v := op.Value
		if op.Op == "like" || op.Op == "ilike" {
			v = strings.ReplaceAll(v, "*", "%")
		}
		rhs := b.param(v)
		switch op.Quant {
		case "any":
			rhs = "ANY(" + rhs + ")"
		case "all":
			rhs = "ALL(" + rhs + ")"
		}
		s = lhs + " " + quantOperators[op.Op] + " " + rhs
	}
	if op.Negate {
		return "NOT " + s
	}
	return s
}

// logicSQL renders an and/or tree.
func (b *sqlBuilder) logicSQL(r relation, t logicTree) string {
	if t.Filter != nil {
		return b.filterSQL(r, *t.Filter)
	}
	parts := make([]string, len(t.Children))
	for i, c := range t.Children {
		parts[i] = b.logicSQL(r, c)
	}
	sep := " AND "
	if t.Or {
		sep = " OR "
	}
	s := "(" + strings.Join(parts, sep) + ")"
	if t.Negate {
		s = "NOT " + s
	}
	return s
}

// whereSQL renders " WHERE ..." for root filters and logic trees, or "".
func (b *sqlBuilder) whereSQL(r relation, filters []filter, logic []logicTree) string {
	var parts []string
	for _, f := range filters {
		parts = append(parts, b.filterSQL(r, f))
	}
	for _, t := range logic {
		parts = append(parts, b.logicSQL(r, t))
	}
	if len(parts) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(parts, " AND ")
}

// selectSQL renders the select list; an empty list selects every column.
func (b *sqlBuilder) selectSQL(r relation, items []selectItem) string {
	if len(items) == 0 {
		return r.qual + ".*"
	}
	parts := make([]string, len(items))
	for i, it := range items {
		s := b.fieldSQL(r, it.Field)
		if it.Cast != "" {
			s = "CAST(" + s + " AS " + it.Cast + ")"
		}
		if name := it.outputName(); name != "" && it.Field.Name != "*" {
			s += " AS " + ident(name)
		}
		parts[i] = s
	}
	return strings.Join(parts, ", ")
}

// orderSQL renders " ORDER BY ..." or "".
func (b *sqlBuilder) orderSQL(r relation, terms []orderTerm) string {
	if len(terms) == 0 {
		return ""
	}
	parts := make([]string, len(terms))
	for i, t := range terms {
		s := b.fieldSQL(r, t.Field)
		switch t.Dir {
		case "asc":
			s += " ASC"
		case "desc":
			s += " DESC"
		}
		switch t.Nulls {
		case "nullsfirst":
			s += " NULLS FIRST"
		case "nullslast":
			s += " NULLS LAST"
		}
		parts[i] = s
	}
	return " ORDER BY " + strings.Join(parts, ", ")
}

// limitSQL renders " LIMIT n OFFSET m" for a range other than all rows.
func limitSQL(rng nonnegRange) string {
	if rng.isAll() {
		return ""
	}
	limit := "ALL"
	if n, ok := rng.limit(); ok {
		limit = strconv.FormatInt(max(n, 0), 10)
	}
	return " LIMIT " + limit + " OFFSET " + strconv.FormatInt(rng.offset(), 10)
}

// bodyKind selects the JSON aggregate of the response body.
type bodyKind int

const (
	bodyNone         bodyKind = iota // no body (HEAD, return=minimal)
	bodyArray                        // [row, ...]
	bodyObject                       // row (singular media type, or function returning one row)
	bodyScalar                       // bare value of pgrst_scalar
	bodyScalarArray                  // [value, ...] of pgrst_scalar
	bodyScalarObject                 // bare value, singular media type
)

func bodySQL(kind bodyKind, strip bool) string {
	wrap := func(s string) string {
		if strip {
			return "json_strip_nulls(" + s + ")"
		}
		return s
	}
	switch kind {
	case bodyArray:
		return "coalesce(" + wrap("json_agg(_postgrest_t)") + ", '[]')::text"
	case bodyObject:
		return "coalesce(" + wrap("json_agg(_postgrest_t)->0") + ", 'null')::text"
	case bodyScalar, bodyScalarObject:
		return "coalesce(" + wrap("json_agg(_postgrest_t.pgrst_scalar)->0") + ", 'null')::text"
	case bodyScalarArray:
		return "coalesce(" + wrap("json_agg(_postgrest_t.pgrst_scalar)") + ", '[]')::text"
	}
	return "''::text"
}

// readSpec is a GET/HEAD on a table or view.
type readSpec struct {
	tbl   *table
	q     *queryParams
	rng   nonnegRange // already restricted by max rows
	count bool
	body  bodyKind
	strip bool
}

func buildRead(s readSpec) (string, []any) {
	var b sqlBuilder
	rel := relation{qual: qualifiedName(s.tbl.Schema, s.tbl.Name), tbl: s.tbl}
	b.WriteString("WITH " + sourceCTE + " AS (SELECT ")
	b.WriteString(b.selectSQL(rel, s.q.Select))
	b.WriteString(" FROM " + rel.qual)
	b.WriteString(b.whereSQL(rel, s.q.Filters, s.q.Logic))
	b.WriteString(b.orderSQL(rel, s.q.Order))
	b.WriteString(limitSQL(s.rng))
	b.WriteString(")")
	total := "NULL::int8"
	if s.count {
		b.WriteString(", pgrst_source_count AS (SELECT 1 FROM " + rel.qual + b.whereSQL(rel, s.q.Filters, s.q.Logic) + ")")
		total = "(SELECT pg_catalog.count(*) FROM pgrst_source_count)"
	}
	b.WriteString(" SELECT " + total + " AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, ")
	b.WriteString(bodySQL(s.body, s.strip) + " AS body, NULL::text[] AS header, " + gucTail + ", NULL::int8 AS response_inserted")
	b.WriteString(" FROM (SELECT * FROM " + sourceCTE + ") _postgrest_t")
	return b.String(), b.args
}

// jsonBodySpec describes how a JSON payload is turned into rows.
type jsonBodySpec struct {
	body          string
	isObject      bool
	cols          []*column
	applyDefaults bool
	limitOne      bool
	// onlyCols is set when cols are every key of the payload's objects
	// (no ?columns= restricting them).
	onlyCols bool
}

// binary reports whether the payload is read as jsonb rather than json.
// PostgREST reads it as json, and json_to_record then parses it again,
// and each jsonb value a third time. When every key is a jsonb column the
// payload is parsed once as jsonb instead: the values are the same (jsonb
// either way; a repeated key keeps its last value in both) and so are the
// errors, since every value is converted to jsonb anyway.
func (j jsonBodySpec) binary() bool {
	if j.applyDefaults {
		return true
	}
	if !j.onlyCols || len(j.cols) == 0 {
		return false
	}
	for _, c := range j.cols {
		if c.Type != "jsonb" {
			return false
		}
	}
	return true
}

// fromJSONBody renders PostgREST's fromJsonBodyF:
//
//	FROM (SELECT $1 AS json_data) pgrst_payload, [defaults,] LATERAL (SELECT cols FROM json_to_record[set](...) AS _(typed cols)) pgrst_body
func (b *sqlBuilder) fromJSONBody(j jsonBodySpec) string {
	var sb strings.Builder
	castType := "json"
	fn, elems := "json_to_recordset", "json_array_elements"
	if j.binary() {
		castType = "jsonb"
		fn, elems = "jsonb_to_recordset", "jsonb_array_elements"
	}
	if j.isObject {
		fn = strings.TrimSuffix(fn, "set")
	}
	sb.WriteString("FROM (SELECT " + b.param(j.body) + "::" + castType + " AS json_data) pgrst_payload, ")
	source := "pgrst_payload.json_data"
	if j.applyDefaults {
		var defs []string
		for _, c := range j.cols {
			if c.HasDef {
				defs = append(defs, b.param(c.Name)+"::text, "+c.Default)
			}
		}
		obj := "jsonb_build_object(" + strings.Join(defs, ", ") + ")"
		if j.isObject {
			sb.WriteString("LATERAL (SELECT " + obj + " || pgrst_payload.json_data AS val) pgrst_json_defs, ")
		} else {
			sb.WriteString("LATERAL (SELECT jsonb_agg(" + obj + " || elem) AS val FROM jsonb_array_elements(pgrst_payload.json_data) elem) pgrst_json_defs, ")
		}
		source = "pgrst_json_defs.val"
	}
	sb.WriteString("LATERAL (SELECT ")
	if len(j.cols) == 0 {
		if j.isObject {
			sb.WriteString("FROM (VALUES (1)) _")
		} else {
			sb.WriteString("FROM " + elems + "(" + source + ") _")
		}
	} else {
		names := make([]string, len(j.cols))
		typed := make([]string, len(j.cols))
		for i, c := range j.cols {
			names[i] = ident(c.Name)
			typed[i] = ident(c.Name) + " " + c.Type
		}
		sb.WriteString(strings.Join(names, ", ") + " FROM " + fn + "(" + source + ") AS _(" + strings.Join(typed, ", ") + ")")
		if j.limitOne {
			sb.WriteString(" LIMIT 1")
		}
	}
	sb.WriteString(") pgrst_body")
	return sb.String()
}

// returnMode is the return= preference of a write.
type returnMode int

const (
	returnMinimal returnMode = iota
	returnRepresentation
	returnHeadersOnly
)

// writeSpec is an INSERT (POST/PUT), UPDATE (PATCH) or DELETE.
type writeSpec struct {
	tbl        *table
	q          *queryParams
	payload    jsonBodySpec
	resolution string   // "", "merge-duplicates", "ignore-duplicates"
	onConflict []string // conflict target (PK or on_conflict)
	put        bool     // PUT: filters become conditions on the payload
	ret        returnMode
	body       bodyKind
	strip      bool
}

// returningSQL is "RETURNING 1" unless rows are needed in the response.
func (w writeSpec) returningSQL(tableQual string) string {
	if w.ret == returnMinimal {
		return " RETURNING 1"
	}
	return " RETURNING " + tableQual + ".*"
}

func buildInsert(w writeSpec) (string, []any) {
	var b sqlBuilder
	qual := qualifiedName(w.tbl.Schema, w.tbl.Name)
	merge := w.resolution == "merge-duplicates" || w.put
	b.WriteString("WITH " + sourceCTE + " AS (INSERT INTO " + qual)
	names := make([]string, len(w.payload.cols))
	bodyCols := make([]string, len(w.payload.cols))
	for i, c := range w.payload.cols {
		names[i] = ident(c.Name)
		bodyCols[i] = "pgrst_body." + ident(c.Name)
	}
	if len(names) > 0 {
		b.WriteString("(" + strings.Join(names, ", ") + ")")
	}
	b.WriteString(" SELECT " + strings.Join(bodyCols, ", ") + " ")
	b.WriteString(b.fromJSONBody(w.payload))
	var conds []string
	if merge {
		conds = append(conds, insertedIncrease)
	}
	if w.put {
		body := relation{qual: "pgrst_body", tbl: w.tbl}
		for _, f := range w.q.Filters {
			conds = append(conds, b.filterSQL(body, f))
		}
	}
	if len(conds) > 0 {
		b.WriteString(" WHERE " + strings.Join(conds, " AND "))
	}
	if (w.resolution != "" || w.put) && len(w.onConflict) > 0 {
		target := make([]string, len(w.onConflict))
		for i, c := range w.onConflict {
			target[i] = ident(c)
		}
		b.WriteString(" ON CONFLICT(" + strings.Join(target, ", ") + ") ")
		if !merge || len(names) == 0 {
			b.WriteString("DO NOTHING")
		} else {
			sets := make([]string, len(names))
			for i, n := range names {
				sets[i] = n + " = EXCLUDED." + n
			}
			b.WriteString("DO UPDATE SET " + strings.Join(sets, ", ") + " WHERE " + insertedDecrease)
		}
	}
	b.WriteString(w.returningSQL(qual) + ")")
	inserted := "NULL::int8"
	if merge {
		inserted = insertedCounter
	}
	location := "NULL::text[]"
	if w.ret == returnHeadersOnly {
		location = "CASE WHEN pg_catalog.count(_postgrest_t) = 1 THEN coalesce((WITH data AS (SELECT row_to_json(_) AS row FROM " +
			sourceCTE + " AS _ LIMIT 1) SELECT array_agg(json_data.key || '=' || coalesce('eq.' || json_data.value, 'is.null')) " +
			"FROM data CROSS JOIN json_each_text(data.row) AS json_data WHERE json_data.key = ANY(" + b.param(w.tbl.PK) + "::text[])), '{}') ELSE '{}' END"
	}
	b.WriteString(b.writeTail(w, location, inserted))
	return b.String(), b.args
}

// writeTail renders the outer SELECT over the mutation's CTE.
func (b *sqlBuilder) writeTail(w writeSpec, location, inserted string) string {
	from := "SELECT * FROM " + sourceCTE
	body := bodySQL(bodyNone, false)
	if w.ret == returnRepresentation {
		rel := relation{qual: ident(w.tbl.Name), tbl: w.tbl}
		from = "SELECT " + b.selectSQL(rel, w.q.Select) + " FROM " + sourceCTE + " AS " + rel.qual + b.orderSQL(rel, w.q.Order)
		body = bodySQL(w.body, w.strip)
	}
	return " SELECT NULL::int8 AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, " + body + " AS body, " +
		location + " AS header, " + gucTail + ", " + inserted + " AS response_inserted FROM (" + from + ") _postgrest_t"
}

func buildUpdate(w writeSpec) (string, []any) {
	var b sqlBuilder
	qual := qualifiedName(w.tbl.Schema, w.tbl.Name)
	rel := relation{qual: qual, tbl: w.tbl}
	b.WriteString("WITH " + sourceCTE + " AS (")
	if len(w.payload.cols) == 0 {
		cols := "NULL"
		if w.ret != returnMinimal {
			cols = qual + ".*"
		}
		b.WriteString("SELECT " + cols + " FROM " + qual + " WHERE false")
	} else {
		sets := make([]string, len(w.payload.cols))
		for i, c := range w.payload.cols {
			sets[i] = ident(c.Name) + " = pgrst_body." + ident(c.Name)
		}
		b.WriteString("UPDATE " + qual + " SET " + strings.Join(sets, ", ") + " ")
		b.WriteString(b.fromJSONBody(w.payload))
		b.WriteString(b.whereSQL(rel, w.q.Filters, w.q.Logic))
		b.WriteString(w.returningSQL(qual))
	}
	b.WriteString(")")
	b.WriteString(b.writeTail(w, "NULL::text[]", "NULL::int8"))
	return b.String(), b.args
}

func buildDelete(w writeSpec) (string, []any) {
	var b sqlBuilder
	qual := qualifiedName(w.tbl.Schema, w.tbl.Name)
	rel := relation{qual: qual, tbl: w.tbl}
	b.WriteString("WITH " + sourceCTE + " AS (DELETE FROM " + qual)
	b.WriteString(b.whereSQL(rel, w.q.Filters, w.q.Logic))
	b.WriteString(w.returningSQL(qual) + ")")
	b.WriteString(b.writeTail(w, "NULL::text[]", "NULL::int8"))
	return b.String(), b.args
}

// callSpec is a function call through /rpc.
type callSpec struct {
	fn      *routine
	params  []routineParam // the parameters being passed, in declaration order
	json    *jsonBodySpec  // POST with a JSON object: named arguments from the body
	direct  map[string][]string
	jsonArg *string // single unnamed json/jsonb parameter
	q       *queryParams
	rng     nonnegRange
	count   bool
	body    bodyKind
	strip   bool
}

func buildCall(c callSpec) (string, []any) {
	var b sqlBuilder
	fnName := qualifiedName(c.fn.Schema, c.fn.Name)
	var args []string
	var from string
	switch {
	case c.jsonArg != nil:
		args = []string{b.param(*c.jsonArg) + "::" + c.fn.Params[0].SQLType}
	case c.json != nil && len(c.params) > 0:
		from = b.fromJSONBody(*c.json) + ", "
		for _, p := range c.params {
			a := ident(p.Name) + " := pgrst_body." + ident(p.Name)
			if p.Variadic {
				a = "VARIADIC " + a
			}
			args = append(args, a)
		}
	default:
		for _, p := range c.params {
			vals := c.direct[p.Name]
			var v string
			if p.Variadic {
				v = b.param(pgArrayLiteral(vals))
			} else if len(vals) > 0 {
				v = b.param(vals[len(vals)-1])
			}
			a := ident(p.Name) + " := " + v + "::" + p.SQLType
			if p.Variadic {
				a = "VARIADIC " + a
			}
			args = append(args, a)
		}
	}
	call := fnName + "(" + strings.Join(args, ", ") + ")"
	b.WriteString("WITH " + sourceCTE + " AS (")
	if c.fn.Composite {
		b.WriteString("SELECT pgrst_call.* ")
		if from == "" {
			b.WriteString("FROM " + call + " pgrst_call")
		} else {
			b.WriteString(from + "LATERAL " + call + " pgrst_call")
		}
	} else {
		b.WriteString("SELECT pgrst_call.pgrst_scalar ")
		if from == "" {
			b.WriteString("FROM (SELECT " + call + " pgrst_scalar) pgrst_call")
		} else {
			b.WriteString(from + "LATERAL (SELECT " + call + " pgrst_scalar) pgrst_call")
		}
	}
	b.WriteString(")")
	rel := relation{qual: sourceCTE}
	total := "NULL::int8"
	if c.count {
		b.WriteString(", pgrst_source_count AS (SELECT 1 FROM " + sourceCTE + b.whereSQL(rel, c.q.Filters, c.q.Logic) + ")")
		total = "(SELECT pg_catalog.count(*) FROM pgrst_source_count)"
	}
	pageTotal := "pg_catalog.count(_postgrest_t)"
	if !c.fn.RetSet {
		pageTotal = "1::int8"
	}
	b.WriteString(" SELECT " + total + " AS total_result_set, " + pageTotal + " AS page_total, ")
	b.WriteString(bodySQL(c.body, c.strip) + " AS body, NULL::text[] AS header, " + gucTail + ", NULL::int8 AS response_inserted")
	b.WriteString(" FROM (SELECT " + b.selectSQL(rel, c.q.Select) + " FROM " + sourceCTE)
	b.WriteString(b.whereSQL(rel, c.q.Filters, c.q.Logic))
	b.WriteString(b.orderSQL(rel, c.q.Order))
	b.WriteString(limitSQL(c.rng))
	b.WriteString(") _postgrest_t")
	return b.String(), b.args
}
