package chaos

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestChaosCI is the CI-sized chaos run: a 30 s fault window with every
// fault kind injected at least once, then the full check.
func TestChaosCI(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run takes about a minute")
	}
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // registered first: runs after the database is dropped
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	if keep := os.Getenv("MESHHOOK_CHAOS_LOGDIR"); keep != "" {
		dir = keep // keep the daemon logs
	}
	bin := daemonBinary(t)

	db := pgtest.Shared(t).NewDatabase(t)
	si, err := standin.Start(ctx, standin.Options{DatabaseURL: db.URL, Realtime: Quota()})
	require.NoError(t, err)
	defer si.Close()

	s, err := Run(ctx, Options{StandIn: si, Binary: bin, WorkDir: dir, Duration: 30 * time.Second, Seed: 42,
		Settle: 30 * time.Second, Logf: t.Logf})
	require.NoError(t, err)
	t.Log(s.String())
	t.Logf("either by event: %v; blind intervals in the log above", s.EitherByEvent)
	for _, v := range s.Violations {
		t.Error(v)
	}
	if !s.OK() {
		logDaemon(t, dir)
	}
	assert.Positive(t, s.Expected)
	assert.Equal(t, s.Expected, s.Delivered)
	assert.Positive(t, s.Faults.Kills, "the daemon was killed")
	assert.Positive(t, s.Faults.WSDrops+s.Faults.Closes1012, "the websocket was cut")
	assert.Positive(t, s.Faults.REST503, "REST answered 503")
	assert.Positive(t, s.Receiver.ServerErrors+s.Receiver.TooMany+s.Receiver.Slow, "the receiver misbehaved")
	assert.True(t, strings.HasSuffix(s.String(), " ok"), s.String())
}

func logDaemon(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "daemon-*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var keep []string
		for _, l := range lines {
			if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) {
				keep = append(keep, l)
			}
		}
		if len(keep) > 40 {
			keep = keep[len(keep)-40:]
		}
		t.Logf("%s: %d lines, warnings and errors:\n%s", filepath.Base(f), len(lines), strings.Join(keep, "\n"))
	}
}
