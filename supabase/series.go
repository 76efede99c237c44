package supabase

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// SeriesBucket is one time bucket of DeliverySeries: the attempts started
// in it, by outcome, and the commit → receipt latency of those delivered.
type SeriesBucket struct {
	// Index is the bucket's position: 0 starts at the series' since.
	Index     int
	Delivered int64 // attempts the receiver accepted
	Retried   int64 // failed attempts tried again (or to be)
	GaveUp    int64 // failed attempts after which the alert was given up
	// P50MS and P99MS are the median and 99th percentile of the delivered
	// attempts' commit → receipt latency, in milliseconds; nil when none
	// was delivered (or only redeliveries were).
	P50MS, P99MS *float64
}

// SeriesQuery selects the attempts of DeliverySeries.
type SeriesQuery struct {
	Since   time.Time
	Bucket  time.Duration // a whole number of seconds, at least one
	Buckets int
	// ConfigID selects one rule's attempts; empty: every rule's.
	ConfigID string
}

// DeliverySeries aggregates the attempts started in [q.Since, q.Since +
// q.Buckets*q.Bucket) into q.Buckets buckets in one database call
// (alert_delivery_series, see
// migrations/20261208000001_alert_delivery_series.sql). Buckets without
// an attempt are left out. Row-level security applies: a user's context
// (WithUserToken) counts the attempts of their projects' rules only.
func (s *Store) DeliverySeries(ctx context.Context, q SeriesQuery) ([]SeriesBucket, error) {
	const op = "delivery series"
	secs := int64(q.Bucket / time.Second)
	if secs < 1 || q.Bucket%time.Second != 0 || q.Buckets < 1 {
		return nil, fmt.Errorf("supabase: %s: bucket %s and count %d: need whole seconds and at least one bucket", op, q.Bucket, q.Buckets)
	}
	names := []string{"p_since", "p_bucket_seconds", "p_buckets"}
	var cfg *string
	if q.ConfigID != "" {
		cfg = &q.ConfigID
		names = append(names, "p_config_id")
	}
	args, err := json.Marshal(struct {
		Since    string  `json:"p_since"`
		Bucket   int64   `json:"p_bucket_seconds"`
		Buckets  int     `json:"p_buckets"`
		ConfigID *string `json:"p_config_id,omitempty"`
	}{q.Since.UTC().Format(time.RFC3339Nano), secs, q.Buckets, cfg})
	if err != nil {
		return nil, fmt.Errorf("supabase: %s: %w", op, err)
	}
	body, err := s.rpc(ctx, op, "alert_delivery_series", args, names...)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Bucket    int      `json:"bucket"`
		Delivered int64    `json:"delivered"`
		Retried   int64    `json:"retried"`
		GaveUp    int64    `json:"gave_up"`
		P50MS     *float64 `json:"p50_ms"`
		P99MS     *float64 `json:"p99_ms"`
	}
	if err := json.Unmarshal(body, &rows); err != nil {
		return nil, fmt.Errorf("supabase: %s: decode answer: %w", op, err)
	}
	out := make([]SeriesBucket, 0, len(rows))
	for _, r := range rows {
		if r.Bucket < 0 || r.Bucket >= q.Buckets {
			continue
		}
		out = append(out, SeriesBucket{Index: r.Bucket, Delivered: r.Delivered, Retried: r.Retried, GaveUp: r.GaveUp,
			P50MS: r.P50MS, P99MS: r.P99MS})
	}
	return out, nil
}
