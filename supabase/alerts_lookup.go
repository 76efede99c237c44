package supabase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/supabase-community/postgrest-go"
)

// ClaimRef identifies one claimed alert of a run: which rule claimed which
// event, and where its delivery stands.
type ClaimRef struct {
	ID       string
	ConfigID string
	Event    string
	Status   AlertStatus
}

// maxLookupConfigs bounds the config ids sent in one ClaimsOfRun request,
// keeping the request line short.
const maxLookupConfigs = 100

// ClaimsOfRun returns the alerts claimed for run runID by any of configIDs
// whose event is one of events, in id order, paging past the server's row
// cap. The filter leads with config_id so the claim key's unique index
// serves it. No config ids or no events mean no alerts.
func (s *Store) ClaimsOfRun(ctx context.Context, runID string, configIDs, events []string) ([]ClaimRef, error) {
	const op = "list claims of run"
	if runID == "" {
		return nil, errors.New("supabase: " + op + ": run id is required")
	}
	if len(configIDs) == 0 || len(events) == 0 {
		return nil, nil
	}
	evList := inList(events)
	var out []ClaimRef
	for start := 0; start < len(configIDs); start += maxLookupConfigs {
		ids := inList(configIDs[start:min(start+maxLookupConfigs, len(configIDs))])
		err := s.scan(ctx, keysetQuery{
			op: op, table: TableAlertLogs, columns: "id,config_id,event,status", keys: []string{"id"},
			filter: func(fb *postgrest.FilterBuilder) *postgrest.FilterBuilder {
				return fb.Filter("config_id", "in", ids).Eq("run_id", runID).Filter("event", "in", evList)
			},
		}, func(_ map[string]any, raw json.RawMessage) error {
			var r struct {
				ID       string `json:"id"`
				ConfigID string `json:"config_id"`
				Event    string `json:"event"`
				Status   string `json:"status"`
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				return fmt.Errorf("supabase: %s: %w", op, err)
			}
			out = append(out, ClaimRef{ID: r.ID, ConfigID: r.ConfigID, Event: r.Event, Status: AlertStatus(r.Status)})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
