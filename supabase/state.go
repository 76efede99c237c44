package supabase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/supabase-community/postgrest-go"
)

// PutState stores v (encoded with encoding/json) under key, replacing any
// previous value.
func (s *Store) PutState(ctx context.Context, key string, v any) error {
	op := "put state " + key
	if key == "" {
		return errors.New("supabase: put state: key is required")
	}
	value, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("supabase: %s: encode value: %w", op, err)
	}
	row := struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}{key, value}
	_, err = s.exec(ctx, op, preferHeader("resolution=merge-duplicates", "return=minimal"),
		func() *postgrest.FilterBuilder {
			return s.client.From(TableDaemonState).Upsert(row, "key", "minimal", "")
		})
	return err
}
