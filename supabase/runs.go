package supabase

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/supabase-community/postgrest-go"
)

// RunsTable names the table of workflow runs the daemon watches (MeshHook's
// public.workflow_runs by default) and its key columns.
type RunsTable struct {
	Schema          string // "" = the store's schema
	Table           string // e.g. "workflow_runs"
	IDColumn        string // e.g. "id"
	UpdatedAtColumn string // e.g. "updated_at"
}

// Validate checks that every name is a plain identifier.
func (t RunsTable) Validate() error {
	if t.Schema != "" {
		if err := checkIdent("runs schema", t.Schema); err != nil {
			return err
		}
	}
	if err := checkIdent("runs table", t.Table); err != nil {
		return err
	}
	if err := checkIdent("runs id column", t.IDColumn); err != nil {
		return err
	}
	return checkIdent("runs updated_at column", t.UpdatedAtColumn)
}

// GetRow returns one run row by id, with numbers as json.Number. found is
// false if there is no such row.
func (s *Store) GetRow(ctx context.Context, t RunsTable, id string) (row map[string]any, found bool, err error) {
	if err := t.Validate(); err != nil {
		return nil, false, err
	}
	raw, err := s.firstRow(ctx, "get "+t.Table+" row", t.Schema, t.Table, "*",
		func(fb *postgrest.FilterBuilder) *postgrest.FilterBuilder { return fb.Eq(t.IDColumn, id) })
	if errorsIsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	row, err = decodeObject(raw)
	if err != nil {
		return nil, false, fmt.Errorf("supabase: get %s row: %w", t.Table, err)
	}
	return row, true, nil
}

// RowsWhere calls fn for every run row whose column equals one of values
// (for example status in running, paused), in id order, paging past the
// server's row cap. An error from fn stops the scan and is returned
// unchanged. No values means no rows.
func (s *Store) RowsWhere(ctx context.Context, t RunsTable, column string, values []string, fn func(row map[string]any) error) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if err := checkIdent("filter column", column); err != nil {
		return err
	}
	if len(values) == 0 {
		return nil
	}
	list := inList(values)
	return s.scan(ctx, keysetQuery{
		op:      fmt.Sprintf("list %s where %s in %s", t.Table, column, list),
		schema:  t.Schema,
		table:   t.Table,
		columns: "*",
		keys:    []string{t.IDColumn},
		filter: func(fb *postgrest.FilterBuilder) *postgrest.FilterBuilder {
			return fb.Filter(column, "in", list)
		},
	}, func(row map[string]any, _ json.RawMessage) error { return fn(row) })
}

// WorkflowDefinition is the part of a MeshHook workflow_definitions row (one
// version of a workflow) that alerts need.
type WorkflowDefinition struct {
	ID        string
	ProjectID string
	Slug      string
	Name      string
	Version   int
}

// GetWorkflowDefinition returns one workflow_definitions row by id (in the
// store's schema). found is false if there is no such row.
func (s *Store) GetWorkflowDefinition(ctx context.Context, id string) (WorkflowDefinition, bool, error) {
	const op = "get workflow definition"
	raw, err := s.firstRow(ctx, op, "", "workflow_definitions", "id,project_id,slug,name,version",
		func(fb *postgrest.FilterBuilder) *postgrest.FilterBuilder { return fb.Eq("id", id) })
	if errorsIsNotFound(err) {
		return WorkflowDefinition{}, false, nil
	}
	if err != nil {
		return WorkflowDefinition{}, false, err
	}
	d, err := newRowDecoder("workflow definition", raw)
	if err != nil {
		return WorkflowDefinition{}, false, fmt.Errorf("supabase: %s: %w", op, err)
	}
	var (
		wid, project, slug, name nullString
		version                  flexInt
	)
	d.field("id", &wid)
	d.field("project_id", &project)
	d.field("slug", &slug)
	d.field("name", &name)
	d.field("version", &version)
	if err := d.err(); err != nil {
		return WorkflowDefinition{}, false, fmt.Errorf("supabase: %s: %w", op, err)
	}
	return WorkflowDefinition{ID: string(wid), ProjectID: string(project), Slug: string(slug),
		Name: string(name), Version: int(version)}, true, nil
}
