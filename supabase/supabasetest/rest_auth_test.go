package supabasetest

import (
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

const (
	userA    = "aaaaaaaa-0000-4000-8000-000000000001"
	userB    = "bbbbbbbb-0000-4000-8000-000000000002"
	projectA = "aaaaaaaa-1111-4000-8000-000000000001"
	projectB = "bbbbbbbb-1111-4000-8000-000000000002"
	defA     = "aaaaaaaa-2222-4000-8000-000000000001"
	defB     = "bbbbbbbb-2222-4000-8000-000000000002"
)

// seedProjects gives user A two runs in project A and user B one in project B.
func seedProjects(e *env) {
	e.t.Helper()
	e.exec(`insert into public.projects (id, owner, name) values ($1, $2, 'A'), ($3, $4, 'B')`, projectA, userA, projectB, userB)
	e.exec(`insert into public.workflow_definitions (id, project_id, slug, definition, name) values
	  ($1, $2, 'wf', '{}', 'WF A'), ($3, $4, 'wf', '{}', 'WF B')`, defA, projectA, defB, projectB)
	e.exec(`insert into public.workflow_runs (project_id, workflow_id, status) values
	  ($1, $2, 'running'), ($1, $2, 'failed'), ($3, $4, 'succeeded')`, projectA, defA, projectB, defB)
}

func signWith(secret string, claims jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		panic(err)
	}
	return s
}

func TestRESTAuth(t *testing.T) {
	e := newEnv(t)
	seedItems(e)
	wrongKey := signWith("not-the-secret", jwt.MapClaims{"role": "service_role"})

	t.Run("no api key", func(t *testing.T) {
		r := e.do(req{Path: "/items", Key: "-"})
		require.Equal(t, http.StatusUnauthorized, r.Status)
		assert.JSONEq(t, "{\"message\":\"No API key found in request\",\"hint\":\"No `apikey` request header or url param was found.\"}", r.Body)
	})
	t.Run("api key from another project", func(t *testing.T) {
		r := e.do(req{Path: "/items", Key: wrongKey})
		require.Equal(t, http.StatusUnauthorized, r.Status)
		assert.Equal(t, "Invalid API key", r.Err(t)["message"])
	})
	t.Run("api key as query parameter", func(t *testing.T) {
		r := e.do(req{Path: "/items?select=id&id=eq.1&apikey=" + pgtest.ServiceRoleKey(), Key: "-"})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.JSONEq(t, `[{"id":1}]`, r.Body)
		assert.Equal(t, "/items?id=eq.1&select=id", r.Header.Get("Content-Location"))
	})

	jwtErrors := []struct {
		name, token, code, message string
		details                    any
	}{
		{"expired", pgtest.UserToken(userA, -time.Hour), "PGRST303", "JWT expired", nil},
		{"wrong signature", wrongKey, "PGRST301", "No suitable key or wrong key type", "None of the keys was able to decode the JWT"},
		{"two parts", "abc.def", "PGRST301", "Expected 3 parts in JWT; got 2", nil},
		{"not yet valid", pgtest.SignClaims(map[string]any{"role": "authenticated", "nbf": time.Now().Add(time.Hour).Unix()}), "PGRST303", "JWT not yet valid", nil},
		{"exp not a number", pgtest.SignClaims(map[string]any{"role": "authenticated", "exp": "soon"}), "PGRST303", "The JWT 'exp' claim must be a number", nil},
	}
	for _, tc := range jwtErrors {
		t.Run("jwt "+tc.name, func(t *testing.T) {
			r := e.do(req{Path: "/items", Key: pgtest.AnonKey(), Token: tc.token})
			require.Equal(t, http.StatusUnauthorized, r.Status, r.Body)
			assert.Equal(t, map[string]any{"code": tc.code, "message": tc.message, "details": tc.details, "hint": nil}, r.Err(t))
			assert.Equal(t, `Bearer error="invalid_token", error_description="`+tc.message+`"`, r.Header.Get("WWW-Authenticate"))
		})
	}
	t.Run("empty bearer", func(t *testing.T) {
		r := e.do(req{Path: "/items", Key: pgtest.AnonKey(), Header: map[string]string{"Authorization": "Bearer "}})
		require.Equal(t, http.StatusUnauthorized, r.Status, r.Body)
		assert.Equal(t, "Empty JWT is sent in Authorization header", r.Err(t)["message"])
	})
	t.Run("expiry within the 30s leeway is accepted", func(t *testing.T) {
		r := e.do(req{Path: "/items?select=id&limit=1", Key: pgtest.AnonKey(), Token: pgtest.UserToken(userA, -5*time.Second)})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
	})
	t.Run("unknown role", func(t *testing.T) {
		r := e.do(req{Path: "/items", Token: pgtest.SignClaims(map[string]any{"role": "nobody"})})
		require.Equal(t, http.StatusUnauthorized, r.Status, r.Body)
		assert.Equal(t, "22023", r.Err(t)["code"])
		assert.Equal(t, `role "nobody" does not exist`, r.Err(t)["message"])
	})
	t.Run("permission denied is 401 for anon", func(t *testing.T) {
		r := e.do(req{Path: "/private_notes", Key: pgtest.AnonKey()})
		require.Equal(t, http.StatusUnauthorized, r.Status, r.Body)
		assert.Equal(t, map[string]any{"code": "42501", "message": "permission denied for table private_notes", "details": nil, "hint": nil}, r.Err(t))
		assert.Equal(t, "Bearer", r.Header.Get("WWW-Authenticate"))
	})
	t.Run("permission denied is 403 for users", func(t *testing.T) {
		r := e.do(req{Path: "/private_notes", Key: pgtest.AnonKey(), Token: pgtest.UserToken(userA, time.Hour)})
		require.Equal(t, http.StatusForbidden, r.Status, r.Body)
		assert.Equal(t, "42501", r.Err(t)["code"])
	})
	t.Run("claims reach the database", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/rpc/whoami", Key: pgtest.AnonKey(), Token: pgtest.UserToken(userA, time.Hour)})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.JSONEq(t, `{"role":"authenticated","sub":"`+userA+`","claim_role":"authenticated"}`, r.Body)
		r = e.do(req{Method: http.MethodPost, Path: "/rpc/whoami", Key: pgtest.AnonKey()})
		assert.JSONEq(t, `{"role":"anon","sub":null,"claim_role":"anon"}`, r.Body)
		r = e.do(req{Method: http.MethodPost, Path: "/rpc/whoami"})
		assert.JSONEq(t, `{"role":"service_role","sub":null,"claim_role":"service_role"}`, r.Body)
	})
	t.Run("token without role runs as anon", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/rpc/whoami", Token: pgtest.SignClaims(map[string]any{"sub": userB})})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.JSONEq(t, `{"role":"anon","sub":"`+userB+`","claim_role":"anon"}`, r.Body)
	})
}

func TestRESTRowLevelSecurity(t *testing.T) {
	e := newEnv(t)
	seedProjects(e)
	projectsOf := func(r reply) []string {
		var out []string
		for _, row := range r.Rows(t) {
			out = append(out, row["project_id"].(string))
		}
		sort.Strings(out)
		return out
	}
	tokenA := pgtest.UserToken(userA, time.Hour)

	t.Run("a user sees only runs of their projects", func(t *testing.T) {
		r := e.do(req{Path: "/workflow_runs?select=project_id", Key: pgtest.AnonKey(), Token: tokenA, Header: prefer("count=exact")})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, []string{projectA, projectA}, projectsOf(r))
		assert.Equal(t, "0-1/2", r.Header.Get("Content-Range"))
	})
	t.Run("service role sees everything", func(t *testing.T) {
		r := e.do(req{Path: "/workflow_runs?select=project_id"})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, []string{projectA, projectA, projectB}, projectsOf(r))
	})
	t.Run("anon sees nothing", func(t *testing.T) {
		r := e.do(req{Path: "/workflow_runs?select=project_id", Key: pgtest.AnonKey()})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, "[]", r.Body)
	})
	t.Run("updates of other projects match nothing", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPatch, Path: "/workflow_runs?project_id=eq." + projectB, Key: pgtest.AnonKey(), Token: tokenA,
			Body: `{"status":"canceled"}`, Header: prefer("return=representation")})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, "[]", r.Body)
		assert.Equal(t, 0, e.count("public.workflow_runs where status = 'canceled'"))
	})
	t.Run("inserting into another project is refused", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/workflow_runs", Key: pgtest.AnonKey(), Token: tokenA,
			Body: `{"project_id":"` + projectB + `","workflow_id":"` + defB + `","status":"running"}`})
		require.Equal(t, http.StatusForbidden, r.Status, r.Body)
		assert.Equal(t, map[string]any{"code": "42501", "details": nil, "hint": nil,
			"message": `new row violates row-level security policy for table "workflow_runs"`}, r.Err(t))
	})
	t.Run("inserting into an own project works", func(t *testing.T) {
		r := e.do(req{Method: http.MethodPost, Path: "/workflow_runs?select=status", Key: pgtest.AnonKey(), Token: tokenA,
			Body: `{"project_id":"` + projectA + `","workflow_id":"` + defA + `","status":"paused"}`, Header: prefer("return=representation")})
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.JSONEq(t, `[{"status":"paused"}]`, r.Body)
	})
}
