package supabase

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/supabase-community/postgrest-go"
)

// RowKey is a position in a runs table in (updated_at, id) order: the
// values as PostgREST returned them, so they compare exactly. An empty ID
// stands before every row updated at At.
type RowKey struct {
	At string `json:"at"`
	ID string `json:"id,omitempty"`
}

// ReconcileState is the answer of one alert_reconcile call.
type ReconcileState struct {
	// Held reports whether the caller holds the reconcile lease.
	Held bool
	// Holder is who holds it.
	Holder string
	// Cursor is the stored reconcile cursor; nil when none was stored.
	Cursor *RowKey
	// Horizon is the start of the oldest transaction in progress (the
	// database's now when there is none): every row with updated_at before
	// it has been committed, if it ever will be.
	Horizon time.Time
	// Hidden reports that some session's transaction start was not
	// visible to the function, so Horizon cannot be trusted.
	Hidden bool
	// Now is the database's clock.
	Now time.Time
}

// Reconcile takes or renews the reconcile lease stored under key for
// holder, stores cursor when it is not nil and the lease is held, and
// returns the lease, the stored cursor and the safe horizon, in one call
// (see migrations/20261206000001_alert_reconcile.sql).
func (s *Store) Reconcile(ctx context.Context, key, holder string, lease time.Duration, cursor *RowKey) (ReconcileState, error) {
	const op = "reconcile"
	var cur json.RawMessage = []byte("null")
	if cursor != nil {
		b, err := json.Marshal(cursor)
		if err != nil {
			return ReconcileState{}, fmt.Errorf("supabase: %s: %w", op, err)
		}
		cur = b
	}
	args, err := json.Marshal(struct {
		Key     string          `json:"p_key"`
		Holder  string          `json:"p_holder"`
		LeaseMS int64           `json:"p_lease_ms"`
		Cursor  json.RawMessage `json:"p_cursor"`
	}{key, holder, lease.Milliseconds(), cur})
	if err != nil {
		return ReconcileState{}, fmt.Errorf("supabase: %s: %w", op, err)
	}
	body, err := s.rpc(ctx, op, "alert_reconcile", args, "p_key", "p_holder", "p_lease_ms", "p_cursor")
	if err != nil {
		return ReconcileState{}, err
	}
	var out struct {
		Held    bool      `json:"held"`
		Holder  string    `json:"holder"`
		Cursor  *RowKey   `json:"cursor"`
		Horizon time.Time `json:"horizon"`
		Hidden  bool      `json:"hidden"`
		Now     time.Time `json:"now"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return ReconcileState{}, fmt.Errorf("supabase: %s: decode answer: %w", op, err)
	}
	if out.Cursor != nil && out.Cursor.At == "" {
		out.Cursor = nil
	}
	return ReconcileState{Held: out.Held, Holder: out.Holder, Cursor: out.Cursor, Horizon: out.Horizon,
		Hidden: out.Hidden, Now: out.Now}, nil
}

// RowsPage returns up to limit rows of t after key in (updated_at, id)
// order whose updated_at is before before, with only columns (nil: all).
// Numbers come as json.Number.
func (s *Store) RowsPage(ctx context.Context, t RunsTable, columns []string, after RowKey, before time.Time, limit int) ([]map[string]any, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	sel := "*"
	if len(columns) > 0 {
		for _, c := range columns {
			if err := checkIdent("column", c); err != nil {
				return nil, err
			}
		}
		sel = strings.Join(columns, ",")
	}
	op := "page " + t.Table
	body, err := s.exec(ctx, op, s.profileHeaders(nil, t.Schema), func() *postgrest.FilterBuilder {
		fb := s.client.From(t.Table).Select(sel, "", false)
		switch {
		case after.At == "":
		case after.ID == "":
			fb = fb.Gte(t.UpdatedAtColumn, after.At)
		default:
			fb = keysetAfter(fb, []string{t.UpdatedAtColumn, t.IDColumn}, []string{after.At, after.ID})
		}
		fb = fb.Lt(t.UpdatedAtColumn, filterTime(before))
		return fb.Order(t.UpdatedAtColumn, ascending).Order(t.IDColumn, ascending).Limit(limit, "")
	})
	if err != nil {
		return nil, err
	}
	return decodeObjects(op, body)
}

// RowsByID returns the rows of t whose id is one of ids (in no order).
func (s *Store) RowsByID(ctx context.Context, t RunsTable, ids []string) ([]map[string]any, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	op := "get " + t.Table + " rows by id"
	body, err := s.exec(ctx, op, s.profileHeaders(nil, t.Schema), func() *postgrest.FilterBuilder {
		return s.client.From(t.Table).Select("*", "", false).Filter(t.IDColumn, "in", inList(ids))
	})
	if err != nil {
		return nil, err
	}
	return decodeObjects(op, body)
}

func decodeObjects(op string, body []byte) ([]map[string]any, error) {
	rows, err := decodeMaps(body)
	if err != nil {
		return nil, fmt.Errorf("supabase: %s: %w", op, err)
	}
	return rows, nil
}
