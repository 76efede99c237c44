package supabasetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFilterSQL(t *testing.T) {
	tbl := &table{Schema: "public", Name: "t", byName: map[string]*column{
		"doc": {Name: "doc", BaseType: "jsonb"}, "tsv": {Name: "tsv", BaseType: "tsvector"}, "n": {Name: "n", BaseType: "int4"},
	}}
	rel := relation{qual: qualifiedName("public", "t"), tbl: tbl}
	cases := []struct {
		f    filter
		sql  string
		args []any
	}{
		{filter{field{Name: "n"}, opExpr{Op: "eq", Value: "1"}}, `"public"."t"."n" = $1`, []any{"1"}},
		{filter{field{Name: "n"}, opExpr{Negate: true, Op: "gte", Value: "1"}}, `NOT "public"."t"."n" >= $1`, []any{"1"}},
		{filter{field{Name: "s"}, opExpr{Op: "ilike", Value: "*a*b"}}, `"public"."t"."s" ILIKE $1`, []any{"%a%b"}},
		{filter{field{Name: "s"}, opExpr{Op: "like", Quant: "any", Value: "{a*,b}"}}, `"public"."t"."s" LIKE ANY($1)`, []any{"{a%,b}"}},
		{filter{field{Name: "s"}, opExpr{Op: "in", List: []string{"a", `b"c`, `d\e`}}}, `"public"."t"."s" = ANY ($1)`, []any{`{"a","b\"c","d\\e"}`}},
		{filter{field{Name: "s"}, opExpr{Op: "in", List: []string{""}}}, `"public"."t"."s" = ANY('{}')`, nil},
		{filter{field{Name: "s"}, opExpr{Op: "is", Value: "not_null"}}, `"public"."t"."s" IS NOT NULL`, nil},
		{filter{field{Name: "s"}, opExpr{Op: "isdistinct", Value: "x"}}, `"public"."t"."s" IS DISTINCT FROM $1`, []any{"x"}},
		{filter{field{Name: "a"}, opExpr{Op: "cs", Value: "{1}"}}, `"public"."t"."a" @> $1`, []any{"{1}"}},
		{filter{field{Name: "doc", Path: []jsonOp{{"->", "a", false}, {"->>", "+0", true}}}, opExpr{Op: "eq", Value: "v"}},
			`"public"."t"."doc"->$1->>$2::int = $3`, []any{"a", "+0", "v"}},
		{filter{field{Name: "n", Path: []jsonOp{{"->>", "k", false}}}, opExpr{Op: "eq", Value: "v"}},
			`to_jsonb("public"."t"."n")->>$1 = $2`, []any{"k", "v"}},
		{filter{field{Name: "s"}, opExpr{Op: "wfts", Lang: "english", HasLang: true, Value: "cat"}},
			`to_tsvector($1, "public"."t"."s") @@ websearch_to_tsquery($3, $2)`, []any{"english", "cat", "english"}},
		{filter{field{Name: "tsv"}, opExpr{Op: "fts", Value: "cat"}}, `"public"."t"."tsv" @@ to_tsquery($1)`, []any{"cat"}},
		{filter{field{Name: `we"ird`}, opExpr{Op: "eq", Value: "1"}}, `"public"."t"."we""ird" = $1`, []any{"1"}},
	}
	for _, tc := range cases {
		var b sqlBuilder
		assert.Equal(t, tc.sql, b.filterSQL(rel, tc.f))
		assert.Equal(t, tc.args, b.args)
	}
}

func TestLogicAndOrderSQL(t *testing.T) {
	rel := relation{qual: `"t"`}
	var b sqlBuilder
	tree := logicTree{Negate: true, Or: true, Children: []logicTree{
		leaf("a", opExpr{Op: "eq", Value: "1"}),
		{Children: []logicTree{leaf("b", opExpr{Op: "gt", Value: "2"}), leaf("c", opExpr{Op: "is", Value: "null"})}},
	}}
	assert.Equal(t, ` WHERE "t"."x" = $1 AND NOT ("t"."a" = $2 OR ("t"."b" > $3 AND "t"."c" IS NULL))`,
		b.whereSQL(rel, []filter{{field{Name: "x"}, opExpr{Op: "eq", Value: "0"}}}, []logicTree{tree}))
	assert.Equal(t, ` ORDER BY "t"."a" DESC NULLS LAST, "t"."b", "t"."c" ASC NULLS FIRST`, b.orderSQL(rel, []orderTerm{
		{Field: field{Name: "a"}, Dir: "desc", Nulls: "nullslast"}, {Field: field{Name: "b"}}, {Field: field{Name: "c"}, Dir: "asc", Nulls: "nullsfirst"}}))
	assert.Equal(t, `"t".*`, b.selectSQL(rel, nil))
	assert.Equal(t, `"t"."id", CAST("t"."n" AS text) AS "label", to_jsonb("t"."d")->$4 AS "k"`, b.selectSQL(rel, []selectItem{
		{Field: field{Name: "id"}}, {Field: field{Name: "n"}, Cast: "text", Alias: "label"}, {Field: field{Name: "d", Path: []jsonOp{{"->", "k", false}}}}}))
	assert.Equal(t, "", limitSQL(allRange))
	assert.Equal(t, " LIMIT 10 OFFSET 5", limitSQL(nonnegRange{lower: 5, upper: 14}))
	assert.Equal(t, " LIMIT ALL OFFSET 5", limitSQL(rangeGeq(5)))
	assert.Equal(t, " LIMIT 0 OFFSET 0", limitSQL(limitZeroRange))
}

func TestFromJSONBody(t *testing.T) {
	jb, js, n := &column{Name: "a", Type: "jsonb"}, &column{Name: "b", Type: "json"}, &column{Name: "c", Type: "integer"}
	cases := []struct {
		name string
		spec jsonBodySpec
		sql  string
	}{
		{"PostgREST's json by default", jsonBodySpec{isObject: true, cols: []*column{jb, n}, onlyCols: true},
			`FROM (SELECT $1::json AS json_data) pgrst_payload, LATERAL (SELECT "a", "c" FROM json_to_record(pgrst_payload.json_data) AS _("a" jsonb, "c" integer)) pgrst_body`},
		{"json values are kept as sent", jsonBodySpec{cols: []*column{jb, js}, onlyCols: true},
			`FROM (SELECT $1::json AS json_data) pgrst_payload, LATERAL (SELECT "a", "b" FROM json_to_recordset(pgrst_payload.json_data) AS _("a" jsonb, "b" json)) pgrst_body`},
		{"jsonb columns alone: parsed once as jsonb", jsonBodySpec{isObject: true, cols: []*column{jb}, onlyCols: true, limitOne: true},
			`FROM (SELECT $1::jsonb AS json_data) pgrst_payload, LATERAL (SELECT "a" FROM jsonb_to_record(pgrst_payload.json_data) AS _("a" jsonb) LIMIT 1) pgrst_body`},
		{"an array of them too", jsonBodySpec{cols: []*column{jb}, onlyCols: true},
			`FROM (SELECT $1::jsonb AS json_data) pgrst_payload, LATERAL (SELECT "a" FROM jsonb_to_recordset(pgrst_payload.json_data) AS _("a" jsonb)) pgrst_body`},
		{"not when ?columns= leaves other keys", jsonBodySpec{isObject: true, cols: []*column{jb}},
			`FROM (SELECT $1::json AS json_data) pgrst_payload, LATERAL (SELECT "a" FROM json_to_record(pgrst_payload.json_data) AS _("a" jsonb)) pgrst_body`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b sqlBuilder
			assert.Equal(t, tc.sql, b.fromJSONBody(tc.spec))
		})
	}
}
