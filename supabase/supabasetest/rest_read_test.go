package supabasetest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seedItems inserts five well-known rows into public.items.
func seedItems(e *env) {
	e.t.Helper()
	e.exec(`insert into public.items (id, name, qty, price, tags, data, status, created_at, note) values
	  (1, 'alpha',        1, 1.50, '{a,b}', '{"k":"v","n":1}', 'new',  '2026-01-01T00:00:00.123456+00:00', null),
	  (2, 'beta',         2, null, '{b}',   '{"k":"w","n":2}', 'done', '2026-01-02T00:00:00+00:00', 'x, y'),
	  (3, 'gamma',        3, 3.00, '{}',    '{}',              null,   '2026-01-03T00:00:00+00:00', 'Hello World'),
	  (4, 'delta,quoted', 4, 2.00, '{c}',   '{"k":"v"}',       null,   '2026-01-04T00:00:00+00:00', null),
	  (5, 'Epsilon',      5, null, '{}',    '{}',              'new',  '2026-01-05T00:00:00+00:00', null)`)
	e.exec(`select setval(pg_get_serial_sequence('public.items', 'id'), 5)`)
}

// ids extracts the "id" of every row.
func ids(t *testing.T, r reply) []int {
	t.Helper()
	var out []int
	for _, row := range r.Rows(t) {
		out = append(out, int(row["id"].(float64)))
	}
	return out
}

func TestRESTFilters(t *testing.T) {
	e := newEnv(t)
	seedItems(e)
	cases := []struct {
		name  string
		query string
		want  []int
	}{
		{"all", "", []int{1, 2, 3, 4, 5}},
		{"eq", "qty=eq.2", []int{2}},
		{"neq", "qty=neq.2", []int{1, 3, 4, 5}},
		{"gt", "qty=gt.3", []int{4, 5}},
		{"gte", "qty=gte.3", []int{3, 4, 5}},
		{"lt", "qty=lt.2", []int{1}},
		{"lte", "qty=lte.2", []int{1, 2}},
		{"like with stars", "name=like.*ta*", []int{2, 4}},
		{"like is case sensitive", "name=like.*EPS*", nil},
		{"ilike", "name=ilike.*EPS*", []int{5}},
		{"match", "name=match.^[ab]", []int{1, 2}},
		{"imatch", "name=imatch.^EPS", []int{5}},
		{"is null", "note=is.null", []int{1, 4, 5}},
		{"is not_null", "note=is.not_null", []int{2, 3}},
		{"not is null", "note=not.is.null", []int{2, 3}},
		{"is NULL case-insensitive", "note=is.NULL", []int{1, 4, 5}},
		{"isdistinct", "status=isdistinct.new", []int{2, 3, 4}},
		{"in with quoted value", `name=in.(alpha,"delta,quoted")`, []int{1, 4}},
		{"not in", "name=not.in.(alpha,beta)", []int{3, 4, 5}},
		{"empty in", "name=in.()", nil},
		{"array contains", "tags=cs.{b}", []int{1, 2}},
		{"array contained", "tags=cd.{a,b}", []int{1, 2, 3, 5}},
		{"array overlaps", "tags=ov.{a,c}", []int{1, 4}},
		{"eq any", "qty=eq(any).{1,3}", []int{1, 3}},
		{"like all", "name=like(all).{*a*,*t*}", []int{2, 4}},
		{"json path text", "data->>k=eq.v", []int{1, 4}},
		{"json path jsonb compare", "data->n=gt.1", []int{2}},
		{"value with comma and space", "note=eq.x,%20y", []int{2}},
		{"full text search", "note=fts.hello", []int{3}},
		{"websearch with language", "note=wfts(english).hello%20world", []int{3}},
		{"or", "or=(qty.eq.1,qty.eq.5)", []int{1, 5}},
		{"nested and in or", "or=(qty.lt.2,and(qty.gt.3,status.eq.new))", []int{1, 5}},
		{"not.or", "not.or=(qty.lt.2,qty.gt.4)", []int{2, 3, 4}},
		{"and tree", "and=(qty.gte.2,qty.lte.3)", []int{2, 3}},
		{"or with quoted value and in", `or=(name.eq."delta,quoted",qty.in.(1,2))`, []int{1, 2, 4}},
		{"or with not inside", "or=(qty.not.lt.5,name.eq.alpha)", []int{1, 5}},
		{"repeated params on one column", "qty=gte.2&qty=lte.3", []int{2, 3}},
		{"filters and trees combined", "status=eq.new&or=(qty.eq.1,qty.eq.2)", []int{1}},
		{"timestamp range with encoded plus", "created_at=gte.2026-01-02T00:00:00%2B00:00&created_at=lt.2026-01-04T00:00:00%2B00:00", []int{2, 3}},
		{"timestamp microseconds", "created_at=eq.2026-01-01T00:00:00.123456%2B00:00", []int{1}},
		{"timestamp in and tree", "and=(created_at.gt.2026-01-01T00:00:00.123456%2B00:00,created_at.lte.2026-01-03T00:00:00%2B00:00)", []int{2, 3}},
		{"timestamp other offset", "created_at=eq.2026-01-02T02:00:00%2B02:00", []int{2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := "/items?select=id&order=id"
			if tc.query != "" {
				q += "&" + tc.query
			}
			r := e.do(req{Path: q})
			require.Equal(t, http.StatusOK, r.Status, r.Body)
			assert.Equal(t, tc.want, ids(t, r))
		})
	}
}

func TestRESTOrderAndSelect(t *testing.T) {
	e := newEnv(t)
	seedItems(e)
	orders := []struct {
		order string
		want  []int
	}{
		{"id.desc", []int{5, 4, 3, 2, 1}},
		{"price,id", []int{1, 4, 3, 2, 5}},
		{"price.desc.nullslast,id", []int{3, 4, 1, 2, 5}},
		{"price.asc.nullsfirst,id.desc", []int{5, 2, 1, 4, 3}},
		{"status.desc,qty.asc", []int{3, 4, 1, 5, 2}},
		{"data->>k.desc,id", []int{3, 5, 2, 1, 4}},
	}
	for _, tc := range orders {
		t.Run("order="+tc.order, func(t *testing.T) {
			r := e.do(req{Path: "/items?select=id&order=" + tc.order})
			require.Equal(t, http.StatusOK, r.Status, r.Body)
			assert.Equal(t, tc.want, ids(t, r))
		})
	}

	t.Run("select aliases casts and json paths", func(t *testing.T) {
		r := e.do(req{Path: "/items?select=id,label:name,qty::text,data->>k,first_tag:tags->0,data->n&id=eq.1"})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, []any{map[string]any{
			"id": float64(1), "label": "alpha", "qty": "1", "k": "v", "first_tag": "a", "n": float64(1),
		}}, r.JSON(t))
	})
	t.Run("select star returns rows as postgres renders them", func(t *testing.T) {
		r := e.do(req{Path: "/items?id=eq.1"})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.JSONEq(t, `[{"id":1,"name":"alpha","qty":1,"price":1.50,"tags":["a","b"],"data":{"k":"v","n":1},
			"status":"new","created_at":"2026-01-01T00:00:00.123456+00:00","note":null}]`, r.Body)
		assert.Contains(t, r.Body, `"created_at":"2026-01-01T00:00:00.123456+00:00"`)
		assert.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
	})
	t.Run("single object", func(t *testing.T) {
		r := e.do(req{Path: "/items?select=id,name&id=eq.2", Header: map[string]string{"Accept": "application/vnd.pgrst.object+json"}})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.JSONEq(t, `{"id":2,"name":"beta"}`, r.Body)
		assert.Equal(t, "application/vnd.pgrst.object+json; charset=utf-8", r.Header.Get("Content-Type"))
	})
	for _, tc := range []struct{ query, details string }{
		{"id=eq.99", "The result contains 0 rows"},
		{"id=lt.3", "The result contains 2 rows"},
	} {
		t.Run("single object with "+tc.details, func(t *testing.T) {
			r := e.do(req{Path: "/items?" + tc.query, Header: map[string]string{"Accept": "application/vnd.pgrst.object+json"}})
			require.Equal(t, http.StatusNotAcceptable, r.Status, r.Body)
			assert.Equal(t, map[string]any{"code": "PGRST116", "details": tc.details, "hint": nil,
				"message": "Cannot coerce the result to a single JSON object"}, r.Err(t))
		})
	}
	t.Run("nulls stripped", func(t *testing.T) {
		r := e.do(req{Path: "/items?select=id,note&id=eq.1", Header: map[string]string{"Accept": "application/vnd.pgrst.array+json;nulls=stripped"}})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.JSONEq(t, `[{"id":1}]`, r.Body)
	})
	t.Run("head", func(t *testing.T) {
		r := e.do(req{Method: http.MethodHead, Path: "/items?select=id", Header: map[string]string{"Prefer": "count=exact"}})
		require.Equal(t, http.StatusOK, r.Status)
		assert.Empty(t, r.Body)
		assert.Equal(t, "0-4/5", r.Header.Get("Content-Range"))
	})
}

func TestRESTPagination(t *testing.T) {
	e := newEnv(t)
	seedItems(e)
	cases := []struct {
		name         string
		query        string
		header       map[string]string
		status       int
		want         []int
		contentRange string
	}{
		{"no range", "", nil, 200, []int{1, 2, 3, 4, 5}, "0-4/*"},
		{"limit offset", "&limit=2&offset=1", nil, 200, []int{2, 3}, "1-2/*"},
		{"offset only", "&offset=3", nil, 200, []int{4, 5}, "3-4/*"},
		{"limit with count", "&limit=2", map[string]string{"Prefer": "count=exact"}, 206, []int{1, 2}, "0-1/5"},
		{"everything with count", "", map[string]string{"Prefer": "count=exact"}, 200, []int{1, 2, 3, 4, 5}, "0-4/5"},
		{"range header", "", map[string]string{"Range-Unit": "items", "Range": "1-3"}, 200, []int{2, 3, 4}, "1-3/*"},
		{"range header with count", "", map[string]string{"Range": "1-3", "Prefer": "count=exact"}, 206, []int{2, 3, 4}, "1-3/5"},
		{"open range header", "", map[string]string{"Range": "3-"}, 200, []int{4, 5}, "3-4/*"},
		{"range header and limit intersect", "&limit=2", map[string]string{"Range": "0-3"}, 200, []int{1, 2}, "0-1/*"},
		{"filtered count", "&qty=gt.1&limit=1", map[string]string{"Prefer": "count=exact"}, 206, []int{2}, "0-0/4"},
		{"planned count is exact here", "&limit=1", map[string]string{"Prefer": "count=planned"}, 206, []int{1}, "0-0/5"},
		{"empty page", "&qty=gt.10", nil, 200, nil, "*/*"},
		{"empty page with count", "&qty=gt.10", map[string]string{"Prefer": "count=exact"}, 200, nil, "*/0"},
		{"limit zero", "&limit=0", map[string]string{"Prefer": "count=exact"}, 206, nil, "*/5"},
		{"offset at the end", "&offset=5", map[string]string{"Prefer": "count=exact"}, 206, nil, "*/5"},
		{"garbage range header is ignored", "", map[string]string{"Range": "items=0-1"}, 200, []int{1, 2, 3, 4, 5}, "0-4/*"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{Path: "/items?select=id&order=id" + tc.query, Header: tc.header})
			require.Equal(t, tc.status, r.Status, r.Body)
			assert.Equal(t, tc.want, ids(t, r))
			assert.Equal(t, tc.contentRange, r.Header.Get("Content-Range"))
		})
	}

	rangeErrors := []struct {
		name    string
		query   string
		header  map[string]string
		details string
	}{
		{"offset past the end", "&offset=10", map[string]string{"Prefer": "count=exact"}, "An offset of 10 was requested, but there are only 5 rows."},
		{"lower above upper", "", map[string]string{"Range": "3-1"}, "The lower boundary must be lower than or equal to the upper boundary in the Range header."},
		{"negative limit", "&limit=-1", nil, "Limit should be greater than or equal to zero."},
	}
	for _, tc := range rangeErrors {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{Path: "/items?select=id&order=id" + tc.query, Header: tc.header})
			require.Equal(t, http.StatusRequestedRangeNotSatisfiable, r.Status, r.Body)
			assert.Equal(t, map[string]any{"code": "PGRST103", "details": tc.details, "hint": nil,
				"message": "Requested range not satisfiable"}, r.Err(t))
		})
	}

	t.Run("max rows cap is applied silently", func(t *testing.T) {
		e.exec(`insert into public.items (name) select 'bulk' || g from generate_series(1, 60) g`)
		r := e.do(req{Path: "/items?select=id&order=id", Header: map[string]string{"Prefer": "count=exact"}})
		require.Equal(t, http.StatusPartialContent, r.Status)
		assert.Len(t, r.Rows(t), 50)
		assert.Equal(t, "0-49/65", r.Header.Get("Content-Range"))

		r = e.do(req{Path: "/items?select=id&order=id&limit=500&offset=40"})
		require.Equal(t, http.StatusOK, r.Status)
		got := ids(t, r)
		assert.Len(t, got, 25)
		assert.Equal(t, "40-64/*", r.Header.Get("Content-Range"))

		r = e.do(req{Path: "/items?select=id&order=id", Header: map[string]string{"Range": "10-100"}})
		assert.Len(t, r.Rows(t), 50)
		assert.Equal(t, "10-59/*", r.Header.Get("Content-Range"))
	})

	t.Run("keyset pagination with timestamps", func(t *testing.T) {
		var seen []int
		after := "2025-12-31T00:00:00%2B00:00"
		for range 10 {
			r := e.do(req{Path: "/items?select=id,created_at&order=created_at.asc,id.asc&limit=2&id=lte.5&created_at=gt." + after})
			require.Equal(t, http.StatusOK, r.Status, r.Body)
			rows := r.Rows(t)
			if len(rows) == 0 {
				break
			}
			for _, row := range rows {
				seen = append(seen, int(row["id"].(float64)))
			}
			after = strings.ReplaceAll(rows[len(rows)-1]["created_at"].(string), "+", "%2B")
		}
		assert.Equal(t, []int{1, 2, 3, 4, 5}, seen)
	})
}

func TestRESTReadErrors(t *testing.T) {
	e := newEnv(t)
	seedItems(e)
	cases := []struct {
		name   string
		path   string
		header map[string]string
		status int
		code   string
		msg    string
	}{
		{"unknown operator", "/items?qty=foo.1", nil, 400, "PGRST100", `"failed to parse filter (foo.1)" (line 1, column 1)`},
		{"missing operator", "/items?qty=1", nil, 400, "PGRST100", `"failed to parse filter (1)" (line 1, column 1)`},
		{"bad is value", "/items?note=is.nothing", nil, 400, "PGRST100", `"failed to parse filter (is.nothing)" (line 1, column 4)`},
		{"bad order", "/items?order=id.ac", nil, 400, "PGRST100", `"failed to parse order (id.ac)" (line 1, column 4)`},
		{"bad logic tree", "/items?or=(qty.eq.1", nil, 400, "PGRST100", `"failed to parse logic tree (or(qty.eq.1)" (line 1, column 12)`},
		{"unknown column in filter", "/items?nope=eq.1", nil, 400, "42703", "column items.nope does not exist"},
		{"unknown column in select", "/items?select=id,nope", nil, 400, "42703", "column items.nope does not exist"},
		{"value of the wrong type", "/items?qty=eq.abc", nil, 400, "22P02", `invalid input syntax for type integer: "abc"`},
		{"unknown table", "/itemz", nil, 404, "PGRST205", "Could not find the table 'public.itemz' in the schema cache"},
		{"unknown schema", "/items", map[string]string{"Accept-Profile": "private"}, 406, "PGRST106", "Invalid schema: private"},
		{"invalid path", "/items/1", nil, 404, "PGRST125", "Invalid path specified in request URL"},
		{"aggregates are disabled", "/items?select=count()", nil, 400, "PGRST123", "Use of aggregate functions is not allowed"},
		{"embedding is not supported", "/items?select=*,children(*)", nil, 400, "PGRST127", "Feature not implemented"},
		{"filter on an embedded resource", "/items?children.id=eq.1", nil, 400, "PGRST108", "'children' is not an embedded resource in this request"},
		{"unacceptable media type", "/items", map[string]string{"Accept": "text/html"}, 406, "PGRST107", "None of these media types are available: text/html"},
		{"strict handling", "/items", map[string]string{"Prefer": "handling=strict, foo=bar"}, 400, "PGRST122", "Invalid preferences given with handling=strict"},
		{"unsupported method", "/items", map[string]string{"X-Method": "TRACE"}, 405, "PGRST117", "Unsupported HTTP method: TRACE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodGet
			if m, ok := tc.header["X-Method"]; ok {
				method = m
			}
			r := e.do(req{Method: method, Path: tc.path, Header: tc.header})
			require.Equal(t, tc.status, r.Status, r.Body)
			body := r.Err(t)
			assert.Equal(t, tc.code, body["code"], r.Body)
			assert.Equal(t, tc.msg, body["message"], r.Body)
			assert.Contains(t, body, "details")
			assert.Contains(t, body, "hint")
			assert.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
			assert.Equal(t, "PostgREST; error="+tc.code, r.Header.Get("Proxy-Status"))
		})
	}

	t.Run("table hint", func(t *testing.T) {
		r := e.do(req{Path: "/itemz"})
		assert.Equal(t, "Perhaps you meant the table 'public.items'", r.Err(t)["hint"])
		r = e.do(req{Path: "/zzzzzzzz"})
		assert.Nil(t, r.Err(t)["hint"])
	})
	t.Run("parse error details", func(t *testing.T) {
		r := e.do(req{Path: "/items?qty=foo.1"})
		assert.Equal(t, `unexpected "f" expecting "not" or operator (eq, gt, ...)`, r.Err(t)["details"])
	})
	t.Run("column hint from postgres", func(t *testing.T) {
		r := e.do(req{Path: "/items?select=nmae"})
		assert.Contains(t, r.Err(t)["hint"], `Perhaps you meant to reference the column "items.name"`)
	})
}
