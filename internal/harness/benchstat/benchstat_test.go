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

func TestPostgresCPUAttributesExitedChildren(t *testing.T) {
	before := snapshot{reaped: 100, procs: map[int]pgProc{
		1:  {KindOther, 50},
		10: {KindBackend, 200},
		11: {KindAutovacuum, 30}, // exits after 5 more ticks
		12: {KindWALSender, 70},
	}}
	after := snapshot{reaped: 100 + 35 + 8, procs: map[int]pgProc{ // 11 reaped (35 ticks in all), 13 started and reaped (8)
		1:  {KindOther, 51},
		10: {KindBackend, 260},
		12: {KindWALSender, 90},
		14: {KindBackend, 4}, // a new connection
	}}
	got := before.until(after)
	assert.Equal(t, map[string]time.Duration{
		KindOther: 1 * clockTick, KindBackend: 64 * clockTick, KindWALSender: 20 * clockTick,
		KindExited: 13 * clockTick,
	}, got)
}

func TestPgKind(t *testing.T) {
	for title, want := range map[string]string{
		"postgres: walsender postgres 127.0.0.1(5432) START_REPLICATION\x00": KindWALSender,
		"postgres: autovacuum worker postgres_standin\x00":                   KindAutovacuum,
		"postgres: autovacuum launcher \x00":                                 KindAutovacuum,
		"postgres: checkpointer \x00":                                        KindOther,
		"postgres: walwriter \x00":                                           KindOther,
		"postgres: postgres postgres_standin 127.0.0.1(40122) idle\x00":      KindBackend,
	} {
		assert.Equal(t, want, pgKind(title), title)
	}
}

func TestPerUnitByKind(t *testing.T) {
	assert.Equal(t, "backends 60.0, walsender 20.5, other 0.1",
		PerUnitByKind(map[string]time.Duration{KindOther: time.Millisecond, KindBackend: 600 * time.Millisecond, KindWALSender: 205 * time.Millisecond}, 10000))
}

func TestSinceByAppSplitsBackends(t *testing.T) {
	before := snapshot{procs: map[int]pgProc{
		10: {KindBackend, 100},
		11: {KindBackend, 100},
		12: {KindWALSender, 10},
	}, apps: map[int]string{10: "rest", 11: "load"}}
	after := snapshot{procs: map[int]pgProc{
		10: {KindBackend, 150},
		11: {KindBackend, 101},
		12: {KindWALSender, 30},
		13: {KindBackend, 7}, // connected meanwhile
	}, apps: map[int]string{10: "rest", 13: "rt"}} // 11 missed by the second read
	got := before.untilByApp(after)
	assert.Equal(t, map[string]time.Duration{
		AppPrefix + "rest": 50 * clockTick, AppPrefix + "load": clockTick, AppPrefix + "rt": 7 * clockTick,
		KindWALSender: 20 * clockTick,
	}, got)
}

func TestLSN(t *testing.T) {
	n, err := ParseLSN("16/B374D848")
	assert.NoError(t, err)
	assert.Equal(t, int64(0x16B374D848), n)
	assert.Equal(t, "16/B374D848", FormatLSN(n))
	_, err = ParseLSN("nope")
	assert.Error(t, err)
}

func TestShortQuery(t *testing.T) {
	assert.Equal(t, "select 1 from x", ShortQuery("select 1\n\t from   x", 40))
	assert.Equal(t, "select…", ShortQuery("select 1 from x", 7))
}
