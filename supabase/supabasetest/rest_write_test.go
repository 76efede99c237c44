package supabasetest

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// count returns the number of rows matching a SQL condition.
func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	require.NoError(e.t, e.db.Pool.QueryRow(ctx, "select count(*) from "+sql, args...).Scan(&n))
	return n
}

func prefer(v string) map[string]string { return map[string]string{"Prefer": v} }

func TestRESTInsert(t *testing.T) {
	e := newEnv(t)
	seedItems(e)

	t.Run("minimal by default", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/items", Body: `{"name":"m1"}`})
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.Empty(t, r.Body)
		assert.Equal(t, "*/*", r.Header.Get("Content-Range"))
		assert.Empty(t, r.Header.Get("Content-Type"))
		assert.Empty(t, r.Header.Get("Location"))
		assert.Equal(t, 1, e.count("public.items where name = 'm1'"))
	})
	t.Run("representation gets defaults for missing keys", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/items?select=name,qty,tags,data,note", Body: `{"name":"r1","note":null}`,
			Header: prefer("return=representation")})
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.JSONEq(t, `[{"name":"r1","qty":0,"tags":[],"data":{},"note":null}]`, r.Body)
		assert.Equal(t, "return=representation", r.Header.Get("Preference-Applied"))
		assert.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
	})
	t.Run("array of objects with json values", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/items?select=name,tags,data", Body: `[{"name":"a1","tags":["x","y"],"data":{"deep":[1,{"z":null}]}},{"name":"a2","tags":[],"data":{}}]`,
			Header: prefer("return=representation,count=exact")})
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.JSONEq(t, `[{"name":"a1","tags":["x","y"],"data":{"deep":[1,{"z":null}]}},{"name":"a2","tags":[],"data":{}}]`, r.Body)
		assert.Equal(t, "*/2", r.Header.Get("Content-Range"))
	})
	t.Run("headers-only gives Location", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/items", Body: `{"id":100,"name":"loc"}`, Header: prefer("return=headers-only")})
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.Equal(t, "/items?id=eq.100", r.Header.Get("Location"))
		assert.Empty(t, r.Body)
	})
	t.Run("columns parameter: missing keys are null", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: `/items?columns="name","note"&select=name,note,qty`,
			Body: `[{"name":"c1"},{"name":"c2","note":"n"}]`, Header: prefer("return=representation")})
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.JSONEq(t, `[{"name":"c1","note":null,"qty":0},{"name":"c2","note":"n","qty":0}]`, r.Body)
	})
	t.Run("columns parameter with missing=default", func(t *testing.T) {
		body := `[{"name":"d1"},{"name":"d2","qty":3}]`
		r := e.do(req{Method: http.MethodPost, Path: "/items?columns=id,name&select=name", Body: `[{"name":"i1"},{"id":400,"name":"i2"}]`,
			Header: prefer("missing=default, return=representation")})
		require.Equal(t, http.StatusCreated, r.Status, r.Body) // identity column default
		assert.Equal(t, 1, e.count("public.items where id = 400"))

		r = e.do(req{Method: http.MethodPost, Path: "/items?columns=name,qty", Body: body})
		require.Equal(t, http.StatusBadRequest, r.Status, r.Body)
		assert.Equal(t, "23502", r.Err(t)["code"])

		r = e.do(req{Method: http.MethodPost, Path: "/items?columns=name,qty&select=name,qty", Body: body,
			Header: prefer("missing=default, return=representation")})
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.JSONEq(t, `[{"name":"d1","qty":0},{"name":"d2","qty":3}]`, r.Body)
		assert.Equal(t, "missing=default, return=representation", r.Header.Get("Preference-Applied"))
	})
	t.Run("empty array inserts nothing", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/items", Body: `[]`, Header: prefer("return=representation")})
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.Equal(t, "[]", r.Body)
	})
	t.Run("first Prefer occurrence wins across headers", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/items?select=name", Body: `{"name":"p1"}`,
			Extra: http.Header{"Prefer": {"return=representation", "return=minimal, count=exact", "count=planned"}}})
		require.Equal(t, http.StatusCreated, r.Status)
		assert.JSONEq(t, `[{"name":"p1"}]`, r.Body)
		assert.Equal(t, "*/1", r.Header.Get("Content-Range"))
		assert.Equal(t, "return=representation, count=exact", r.Header.Get("Preference-Applied"))
	})

	errorsCases := []struct {
		name, path, body string
		status           int
		code, message    string
		details          any
	}{
		{"malformed json", "/items", `{"name":`, 400, "PGRST102", "Empty or invalid json", nil},
		{"empty body", "/items", ``, 400, "PGRST102", "Empty or invalid json", nil},
		{"keys differ", "/items", `[{"name":"a"},{"name":"b","qty":1}]`, 400, "PGRST102", "All object keys must match", nil},
		{"unknown column", "/items", `{"name":"x","nope":1}`, 400, "PGRST204", "Could not find the 'nope' column of 'items' in the schema cache", nil},
		{"not null", "/items", `{"qty":1}`, 400, "23502", `null value in column "name" of relation "items" violates not-null constraint`, nil},
		{"check constraint", "/items", `{"name":"x","status":"weird"}`, 400, "23514", `new row for relation "items" violates check constraint "items_status_check"`, nil},
		{"bad value", "/items", `{"name":"x","qty":"many"}`, 400, "22P02", `invalid input syntax for type integer: "many"`, nil},
		{"unique violation", "/items", `{"id":1,"name":"dup"}`, 409, "23505", `duplicate key value violates unique constraint "items_pkey"`, "Key (id)=(1) already exists."},
		{"foreign key violation", "/children", `{"item_id":999}`, 409, "23503", `insert or update on table "children" violates foreign key constraint "children_item_id_fkey"`,
			`Key (item_id)=(999) is not present in table "items".`},
	}
	for _, tc := range errorsCases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{Method: http.MethodPost, Path: tc.path, Body: tc.body, Header: map[string]string{"Content-Type": "application/json"}})
			require.Equal(t, tc.status, r.Status, r.Body)
			body := r.Err(t)
			assert.Equal(t, tc.code, body["code"])
			assert.Equal(t, tc.message, body["message"])
			if tc.details != nil {
				assert.Equal(t, tc.details, body["details"])
				assert.Nil(t, body["hint"])
			}
		})
	}
	t.Run("content type not acceptable", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/items", Header: map[string]string{"Content-Type": "text/plain"}})
		require.Equal(t, http.StatusBadRequest, r.Status, r.Body)
		assert.Equal(t, "Content-Type not acceptable: text/plain", r.Err(t)["message"])
	})
	t.Run("form encoded body", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/items?select=name,qty", Body: "name=form&qty=7",
			Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Prefer": "return=representation"}})
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.JSONEq(t, `[{"name":"form","qty":7}]`, r.Body)
	})
}

func TestRESTUpsertAndClaims(t *testing.T) {
	e := newEnv(t)
	seedItems(e)

	t.Run("merge-duplicates on the primary key", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/items?select=id,name,qty", Body: `{"id":1,"name":"alpha2","qty":10}`,
			Header: prefer("resolution=merge-duplicates,return=representation")})
		require.Equal(t, http.StatusOK, r.Status, r.Body) // nothing inserted
		assert.JSONEq(t, `[{"id":1,"name":"alpha2","qty":10}]`, r.Body)
		assert.Equal(t, "resolution=merge-duplicates, return=representation", r.Header.Get("Preference-Applied"))

		r = e.do(req{Method: http.MethodPost, Path: "/items?select=id,name", Body: `[{"id":1,"name":"alpha3"},{"id":200,"name":"new"}]`,
			Header: prefer("resolution=merge-duplicates,return=representation")})
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.JSONEq(t, `[{"id":1,"name":"alpha3"},{"id":200,"name":"new"}]`, r.Body)
	})
	t.Run("merge-duplicates on a unique key keeps unsupplied columns", func(t *testing.T) {
		body := `{"config_id":"00000000-0000-0000-0000-0000000000aa","run_id":"r1","event":"failed","attempts":1}`
		r := e.do(req{Method: http.MethodPost, Path: "/claims?on_conflict=config_id,run_id,event", Body: body,
			Header: prefer("resolution=merge-duplicates")})
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		body = `{"config_id":"00000000-0000-0000-0000-0000000000aa","run_id":"r1","event":"failed","attempts":2}`
		r = e.do(req{Method: http.MethodPost, Path: "/claims?on_conflict=config_id,run_id,event&select=attempts", Body: body,
			Header: prefer("resolution=merge-duplicates,return=representation")})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.JSONEq(t, `[{"attempts":2}]`, r.Body)
		assert.Equal(t, 1, e.count("public.claims where run_id = 'r1'"))
	})
	t.Run("ignore-duplicates returns only inserted rows", func(t *testing.T) {
		claim := func(run string) reply {
			return e.do(req{Method: http.MethodPost, Path: "/claims?on_conflict=config_id,run_id,event&select=run_id,event",
				Body:   fmt.Sprintf(`{"config_id":"00000000-0000-0000-0000-0000000000bb","run_id":%q,"event":"failed"}`, run),
				Header: prefer("resolution=ignore-duplicates,return=representation")})
		}
		r := claim("r2")
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.JSONEq(t, `[{"run_id":"r2","event":"failed"}]`, r.Body)
		assert.Equal(t, "resolution=ignore-duplicates, return=representation", r.Header.Get("Preference-Applied"))
		r = claim("r2")
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.Equal(t, "[]", r.Body)
	})
	t.Run("concurrent claims: exactly one wins", func(t *testing.T) {
		const n = 8
		results := make([]reply, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				results[i] = e.do(req{Method: http.MethodPost, Path: "/claims?on_conflict=config_id,run_id,event",
					Body:   `{"config_id":"00000000-0000-0000-0000-0000000000cc","run_id":"race","event":"stalled"}`,
					Header: prefer("resolution=ignore-duplicates,return=representation")})
			})
		}
		wg.Wait()
		won := 0
		for _, r := range results {
			require.Equal(t, http.StatusCreated, r.Status, r.Body)
			if len(r.Rows(t)) == 1 {
				won++
			}
		}
		assert.Equal(t, 1, won)
	})
	t.Run("on_conflict without a matching constraint", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/claims?on_conflict=run_id", Body: `{"config_id":"00000000-0000-0000-0000-0000000000dd","run_id":"x","event":"e"}`,
			Header: prefer("resolution=ignore-duplicates")})
		require.Equal(t, http.StatusBadRequest, r.Status, r.Body)
		assert.Equal(t, "42P10", r.Err(t)["code"])
	})
	t.Run("without resolution a duplicate is a conflict", func(t *testing.T) {
		body := `{"config_id":"00000000-0000-0000-0000-0000000000bb","run_id":"r2","event":"failed"}`
		r := e.do(req{Method: http.MethodPost, Path: "/claims?on_conflict=config_id,run_id,event", Body: body})
		require.Equal(t, http.StatusConflict, r.Status, r.Body)
		assert.Equal(t, `duplicate key value violates unique constraint "claims_claim_key"`, r.Err(t)["message"])
	})
	t.Run("put upserts one row by primary key", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPut, Path: "/items?id=eq.300", Body: `{"id":300,"name":"put"}`})
		require.Equal(t, http.StatusNoContent, r.Status, r.Body)
		r = e.do(req{Method: http.MethodPut, Path: "/items?id=eq.300&select=id,name", Body: `{"id":300,"name":"put2"}`, Header: prefer("return=representation")})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.JSONEq(t, `[{"id":300,"name":"put2"}]`, r.Body)
		r = e.do(req{Method: http.MethodPut, Path: "/items?id=eq.301", Body: `{"id":302,"name":"x"}`})
		require.Equal(t, http.StatusBadRequest, r.Status, r.Body)
		assert.Equal(t, "PGRST115", r.Err(t)["code"])
		r = e.do(req{Method: http.MethodPut, Path: "/items?name=eq.x", Body: `{"id":303,"name":"x"}`})
		require.Equal(t, http.StatusMethodNotAllowed, r.Status, r.Body)
		assert.Equal(t, "PGRST105", r.Err(t)["code"])
		assert.Equal(t, 0, e.count("public.items where id in (301, 302, 303)"))
	})
}

func TestRESTUpdateDelete(t *testing.T) {
	e := newEnv(t)
	seedItems(e)

	t.Run("patch minimal", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPatch, Path: "/items?id=eq.1", Body: `{"qty":7}`})
		require.Equal(t, http.StatusNoContent, r.Status, r.Body)
		assert.Equal(t, "0-0/*", r.Header.Get("Content-Range"))
		assert.Equal(t, 1, e.count("public.items where id = 1 and qty = 7"))
	})
	t.Run("patch representation with logic filters", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPatch, Path: "/items?or=(id.eq.2,id.eq.3)&select=id,note&order=id",
			Body: `{"note":"patched","status":null}`, Header: prefer("return=representation,count=exact")})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.JSONEq(t, `[{"id":2,"note":"patched"},{"id":3,"note":"patched"}]`, r.Body)
		assert.Equal(t, "0-1/2", r.Header.Get("Content-Range"))
	})
	t.Run("patch without matches", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPatch, Path: "/items?id=eq.999", Body: `{"qty":1}`, Header: prefer("count=exact")})
		require.Equal(t, http.StatusNoContent, r.Status, r.Body)
		assert.Equal(t, "*/0", r.Header.Get("Content-Range"))
		r = e.do(req{Method: http.MethodPatch, Path: "/items?id=eq.999", Body: `{"qty":1}`, Header: prefer("return=representation")})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, "[]", r.Body)
	})
	t.Run("patch with timestamp filter", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPatch, Path: "/items?created_at=lt.2026-01-02T00:00:00.000001%2B00:00&select=id",
			Body: `{"note":"early"}`, Header: prefer("return=representation")})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.JSONEq(t, `[{"id":1},{"id":2}]`, r.Body)
	})
	t.Run("patch unknown column", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPatch, Path: "/items?id=eq.1", Body: `{"nope":1}`})
		require.Equal(t, http.StatusBadRequest, r.Status, r.Body)
		assert.Equal(t, "PGRST204", r.Err(t)["code"])
	})
	t.Run("singular patch of two rows rolls back", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPatch, Path: "/items?id=in.(4,5)", Body: `{"note":"single"}`,
			Header: map[string]string{"Accept": "application/vnd.pgrst.object+json", "Prefer": "return=representation"}})
		require.Equal(t, http.StatusNotAcceptable, r.Status, r.Body)
		assert.Equal(t, "PGRST116", r.Err(t)["code"])
		assert.Equal(t, 0, e.count("public.items where note = 'single'"))
	})
	t.Run("delete with max-affected rolls back", func(t *testing.T) {
		r := e.do(req{Method: http.MethodDelete, Path: "/items?id=in.(4,5)", Header: prefer("handling=strict, max-affected=1")})
		require.Equal(t, http.StatusBadRequest, r.Status, r.Body)
		assert.Equal(t, map[string]any{"code": "PGRST124", "details": "The query affects 2 rows", "hint": nil,
			"message": "Query result exceeds max-affected preference constraint"}, r.Err(t))
		assert.Equal(t, 2, e.count("public.items where id in (4, 5)"))
	})
	t.Run("delete representation", func(t *testing.T) {
		r := e.do(req{Method: http.MethodDelete, Path: "/items?id=eq.5&select=id,name", Header: prefer("return=representation,count=exact")})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.JSONEq(t, `[{"id":5,"name":"Epsilon"}]`, r.Body)
		assert.Equal(t, "*/1", r.Header.Get("Content-Range"))
	})
	t.Run("delete minimal", func(t *testing.T) {
		r := e.do(req{Method: http.MethodDelete, Path: "/items?id=eq.4"})
		require.Equal(t, http.StatusNoContent, r.Status, r.Body)
		assert.Equal(t, 0, e.count("public.items where id = 4"))
	})
	t.Run("unknown schema in Content-Profile", func(t *testing.T) {
		r := e.do(req{Method: http.MethodDelete, Path: "/items?id=eq.1", Header: map[string]string{"Content-Profile": "nope"}})
		require.Equal(t, http.StatusNotAcceptable, r.Status, r.Body)
		assert.Equal(t, map[string]any{"code": "PGRST106", "details": nil, "hint": "Only the following schemas are exposed: public",
			"message": "Invalid schema: nope"}, r.Err(t))
	})
}
