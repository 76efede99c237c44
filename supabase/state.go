package supabase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/supabase-community/postgrest-go"
)

// GetState reads the daemon state stored under key into v (with
// encoding/json). found is false, and v untouched, if the key is not set.
func (s *Store) GetState(ctx context.Context, key string, v any) (found bool, err error) {
	op := "get state " + key
	if key == "" {
		return false, errors.New("supabase: get state: key is required")
	}
	raw, err := s.firstRow(ctx, op, "", TableDaemonState, "value",
		func(fb *postgrest.FilterBuilder) *postgrest.FilterBuilder { return fb.Eq("key", key) })
	if errorsIsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var row struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &row); err != nil {
		return false, fmt.Errorf("supabase: %s: %w", op, err)
	}
	if err := json.Unmarshal(row.Value, v); err != nil {
		return false, fmt.Errorf("supabase: %s: decode value: %w", op, err)
	}
	return true, nil
}

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
