package supabasetest

import (
	"math"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRawQuery(t *testing.T) {
	got := parseRawQuery("a=1&b=x+y;c=%2B01:00&d&e=&bad=%zz&f=a=b")
	assert.Equal(t, []queryParam{
		{"a", "1", true}, {"b", "x y", true}, {"c", "+01:00", true}, {"d", "", false},
		{"e", "", true}, {"bad", "%zz", true}, {"f", "a=b", true},
	}, got)
}

func TestParseFilterValue(t *testing.T) {
	cases := []struct {
		in   string
		want opExpr
	}{
		{"eq.5", opExpr{Op: "eq", Value: "5"}},
		{"eq.a,b.c", opExpr{Op: "eq", Value: "a,b.c"}},
		{`eq."quoted"`, opExpr{Op: "eq", Value: `"quoted"`}},
		{"eq.", opExpr{Op: "eq", Value: ""}},
		{"not.eq.5", opExpr{Negate: true, Op: "eq", Value: "5"}},
		{"gte.2026-01-01T00:00:00+00:00", opExpr{Op: "gte", Value: "2026-01-01T00:00:00+00:00"}},
		{"neq.x", opExpr{Op: "neq", Value: "x"}},
		{"like.*a*", opExpr{Op: "like", Value: "*a*"}},
		{"ilike(any).{a*,b*}", opExpr{Op: "ilike", Quant: "any", Value: "{a*,b*}"}},
		{"eq(all).{1,2}", opExpr{Op: "eq", Quant: "all", Value: "{1,2}"}},
		{"is.null", opExpr{Op: "is", Value: "null"}},
		{"is.NOT_NULL", opExpr{Op: "is", Value: "not_null"}},
		{"not.is.true", opExpr{Negate: true, Op: "is", Value: "true"}},
		{"isdistinct.x", opExpr{Op: "isdistinct", Value: "x"}},
		{"in.(1,2,3)", opExpr{Op: "in", List: []string{"1", "2", "3"}}},
		{`in.("a,b",c,"d\"e")`, opExpr{Op: "in", List: []string{"a,b", "c", `d"e`}}},
		{"in.( a , b )", opExpr{Op: "in", List: []string{"a ", " b "}}},
		{"in.()", opExpr{Op: "in", List: []string{""}}},
		{"cs.{a,b}", opExpr{Op: "cs", Value: "{a,b}"}},
		{"fts.cat", opExpr{Op: "fts", Value: "cat"}},
		{"wfts(english).fat cats", opExpr{Op: "wfts", Lang: "english", HasLang: true, Value: "fat cats"}},
		{"adj.[1,2)", opExpr{Op: "adj", Value: "[1,2)"}},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseFilterValue(tc.in)
			require.Nil(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	errs := []struct{ in, message, details string }{
		{"noop.0", `"failed to parse filter (noop.0)" (line 1, column 1)`, `unexpected "n" expecting "not" or operator (eq, gt, ...)`},
		{"5", `"failed to parse filter (5)" (line 1, column 1)`, `unexpected "5" expecting "not" or operator (eq, gt, ...)`},
		{"not.xx.1", `"failed to parse filter (not.xx.1)" (line 1, column 5)`, `unexpected "x" expecting operator (eq, gt, ...)`},
		{"eq", `"failed to parse filter (eq)" (line 1, column 3)`, `unexpected end of input expecting delimiter (.)`},
		{"in.1,2", `"failed to parse filter (in.1,2)" (line 1, column 4)`, `unexpected "1" expecting "("`},
		{"is.maybe", `"failed to parse filter (is.maybe)" (line 1, column 4)`, `unexpected "m" expecting isVal: (null, not_null, true, false, unknown)`},
		{"EQ.1", `"failed to parse filter (EQ.1)" (line 1, column 1)`, `unexpected "E" expecting "not" or operator (eq, gt, ...)`},
	}
	for _, tc := range errs {
		t.Run("error "+tc.in, func(t *testing.T) {
			_, err := parseFilterValue(tc.in)
			require.NotNil(t, err)
			assert.Equal(t, http.StatusBadRequest, err.Status)
			assert.Equal(t, "PGRST100", err.Code)
			assert.Equal(t, tc.message, err.Message)
			assert.Equal(t, tc.details, *err.Details)
		})
	}
}

func leaf(name string, op opExpr) logicTree {
	return logicTree{Filter: &filter{Field: field{Name: name}, Op: op}}
}

func TestParseLogicParam(t *testing.T) {
	cases := []struct {
		key, value string
		path       []string
		want       logicTree
	}{
		{"or", "(a.eq.1,b.gt.2)", nil, logicTree{Or: true, Children: []logicTree{
			leaf("a", opExpr{Op: "eq", Value: "1"}), leaf("b", opExpr{Op: "gt", Value: "2"})}}},
		{"and", "(a.eq.1,or(b.gt.2,not.and(c.lt.3,d.is.null)))", nil, logicTree{Children: []logicTree{
			leaf("a", opExpr{Op: "eq", Value: "1"}),
			{Or: true, Children: []logicTree{
				leaf("b", opExpr{Op: "gt", Value: "2"}),
				{Negate: true, Children: []logicTree{
					leaf("c", opExpr{Op: "lt", Value: "3"}), leaf("d", opExpr{Op: "is", Value: "null"})}},
			}},
		}}},
		{"not.or", "(a.not.eq.1, b.in.(x,\"y,z\"))", nil, logicTree{Negate: true, Or: true, Children: []logicTree{
			leaf("a", opExpr{Negate: true, Op: "eq", Value: "1"}), leaf("b", opExpr{Op: "in", List: []string{"x", "y,z"}})}}},
		{"and", `(name.eq."a,b",tags.cs.{x,y},ts.gte.2026-01-01T00:00:00.5+00:00)`, nil, logicTree{Children: []logicTree{
			leaf("name", opExpr{Op: "eq", Value: "a,b"}), leaf("tags", opExpr{Op: "cs", Value: "{x,y}"}),
			leaf("ts", opExpr{Op: "gte", Value: "2026-01-01T00:00:00.5+00:00"})}}},
		{"rel.or", "(a.eq.1)", []string{"rel"}, logicTree{Or: true, Children: []logicTree{leaf("a", opExpr{Op: "eq", Value: "1"})}}},
		{"or", "(data->>k.eq.v)", nil, logicTree{Or: true, Children: []logicTree{
			{Filter: &filter{Field: field{Name: "data", Path: []jsonOp{{Arrow: "->>", Key: "k"}}}, Op: opExpr{Op: "eq", Value: "v"}}}}}},
	}
	for _, tc := range cases {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			path, got, err := parseLogicParam(tc.key, tc.value)
			require.Nil(t, err)
			assert.Equal(t, tc.path, path)
			assert.Equal(t, tc.want, got)
		})
	}
	for _, bad := range []string{"()", "(a.eq.1", "(a.xx.1)", "(and(a.eq.1)", "(a.eq.1,,b.eq.2)"} {
		t.Run("error "+bad, func(t *testing.T) {
			_, _, err := parseLogicParam("or", bad)
			require.NotNil(t, err)
			assert.Equal(t, "PGRST100", err.Code)
		})
	}
}

func TestParseSelect(t *testing.T) {
	cases := []struct {
		in   string
		want []selectItem
	}{
		{"", nil},
		{"*", []selectItem{{Field: field{Name: "*"}}}},
		{"id, name ,qty", []selectItem{{Field: field{Name: "id"}}, {Field: field{Name: "name"}}, {Field: field{Name: "qty"}}}},
		{"alias:col", []selectItem{{Field: field{Name: "col"}, Alias: "alias"}}},
		{"col::text", []selectItem{{Field: field{Name: "col"}, Cast: "text"}}},
		{"a:data->x->>y::int", []selectItem{{Field: field{Name: "data", Path: []jsonOp{{"->", "x", false}, {"->>", "y", false}}}, Alias: "a", Cast: "int"}}},
		{"data->0", []selectItem{{Field: field{Name: "data", Path: []jsonOp{{"->", "+0", true}}}}}},
		{`"with space":"odd,name"`, []selectItem{{Field: field{Name: "odd,name"}, Alias: "with space"}}},
		{"kebab-case", []selectItem{{Field: field{Name: "kebab-case"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSelect(tc.in)
			require.Nil(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	errs := []struct{ in, code string }{
		{"count()", "PGRST123"},
		{"id.sum()", "PGRST123"},
		{"rel(*)", "PGRST127"},
		{"alias:rel!inner(id)", "PGRST127"},
		{"...rel(id)", "PGRST127"},
		{"id!x", "PGRST100"},
		{"col::", "PGRST100"},
		{"col::text;drop", "PGRST100"},
		{"col::$x$", "PGRST100"},
		{"*x", "PGRST100"},
	}
	for _, tc := range errs {
		t.Run("error "+tc.in, func(t *testing.T) {
			_, err := parseSelect(tc.in)
			require.NotNil(t, err)
			assert.Equal(t, tc.code, err.Code)
		})
	}
}

func TestSelectItemOutputName(t *testing.T) {
	assert.Equal(t, "", selectItem{Field: field{Name: "c"}}.outputName())
	assert.Equal(t, "a", selectItem{Field: field{Name: "c"}, Alias: "a"}.outputName())
	assert.Equal(t, "k", selectItem{Field: field{Name: "c", Path: []jsonOp{{"->", "k", false}}}}.outputName())
	assert.Equal(t, "k", selectItem{Field: field{Name: "c", Path: []jsonOp{{"->", "k", false}, {"->>", "+1", true}}}}.outputName())
	assert.Equal(t, "c", selectItem{Field: field{Name: "c", Path: []jsonOp{{"->", "+3", true}}}}.outputName())
}

func TestParseOrder(t *testing.T) {
	cases := []struct {
		in   string
		want []orderTerm
	}{
		{"id", []orderTerm{{Field: field{Name: "id"}}}},
		{"id.desc", []orderTerm{{Field: field{Name: "id"}, Dir: "desc"}}},
		{"a.asc.nullsfirst, b.nullslast,c.desc", []orderTerm{
			{Field: field{Name: "a"}, Dir: "asc", Nulls: "nullsfirst"}, {Field: field{Name: "b"}, Nulls: "nullslast"}, {Field: field{Name: "c"}, Dir: "desc"}}},
		{"data->>k.desc", []orderTerm{{Field: field{Name: "data", Path: []jsonOp{{"->>", "k", false}}}, Dir: "desc"}}},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseOrder(tc.in)
			require.Nil(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	errs := []struct{ in, details string }{
		{"id.ac", `unexpected "a" expecting "asc", "desc", "nullsfirst" or "nullslast"`},
		{"id.descc", `unexpected "c" expecting "," or end of input`},
		{"id.asc.nlsfst", `unexpected "n" expecting "nullsfirst" or "nullslast"`},
		{"rel(id)", ""},
	}
	for _, tc := range errs {
		t.Run("error "+tc.in, func(t *testing.T) {
			_, err := parseOrder(tc.in)
			require.NotNil(t, err)
			if tc.details != "" {
				assert.Equal(t, tc.details, *err.Details)
			}
		})
	}
}

func TestParseQueryParams(t *testing.T) {
	q, err := parseQueryParams(parseRawQuery(
		"select=id,name&select=ignored&id=eq.1&id=lt.5&or=(a.eq.1)&order=id.desc&order=ignored&limit=10&offset=5&columns=a,b&on_conflict=x,y"), false)
	require.Nil(t, err)
	assert.Equal(t, []selectItem{{Field: field{Name: "id"}}, {Field: field{Name: "name"}}}, q.Select)
	assert.Equal(t, []filter{{Field: field{Name: "id"}, Op: opExpr{Op: "eq", Value: "1"}}, {Field: field{Name: "id"}, Op: opExpr{Op: "lt", Value: "5"}}}, q.Filters)
	assert.Len(t, q.Logic, 1)
	assert.Equal(t, []orderTerm{{Field: field{Name: "id"}, Dir: "desc"}}, q.Order)
	assert.Equal(t, nonnegRange{lower: 5, upper: 14}, q.Range)
	assert.Equal(t, []string{"a", "b"}, q.Columns)
	assert.Equal(t, []string{"x", "y"}, q.OnConflict)

	q, err = parseQueryParams(parseRawQuery("a=1&b=eq.2&a=3"), true)
	require.Nil(t, err)
	assert.Equal(t, []rpcArg{{"a", "1"}, {"a", "3"}}, q.RPCArgs)
	assert.Len(t, q.Filters, 1)

	_, err = parseQueryParams(parseRawQuery("rel.id=eq.1"), false)
	require.NotNil(t, err)
	assert.Equal(t, "PGRST108", err.Code)

	_, err = parseQueryParams(parseRawQuery("id=eq.1&x=bad"), false)
	require.NotNil(t, err)
	assert.Equal(t, "PGRST100", err.Code)

	q, err = parseQueryParams(parseRawQuery("flag"), false)
	require.Nil(t, err)
	assert.Empty(t, q.Filters)
}

func TestRanges(t *testing.T) {
	str := func(s string) *string { return &s }
	cases := []struct {
		name          string
		method        string
		limit, offset *string
		header        string
		want          nonnegRange
		errDetails    string
	}{
		{"nothing", "GET", nil, nil, "", allRange, ""},
		{"limit", "GET", str("10"), nil, "", nonnegRange{upper: 9}, ""},
		{"offset", "GET", nil, str("5"), "", rangeGeq(5), ""},
		{"limit and offset", "GET", str("10"), str("5"), "", nonnegRange{lower: 5, upper: 14}, ""},
		{"header", "GET", nil, nil, "0-9", nonnegRange{upper: 9}, ""},
		{"open header", "GET", nil, nil, "5-", rangeGeq(5), ""},
		{"header ignored for HEAD", "HEAD", nil, nil, "0-9", allRange, ""},
		{"header intersects limit", "GET", str("3"), nil, "1-9", nonnegRange{lower: 1, upper: 2}, ""},
		{"limit zero", "GET", str("0"), nil, "", limitZeroRange, ""},
		{"unparsable limit is ignored", "GET", str("abc"), nil, "", allRange, ""},
		{"negative limit", "GET", str("-1"), nil, "", nonnegRange{}, rangeNegativeLimit},
		{"header lower above upper", "GET", nil, nil, "9-2", nonnegRange{}, rangeLowerGTUpper},
		{"disjoint header and limit", "GET", str("2"), str("10"), "0-3", nonnegRange{}, rangeNegativeLimit},
		{"limit on PUT", "PUT", str("1"), nil, "", nonnegRange{}, "put"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := &queryParams{}
			q.Range, q.HasRange = limitOffsetRange(tc.limit, tc.offset)
			got, err := topLevelRange(tc.method, tc.header, q)
			switch tc.errDetails {
			case "":
				require.Nil(t, err)
				assert.Equal(t, tc.want, got)
			case "put":
				require.NotNil(t, err)
				assert.Equal(t, "PGRST114", err.Code)
			default:
				require.NotNil(t, err)
				assert.Equal(t, http.StatusRequestedRangeNotSatisfiable, err.Status)
				assert.Equal(t, tc.errDetails, *err.Details)
			}
		})
	}
	assert.Equal(t, nonnegRange{lower: 10, upper: 59}, restrictRange(50, rangeGeq(10)))
	huge := "9223372036854775807"
	r, _ := limitOffsetRange(&huge, str("10"))
	assert.Equal(t, nonnegRange{lower: 10, upper: math.MaxInt64}, r)
	assert.Equal(t, nonnegRange{lower: 10, upper: 59}, restrictRange(50, r))
	assert.Equal(t, nonnegRange{lower: 0, upper: 4}, restrictRange(50, nonnegRange{upper: 4}))
}

func TestContentRangeAndStatus(t *testing.T) {
	i := func(n int64) *int64 { return &n }
	cases := []struct {
		top       nonnegRange
		pageTotal int64
		total     *int64
		status    int
		header    string
	}{
		{allRange, 5, nil, 200, "0-4/*"},
		{allRange, 0, nil, 200, "*/*"},
		{allRange, 5, i(5), 200, "0-4/5"},
		{nonnegRange{upper: 1}, 2, i(5), 206, "0-1/5"},
		{rangeGeq(3), 2, i(5), 206, "3-4/5"},
		{allRange, 0, i(0), 200, "*/0"},
		{rangeGeq(10), 0, i(5), 416, "*/5"},
		{limitZeroRange, 0, i(5), 206, "*/5"},
	}
	for _, tc := range cases {
		status, h := rangeStatus(tc.top, tc.pageTotal, tc.total)
		assert.Equal(t, tc.status, status, "%+v", tc)
		assert.Equal(t, tc.header, h, "%+v", tc)
	}
	assert.Equal(t, "*/*", contentRange(1, 0, nil))
	assert.Equal(t, "*/3", contentRange(1, 0, i(3)))
}

func TestParsePreferences(t *testing.T) {
	p := parsePreferences([]string{"resolution=ignore-duplicates, count=exact", "resolution=merge-duplicates,return=representation",
		"missing=default,  handling=strict , max-affected=5, tx=rollback, timezone=UTC, bogus"})
	assert.Equal(t, preferences{Resolution: "ignore-duplicates", Return: "representation", Count: "exact", Tx: "rollback",
		Missing: "default", Handling: "strict", MaxAffected: 5, HasMaxAff: true, Invalid: []string{"timezone=UTC", "bogus"}}, p)
	assert.Equal(t, "resolution=ignore-duplicates, missing=default, return=representation, count=exact, handling=strict", p.applied(prefInsert, true))
	assert.Equal(t, "missing=default, return=representation, count=exact, handling=strict", p.applied(prefInsert, false))
	assert.Equal(t, "return=representation, count=exact, handling=strict, max-affected=5", p.applied(prefDelete, false))
	assert.Equal(t, "count=exact, handling=strict", p.applied(prefRead, false))
	assert.Empty(t, parsePreferences(nil).applied(prefInsert, true))
}

func TestNegotiate(t *testing.T) {
	cases := []struct {
		accept string
		want   mediaType
		err    string
	}{
		{"", mediaType{Kind: mediaJSON}, ""},
		{"*/*", mediaType{Kind: mediaJSON}, ""},
		{"application/json", mediaType{Kind: mediaJSON}, ""},
		{"application/vnd.pgrst.object+json", mediaType{Kind: mediaObject}, ""},
		{"ApplicatIon/vnd.PgRsT.object", mediaType{Kind: mediaObject}, ""},
		{"application/vnd.pgrst.object+json;nulls=stripped", mediaType{Kind: mediaObject, Strip: true}, ""},
		{"application/vnd.pgrst.array+json;nulls=stripped", mediaType{Kind: mediaJSON, Strip: true}, ""},
		{"application/vnd.pgrst.object+json, application/json", mediaType{Kind: mediaObject}, ""},
		{"text/html;q=0.9, application/json;q=0.5", mediaType{Kind: mediaJSON}, ""},
		{"text/html, text/csv", mediaType{}, "None of these media types are available: text/html, text/csv"},
	}
	for _, tc := range cases {
		got, err := negotiate(tc.accept)
		if tc.err != "" {
			require.NotNil(t, err, tc.accept)
			assert.Equal(t, tc.err, err.Message)
			continue
		}
		require.Nil(t, err, tc.accept)
		assert.Equal(t, tc.want, got, tc.accept)
	}
}

func TestSQLStateStatus(t *testing.T) {
	cases := []struct {
		code, message string
		authed        bool
		want          int
	}{
		{"23505", "", true, 409}, {"23503", "", true, 409}, {"23502", "", true, 400}, {"23514", "", true, 400},
		{"22P02", "", true, 400}, {"42P01", "", true, 404}, {"42883", "", true, 404}, {"42501", "", false, 401},
		{"42501", "", true, 403}, {"P0001", "", true, 400}, {"P0002", "", true, 500}, {"57014", "", true, 500},
		{"57P01", "", true, 503}, {"08006", "", true, 503}, {"53300", "", true, 503}, {"53400", "", true, 500},
		{"40001", "", true, 500}, {"25006", "", true, 405}, {"PT418", "", true, 418}, {"PTxyz", "", true, 500},
		{"22023", `role "x" does not exist`, true, 401}, {"22023", "other", true, 400},
		{"21000", "UPDATE requires a WHERE clause", true, 400}, {"21000", "more than one row", true, 500},
		{"42703", "", true, 400}, {"28000", "", true, 403}, {"XX000", "", true, 500},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, sqlStateStatus(tc.code, tc.message, tc.authed), "%s %q", tc.code, tc.message)
	}
}

func TestFuzzyBest(t *testing.T) {
	best, ok := fuzzyBest("itemz", []string{"claims", "items", "children"}, 0.75)
	assert.True(t, ok)
	assert.Equal(t, "items", best)
	_, ok = fuzzyBest("zzzz", []string{"claims", "items"}, 0.75)
	assert.False(t, ok)
	_, ok = fuzzyBest("x", nil, 0.1)
	assert.False(t, ok)
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		h, tok string
		ok     bool
	}{
		{"Bearer abc", "abc", true}, {"bearer  abc", "abc", true}, {"Bearer", "", true}, {"Basic abc", "", false}, {"Bearerabc", "", false},
	} {
		tok, ok := bearerToken(tc.h)
		assert.Equal(t, tc.ok, ok, tc.h)
		assert.Equal(t, tc.tok, tok, tc.h)
	}
}
