package alerts

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Mapping describes the watched runs table: its name, the columns the engine
// reads and which status values mean which state. MeshHook's workflow_runs is
// the default; any table with an id, a status and an updated-at column works.
type Mapping struct {
	Schema, Table    string
	IDColumn         string
	StatusColumn     string
	WorkflowColumn   string // optional: the run's workflow reference
	ProjectColumn    string // optional: the run's owner project
	StartedAtColumn  string // optional
	FinishedAtColumn string // optional
	UpdatedAtColumn  string
	// Statuses maps each status value of the table to a state.
	Statuses map[string]State
	// ResolveWorkflows is set when WorkflowColumn holds a MeshHook
	// workflow_definitions id (one version row) that must be resolved to the
	// workflow's slug; otherwise the column's value is the slug itself.
	ResolveWorkflows bool
}

// MeshHookMapping is the mapping for MeshHook's public.workflow_runs.
func MeshHookMapping() Mapping {
	return Mapping{
		Schema: "public", Table: "workflow_runs",
		IDColumn: "id", StatusColumn: "status", WorkflowColumn: "workflow_id", ProjectColumn: "project_id",
		StartedAtColumn: "started_at", FinishedAtColumn: "finished_at", UpdatedAtColumn: "updated_at",
		Statuses: map[string]State{
			"running": StateRunning, "paused": StatePaused, "succeeded": StateSucceeded,
			"failed": StateFailed, "canceled": StateCanceled,
		},
		ResolveWorkflows: true,
	}
}

// Columns are the columns the mapping reads from a run row.
func (m Mapping) Columns() []string {
	var cols []string
	for _, c := range []string{m.IDColumn, m.StatusColumn, m.WorkflowColumn, m.ProjectColumn,
		m.StartedAtColumn, m.FinishedAtColumn, m.UpdatedAtColumn} {
		if c != "" && !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	return cols
}

// Validate reports the first missing piece of the mapping.
func (m Mapping) Validate() error {
	var errs []error
	if m.Table == "" {
		errs = append(errs, errors.New("table: required"))
	}
	if m.IDColumn == "" {
		errs = append(errs, errors.New("id_column: required"))
	}
	if m.StatusColumn == "" {
		errs = append(errs, errors.New("status_column: required"))
	}
	if m.UpdatedAtColumn == "" {
		errs = append(errs, errors.New("updated_at_column: required"))
	}
	if len(m.Statuses) == 0 {
		errs = append(errs, errors.New("statuses: at least one status value must map to a state"))
	}
	return errors.Join(errs...)
}

// Run is one row of the watched table, read through a Mapping.
type Run struct {
	ID          string
	Status      string // the table's own value
	State       State
	ProjectID   string
	WorkflowRef string // the workflow column's value
	StartedAt   time.Time
	FinishedAt  time.Time
	UpdatedAt   time.Time
	Row         map[string]any // every column as received
}

// RunFromRow reads a run out of a row (a Realtime record or a REST row).
func (m Mapping) RunFromRow(row map[string]any) (Run, error) {
	id := scalarString(row[m.IDColumn])
	if id == "" {
		return Run{}, fmt.Errorf("row has no %s", m.IDColumn)
	}
	r := Run{ID: id, Row: row}
	r.Status = scalarString(row[m.StatusColumn])
	r.State = m.Statuses[r.Status]
	if m.ProjectColumn != "" {
		r.ProjectID = scalarString(row[m.ProjectColumn])
	}
	if m.WorkflowColumn != "" {
		r.WorkflowRef = scalarString(row[m.WorkflowColumn])
	}
	var err error
	if r.StartedAt, err = timeColumn(row, m.StartedAtColumn); err != nil {
		return Run{}, err
	}
	if r.FinishedAt, err = timeColumn(row, m.FinishedAtColumn); err != nil {
		return Run{}, err
	}
	if r.UpdatedAt, err = timeColumn(row, m.UpdatedAtColumn); err != nil {
		return Run{}, err
	}
	return r, nil
}

func timeColumn(row map[string]any, col string) (time.Time, error) {
	if col == "" {
		return time.Time{}, nil
	}
	v, ok := row[col]
	if !ok || v == nil {
		return time.Time{}, nil
	}
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("column %s: want a timestamp string, got %T", col, v)
	}
	t, err := ParseTimestamp(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("column %s: %w", col, err)
	}
	return t, nil
}

// ParseTimestamp parses the timestamp forms Postgres, PostgREST and Realtime
// emit: RFC 3339 with or without fraction, "+00:00" or "Z", or a space instead of T.
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	layouts := []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z07", "2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999Z07", "2006-01-02T15:04:05.999999999"}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unparseable timestamp %q", s)
}

func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case fmt.Stringer:
		return x.String()
	case float64:
		return fmt.Sprintf("%.0f", x)
	default:
		return fmt.Sprint(x)
	}
}

// StatusValues returns the status values that map to one of states, sorted.
func (m Mapping) StatusValues(states ...State) []string {
	var out []string
	for v, s := range m.Statuses {
		if slices.Contains(states, s) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}
