package api

import (
	"net/http"
	"time"

	"github.com/meshhook/meshhook-alerts/supabase"
)

// seriesWindow is one time range GET /api/alerts/series offers: its length
// and the width of its buckets.
type seriesWindow struct {
	length, bucket time.Duration
}

// seriesWindows are the ranges of GET /api/alerts/series, by their name
// in ?window=: the last hour by minute, the last day by quarter hour. The
// bucket counts (60 and 96) bound the answer and the chart.
var seriesWindows = map[string]seriesWindow{
	"1h":  {time.Hour, time.Minute},
	"24h": {24 * time.Hour, 15 * time.Minute},
}

type seriesResponse struct {
	Window        string `json:"window"`
	WindowSeconds int64  `json:"window_seconds"`
	BucketSeconds int64  `json:"bucket_seconds"`
	// Since is the first bucket's start; Until the end of the last
	// bucket, which holds the current moment (it is still filling).
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	ConfigID *string   `json:"config_id"`
	// Buckets holds every bucket, oldest first, empty ones included.
	Buckets []seriesBucketView `json:"buckets"`
	Caller  callerView         `json:"caller"`
}

type seriesBucketView struct {
	Start     time.Time `json:"start"`
	Delivered int64     `json:"delivered"`
	Retried   int64     `json:"retried"`
	GaveUp    int64     `json:"gave_up"`
	P50MS     *float64  `json:"p50_ms"`
	P99MS     *float64  `json:"p99_ms"`
}

// getSeries answers GET /api/alerts/series: delivery attempts per time
// bucket by outcome (delivered, retried, given up) and the commit →
// receipt latency (p50, p99) of those delivered, over the last hour or
// day, for one rule (config_id) or every rule the caller may see. As with
// GET /api/status, the operator sees every rule's attempts and a user those
// of their projects' rules (row-level security); a rule the user may not
// see answers 404. The database answers with one aggregate query.
func (a *API) getSeries(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := r.URL.Query()
	name := q.Get("window")
	if name == "" {
		name = "1h"
	}
	win, ok := seriesWindows[name]
	if !ok {
		return badRequest("window", "must be 1h or 24h")
	}
	ctx := p.ctx(r.Context())
	resp := seriesResponse{Window: name, WindowSeconds: int64(win.length / time.Second),
		BucketSeconds: int64(win.bucket / time.Second), Caller: callerView{Operator: p.operator, UserID: optString(p.userID)}}
	if id := q.Get("config_id"); id != "" {
		if !isUUID(id) {
			return badRequest("config_id", "must be a UUID")
		}
		ids, err := a.opts.Store.AlertConfigIDs(ctx, supabase.ConfigFilter{ID: id})
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return notFound("rule " + id)
		}
		resp.ConfigID = &id
	}
	n := int(win.length / win.bucket)
	// The last bucket holds now; buckets start on whole multiples of their
	// width, so that a refresh shifts the chart by whole buckets.
	resp.Until = a.opts.Now().UTC().Truncate(win.bucket).Add(win.bucket)
	resp.Since = resp.Until.Add(-win.length)
	cfg := ""
	if resp.ConfigID != nil {
		cfg = *resp.ConfigID
	}
	got, err := a.opts.Store.DeliverySeries(ctx, supabase.SeriesQuery{Since: resp.Since, Bucket: win.bucket, Buckets: n, ConfigID: cfg})
	if err != nil {
		return err
	}
	resp.Buckets = make([]seriesBucketView, n)
	for i := range resp.Buckets {
		resp.Buckets[i].Start = resp.Since.Add(time.Duration(i) * win.bucket)
	}
	for _, b := range got {
		v := &resp.Buckets[b.Index]
		v.Delivered, v.Retried, v.GaveUp, v.P50MS, v.P99MS = b.Delivered, b.Retried, b.GaveUp, b.P50MS, b.P99MS
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
