package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// metricValue returns the value of an unlabelled sample in Prometheus text
// exposition.
func metricValue(text, name string) (float64, bool) {
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// histogram is a Prometheus histogram's cumulative buckets.
type histogram struct {
	bounds []float64 // upper bounds, ascending, +Inf last
	counts []float64 // cumulative
	count  float64
}

// parseHistogram reads the buckets of histogram name.
func parseHistogram(text, name string) (histogram, error) {
	type bucket struct{ le, n float64 }
	var bs []bucket
	var h histogram
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, name+`_bucket{le="`); ok {
			le, val, ok := strings.Cut(rest, `"} `)
			if !ok {
				return h, fmt.Errorf("%s: malformed bucket line %q", name, l)
			}
			b, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
			if err != nil {
				return h, fmt.Errorf("%s: bucket bound %q: %w", name, le, err)
			}
			n, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				return h, fmt.Errorf("%s: bucket count %q: %w", name, val, err)
			}
			bs = append(bs, bucket{b, n})
		} else if rest, ok := strings.CutPrefix(l, name+"_count "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return h, fmt.Errorf("%s_count: %w", name, err)
			}
			h.count = n
		}
	}
	if len(bs) == 0 {
		return h, fmt.Errorf("histogram %s not found in /metrics", name)
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, b := range bs {
		h.bounds = append(h.bounds, b.le)
		h.counts = append(h.counts, b.n)
	}
	return h, nil
}

// minus is the histogram of the observations made between o and h.
func (h histogram) minus(o histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts)), count: h.count - o.count}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(o.counts) {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

// quantile estimates the q-quantile (0..1) in seconds by linear
// interpolation within its bucket, as Prometheus' histogram_quantile does.
func (h histogram) quantileSeconds(q float64) float64 {
	if h.count <= 0 || len(h.bounds) == 0 {
		return math.NaN()
	}
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, upper := range h.bounds {
		if h.counts[i] >= rank {
			if math.IsInf(upper, 1) {
				return lower // beyond the last finite bound
			}
			inBucket := h.counts[i] - below
			if inBucket <= 0 {
				return upper
			}
			return lower + (upper-lower)*(rank-below)/inBucket
		}
		lower, below = upper, h.counts[i]
	}
	return lower
}
