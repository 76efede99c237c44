package benchstat

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, Percentile(ds, 50))
	assert.Equal(t, 99*time.Millisecond, Percentile(ds, 99))
	assert.Equal(t, 100*time.Millisecond, Percentile(ds, 100))
	assert.Equal(t, 1*time.Millisecond, Percentile(ds, 0))
	assert.Equal(t, 100*time.Millisecond, ds[0], "the input is not reordered")
	assert.Zero(t, Percentile(nil, 99))
}

func TestProcessCPUReadsThisProcess(t *testing.T) {
	deadline := time.Now().Add(300 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	d, ok := ProcessCPU(os.Getpid())
	if !ok || d <= 0 {
		t.Fatalf("ProcessCPU(self) = %v, %v; want a positive time", d, ok)
	}
	if self := SelfCPU(); self < d-50*time.Millisecond {
		t.Fatalf("SelfCPU %v is below /proc's %v", self, d)
	}
	if _, ok := ProcessCPU(-1); ok {
		t.Fatal("ProcessCPU(-1) succeeded")
	}
}
