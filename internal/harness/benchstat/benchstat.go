// Package benchstat holds the statistics the benchmark commands report.
package benchstat

import (
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0–100) of ds by the nearest-rank
// method, without reordering ds; 0 for no samples.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p/100)]
}
