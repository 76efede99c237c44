package supabase

import (
	"context"
	"encoding/json"
	"errors"
)

// ProjectName is a MeshHook project's id and name.
type ProjectName struct {
	ID, Name string
}

// WorkflowName is the name of one version of a MeshHook workflow
// (workflow_definitions), by project and slug.
type WorkflowName struct {
	ProjectID, Slug, Name string
	Version               int
}

// errEnoughRows stops a scan once it has read as many rows as asked for.
var errEnoughRows = errors.New("enough rows")

// ProjectNames returns up to limit projects of MeshHook's projects table in
// id order (in the store's schema), and whether more exist. Row-level
// security applies: a user's context (WithUserToken) reads their own
// projects. IsNotFound(err) is true when the table does not exist.
func (s *Store) ProjectNames(ctx context.Context, limit int) ([]ProjectName, bool, error) {
	var out []ProjectName
	more := false
	err := s.scan(ctx, keysetQuery{op: "list project names", table: "projects", columns: "id,name", keys: []string{"id"}},
		func(_ map[string]any, raw json.RawMessage) error {
			if len(out) >= limit {
				more = true
				return errEnoughRows
			}
			var p struct{ ID, Name string }
			if err := json.Unmarshal(raw, &p); err != nil {
				return err
			}
			out = append(out, ProjectName{ID: p.ID, Name: p.Name})
			return nil
		})
	if err != nil && !errors.Is(err, errEnoughRows) {
		return nil, false, err
	}
	return out, more, nil
}

// WorkflowNames returns up to limit rows of MeshHook's workflow_definitions
// (every version of every workflow) in id order, and whether more exist.
// Row-level security applies as for ProjectNames.
func (s *Store) WorkflowNames(ctx context.Context, limit int) ([]WorkflowName, bool, error) {
	var out []WorkflowName
	more := false
	err := s.scan(ctx, keysetQuery{op: "list workflow names", table: "workflow_definitions",
		columns: "id,project_id,slug,name,version", keys: []string{"id"}},
		func(_ map[string]any, raw json.RawMessage) error {
			if len(out) >= limit {
				more = true
				return errEnoughRows
			}
			var w struct {
				ProjectID string `json:"project_id"`
				Slug      string `json:"slug"`
				Name      string `json:"name"`
				Version   int    `json:"version"`
			}
			if err := json.Unmarshal(raw, &w); err != nil {
				return err
			}
			out = append(out, WorkflowName{ProjectID: w.ProjectID, Slug: w.Slug, Name: w.Name, Version: w.Version})
			return nil
		})
	if err != nil && !errors.Is(err, errEnoughRows) {
		return nil, false, err
	}
	return out, more, nil
}
