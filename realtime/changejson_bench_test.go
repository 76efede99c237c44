package realtime

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDecodeChange measures decoding one postgres_changes payload (the
// payload of benchFrame, a workflow_runs UPDATE) into a change: the JSON
// decoder and what decodeChange adds (cached columns, the commit time).
// Run it with
//
//	go test -run '^$' -bench 'DecodeChange|DecodeDispatch' -count 5 ./realtime/
func BenchmarkDecodeChange(b *testing.B) {
	payload := []byte(benchFrame[strings.Index(benchFrame, `{"ids"`) : len(benchFrame)-1])
	now := time.Now()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		dc, err := decodeChange(payload, now)
		if err != nil || len(dc.ids) != 1 || len(dc.change.Record) != 11 {
			b.Fatal(dc, err)
		}
	}
}

// reportCPU starts counting the process's CPU time; the function it returns
// reports it per operation as cpu-ns/op. On a shared machine CPU time moves
// less than ns/op (wall time) when other processes take the cores.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() { b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op") }
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
