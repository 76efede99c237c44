package supabasetest

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRESTRPC(t *testing.T) {
	e := newEnv(t)
	seedItems(e)
	cases := []struct {
		name    string
		method  string
		path    string
		body    string
		header  map[string]string
		status  int
		want    string
		crange  string
		noCType bool
	}{
		{"scalar", "POST", "/rpc/add", `{"a":1,"b":2}`, nil, 200, `3`, "0-0/*", false},
		{"scalar by GET", "GET", "/rpc/add?a=40&b=2", "", nil, 200, `42`, "0-0/*", false},
		{"set of scalars with default argument", "POST", "/rpc/numbers", `{}`, nil, 200, `[1,2,3]`, "0-2/*", false},
		{"set of scalars with argument and limit", "POST", "/rpc/numbers?limit=2", `{"n":5}`, prefer("count=exact"), 206, `[1,2]`, "0-1/5", false},
		{"empty body means no arguments", "POST", "/rpc/numbers", ``, nil, 200, `[1,2,3]`, "0-2/*", false},
		{"set of rows filtered and ordered", "GET", "/rpc/items_named?pattern=%25a%25&select=id,name&qty=gt.1&order=id.desc", "", nil, 200,
			`[{"id":4,"name":"delta,quoted"},{"id":3,"name":"gamma"},{"id":2,"name":"beta"}]`, "0-2/*", false},
		{"single row", "POST", "/rpc/one_item?select=id,name", `{"p_id":2}`, nil, 200, `{"id":2,"name":"beta"}`, "0-0/*", false},
		{"single row missing", "POST", "/rpc/one_item?select=id", `{"p_id":99}`, nil, 200, `{"id":null}`, "0-0/*", false},
		{"scalar as single object", "POST", "/rpc/add", `{"a":1,"b":1}`, map[string]string{"Accept": "application/vnd.pgrst.object+json"}, 200, `2`, "0-0/*", false},
		{"void", "POST", "/rpc/touch", `{"p_id":1}`, nil, 204, ``, "0-0/*", true},
		{"single unnamed json parameter", "POST", "/rpc/echo_json", `{"x":[1,2],"y":null}`, nil, 200, `{"x":[1,2],"y":null}`, "0-0/*", false},
		{"form arguments", "POST", "/rpc/add", `a=2&b=3`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 200, `5`, "0-0/*", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{Method: tc.method, Path: tc.path, Body: tc.body, Header: tc.header})
			require.Equal(t, tc.status, r.Status, r.Body)
			if tc.want != "" {
				assert.JSONEq(t, tc.want, r.Body)
			} else {
				assert.Empty(t, r.Body)
			}
			assert.Equal(t, tc.crange, r.Header.Get("Content-Range"))
			if tc.noCType {
				assert.Empty(t, r.Header.Get("Content-Type"))
			}
		})
	}
	t.Run("void function wrote", func(t *testing.T) {
		assert.Equal(t, 1, e.count("public.items where id = 1 and qty = 2"))
	})

	errCases := []struct {
		name, method, path, body string
		status                   int
		code, message            string
		details, hint            any
	}{
		{"unknown function", "POST", "/rpc/nope", `{"a":1}`, 404, "PGRST202", "Could not find the function public.nope(a) in the schema cache",
			"Searched for the function public.nope with parameter a or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.", nil},
		{"function name typo", "POST", "/rpc/numbrs", `{}`, 404, "PGRST202", "Could not find the function public.numbrs without parameters in the schema cache",
			"Searched for the function public.numbrs without parameters or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
			"Perhaps you meant to call the function public.numbers"},
		{"wrong arguments", "GET", "/rpc/add?a=1&c=2", "", 404, "PGRST202", "Could not find the function public.add(a, c) in the schema cache",
			"Searched for the function public.add with parameters a, c, but no matches were found in the schema cache.",
			"Perhaps you meant to call the function public.add(a, b)"},
		{"raise exception", "POST", "/rpc/fail_with", `{"msg":"boom"}`, 400, "P0001", "boom", "the detail", "the hint"},
		{"volatile function by GET is read-only", "GET", "/rpc/touch?p_id=1", "", 405, "25006", "cannot execute UPDATE in a read-only transaction", nil, nil},
		{"argument of the wrong type", "POST", "/rpc/add", `{"a":"x","b":1}`, 400, "22P02", `invalid input syntax for type integer: "x"`, nil, nil},
		{"raise PGRST", "POST", "/rpc/raise_pgrst", `{}`, 402, "123", "Payment Required", "Quota exceeded", "Upgrade"},
		{"rpc method", "PATCH", "/rpc/add", `{}`, 405, "PGRST101", "Cannot use the PATCH method on RPC", nil, nil},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{Method: tc.method, Path: tc.path, Body: tc.body})
			require.Equal(t, tc.status, r.Status, r.Body)
			assert.Equal(t, map[string]any{"code": tc.code, "message": tc.message, "details": tc.details, "hint": tc.hint}, r.Err(t))
		})
	}
	t.Run("raise PGRST headers", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/rpc/raise_pgrst", Body: `{}`})
		assert.Equal(t, "Nerd Rage", r.Header.Get("X-Powered-By"))
	})
	t.Run("response GUCs", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/rpc/with_guc", Body: `{}`})
		require.Equal(t, http.StatusAccepted, r.Status, r.Body)
		assert.Equal(t, "yes", r.Header.Get("X-Custom"))
		assert.Equal(t, "1", r.Body)
	})
}

// TestRESTRPCJSONBArguments covers functions whose arguments are all jsonb,
// whose payload is read as jsonb at once: what they receive, and the
// errors, are those of PostgREST's json reading.
func TestRESTRPCJSONBArguments(t *testing.T) {
	e := newEnv(t)
	e.exec(`create function public.jb(a jsonb, b jsonb default null) returns jsonb language sql immutable as
	    $$ select jsonb_build_array(a, b, a is null) $$;
	  create function public.js(a json) returns json language sql immutable as $$ select a $$;
	  create table public.docs (id int generated always as identity primary key, d jsonb);`)
	cases := []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"values normalised as jsonb", "/rpc/jb", `{"a":{"x":1,"x":2,"y":[1.50,1e2]}}`, 200, `[{"x": 2, "y": [1.50, 100]}, null, false]`},
		{"a repeated key keeps its last value", "/rpc/jb", `{"a":1,"b":2,"a":3}`, 200, `[3, 2, false]`},
		{"JSON null is SQL NULL", "/rpc/jb", `{"a":null,"b":"s"}`, 200, `[null, "s", true]`},
		{"an array uses its first object", "/rpc/jb", `[{"a":1},{"a":2}]`, 200, `[1, null, false]`},
		{"json arguments are kept as sent", "/rpc/js", `{"a":{"x":1,"x":2, "y" : 1e2}}`, 200, `{"x":1,"x":2, "y" : 1e2}`},
		// ?columns= names the arguments: the body goes to the database
		// unparsed, and only those keys are passed.
		{"arguments named in columns", "/rpc/jb?columns=a,b", `{"b":[1],"a":{"x":1}}`, 200, `[{"x": 1}, [1], false]`},
		{"keys not named in columns are left out", "/rpc/jb?columns=a", `{"a":1,"b":2}`, 200, `[1, null, false]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{Method: http.MethodPost, Path: tc.path, Body: tc.body})
			require.Equal(t, tc.status, r.Status, r.Body)
			assert.Equal(t, tc.want, r.Body)
		})
	}
	t.Run("a value jsonb cannot hold", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/rpc/jb", Body: `{"a":"\u0000"}`})
		require.Equal(t, http.StatusBadRequest, r.Status, r.Body)
		assert.Equal(t, map[string]any{"code": "22P05", "message": "unsupported Unicode escape sequence",
			"details": `\u0000 cannot be converted to text.`, "hint": nil}, r.Err(t))
	})
	t.Run("a body not read before the database", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/rpc/jb?columns=a", Body: `{"a":`})
		require.Equal(t, http.StatusBadRequest, r.Status, r.Body)
		assert.Equal(t, map[string]any{"code": "22P02", "message": "invalid input syntax for type json",
			"details": "The input string ended unexpectedly.", "hint": nil}, r.Err(t))
	})
	t.Run("rows of a jsonb column", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/docs?select=d", Body: `[{"d":{"b":1,"a":2}},{"d":null}]`,
			Header: prefer("return=representation")})
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.JSONEq(t, `[{"d":{"a":2,"b":1}},{"d":null}]`, r.Body)
	})
}
