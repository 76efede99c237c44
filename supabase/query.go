package supabase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/supabase-community/postgrest-go"
)

// filterTime formats a timestamp for a filter: UTC, microseconds (Postgres'
// precision; truncating keeps inclusive lower bounds inclusive).
func filterTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z07:00")
}

// bodyTime formats a timestamp for a JSON body: RFC 3339, UTC, truncated to
// microseconds (what Postgres stores) so the value read back is the value sent.
func bodyTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

// quoteValue double-quotes a value for PostgREST's logic trees and in-lists,
// escaping backslashes and double quotes, so reserved characters (, . : ( ))
// inside it are taken literally.
func quoteValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(v) + `"`
}

// inList renders the value of an in. filter.
func inList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = quoteValue(v)
	}
	return "(" + strings.Join(q, ",") + ")"
}

var ascending = &postgrest.OrderOpts{Ascending: true}

// keysetQuery describes a listing paginated by (keys...) ascending. The keys
// must be non-null and together unique.
type keysetQuery struct {
	op      string
	schema  string // "" = the store's schema
	table   string
	columns string
	keys    []string // one or two columns
	// filter is applied to every page. It may not filter a key column with
	// a logic tree (and=/or=), which the cursor uses.
	filter func(*postgrest.FilterBuilder) *postgrest.FilterBuilder
}

// scan calls fn for every row of q in key order, one page at a time. It
// stops at the first empty page (not the first short one: the server may
// silently cap a page below PageSize) or when fn returns an error, which
// scan returns unchanged.
func (s *Store) scan(ctx context.Context, q keysetQuery, fn func(row map[string]any, raw json.RawMessage) error) error {
	if len(q.keys) == 0 || len(q.keys) > 2 {
		return fmt.Errorf("supabase: %s: keyset needs one or two key columns", q.op)
	}
	var cursor []string
	for page := 0; ; page++ {
		h := s.profileHeaders(nil, q.schema)
		cur := cursor
		body, err := s.exec(ctx, q.op, h, func() *postgrest.FilterBuilder {
			fb := s.client.From(q.table).Select(q.columns, "", false)
			if q.filter != nil {
				fb = q.filter(fb)
			}
			if cur != nil {
				fb = keysetAfter(fb, q.keys, cur)
			}
			for _, k := range q.keys {
				fb = fb.Order(k, ascending)
			}
			return fb.Limit(s.opts.PageSize, "")
		})
		if err != nil {
			return err
		}
		rows, err := decodeArray(body)
		if err != nil {
			return fmt.Errorf("supabase: %s: %w", q.op, err)
		}
		if len(rows) == 0 {
			return nil
		}
		for _, raw := range rows {
			row, err := decodeObject(raw)
			if err != nil {
				return fmt.Errorf("supabase: %s: %w", q.op, err)
			}
			next := make([]string, len(q.keys))
			for i, k := range q.keys {
				v, ok := cursorValue(row[k])
				if !ok {
					return fmt.Errorf("supabase: %s: row has no usable %s for pagination (got %v)", q.op, k, row[k])
				}
				next[i] = v
			}
			if err := fn(row, raw); err != nil {
				return err
			}
			cursor = next
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("supabase: %s: %w", q.op, err)
		}
	}
}

// keysetAfter restricts fb to rows after cursor in (keys...) order.
func keysetAfter(fb *postgrest.FilterBuilder, keys, cursor []string) *postgrest.FilterBuilder {
	if len(keys) == 1 {
		return fb.And(keys[0]+".gt."+quoteValue(cursor[0]), "")
	}
	a, b := quoteValue(cursor[0]), quoteValue(cursor[1])
	return fb.Or(fmt.Sprintf("%s.gt.%s,and(%s.eq.%s,%s.gt.%s)", keys[0], a, keys[0], a, keys[1], b), "")
}

// cursorValue renders a key column's JSON value as PostgREST returned it,
// so it compares exactly (a timestamp keeps its microseconds and offset).
func cursorValue(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return fmt.Sprint(x), true
	}
	return "", false
}

// firstRow returns the first row of a select, or ErrNotFound.
func (s *Store) firstRow(ctx context.Context, op, schema, table, columns string,
	filter func(*postgrest.FilterBuilder) *postgrest.FilterBuilder) (json.RawMessage, error) {
	body, err := s.exec(ctx, op, s.profileHeaders(nil, schema), func() *postgrest.FilterBuilder {
		return filter(s.client.From(table).Select(columns, "", false)).Limit(1, "")
	})
	if err != nil {
		return nil, err
	}
	rows, err := decodeArray(body)
	if err != nil {
		return nil, fmt.Errorf("supabase: %s: %w", op, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("supabase: %s: %w", op, ErrNotFound)
	}
	return rows[0], nil
}

// getByID reads the row of table whose id is id (an error satisfying
// IsNotFound when there is none) and decodes it.
func getByID[T any](ctx context.Context, s *Store, op, table, columns, id string, decode func([]byte) (T, error)) (T, error) {
	var zero T
	raw, err := s.firstRow(ctx, op, "", table, columns,
		func(fb *postgrest.FilterBuilder) *postgrest.FilterBuilder { return fb.Eq("id", id) })
	if err != nil {
		return zero, err
	}
	v, err := decode(raw)
	if err != nil {
		return zero, fmt.Errorf("supabase: %s: %w", op, err)
	}
	return v, nil
}

// errorsIsNotFound is errors.Is(err, ErrNotFound), named for readability.
func errorsIsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
