package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProjects_NamesForWhoMaySeeThem lists the projects with their names
// and workflows (named after the newest version): all of them for the
// operator, their own for a user.
func TestProjects_NamesForWhoMaySeeThem(t *testing.T) {
	e := newEnv(t)
	e.exec(`update public.workflow_definitions set name = 'Billing (old)' where id = $1`, workflowA1)

	r := e.do(asOperator, http.MethodGet, "/api/projects", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, true, r.field("available"))
	assert.Equal(t, false, r.field("truncated"))
	assert.Equal(t, []any{
		map[string]any{"id": projectA, "name": "Project A", "workflows": []any{map[string]any{"slug": "billing", "name": "Billing"}}},
		map[string]any{"id": projectB, "name": "Project B", "workflows": []any{map[string]any{"slug": "reports", "name": "Reports"}}},
	}, r.field("projects"), "each workflow is named after its newest version (v3)")

	r = e.do(asUser(ownerB), http.MethodGet, "/api/projects", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, []any{
		map[string]any{"id": projectB, "name": "Project B", "workflows": []any{map[string]any{"slug": "reports", "name": "Reports"}}},
	}, r.field("projects"))

	r = e.do(asNobody, http.MethodGet, "/api/projects", nil)
	assert.Equal(t, http.StatusUnauthorized, r.status)
}
