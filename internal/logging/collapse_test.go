package logging

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
)

// lockedBuffer is a zaptest.Buffer safe to read while summaries are written
// from their timers.
type lockedBuffer struct {
	mu sync.Mutex
	b  zaptest.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) Sync() error     { return nil }
func (l *lockedBuffer) Lines() []string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Lines() }
func (l *lockedBuffer) String() string  { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

type lineSource interface{ Lines() []string }

func decodeLines(t *testing.T, buf lineSource) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range buf.Lines() {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		out = append(out, m)
	}
	return out
}

// Durations are numbers of milliseconds in JSON, wherever they are added.
func TestJSONDurationsAreMilliseconds(t *testing.T) {
	var buf zaptest.Buffer
	log, err := NewWithOutput(Config{}, &buf)
	require.NoError(t, err)
	log.With(zap.Duration("interval", 2*time.Second)).Info("x", zap.Duration("latency", 1297542*time.Nanosecond),
		zap.String("s", "1s"), zap.Durations("backoffs", []time.Duration{time.Millisecond}))
	lines := decodeLines(t, &buf)
	require.Len(t, lines, 1)
	assert.Equal(t, 1.297542, lines[0]["latency_ms"])
	assert.Equal(t, 2000.0, lines[0]["interval_ms"])
	assert.Equal(t, []any{1.0}, lines[0]["backoffs"])
	assert.Equal(t, "1s", lines[0]["s"])
	assert.NotContains(t, lines[0], "latency")

	buf.Reset()
	log, err = NewWithOutput(Config{Format: FormatConsole}, &buf)
	require.NoError(t, err)
	log.Info("x", zap.Duration("latency", 1500*time.Microsecond))
	assert.Contains(t, buf.String(), `"latency": "1.5ms"`, "people read strings")
}

// A warning repeated within the window is written once, then once more
// with the number of times it occurred, when the window ends; a line about
// an alert, a line below warn and another line are never held back.
func TestRepeatedWarningsCollapse(t *testing.T) {
	var buf lockedBuffer
	core, err := NewWithOutput(Config{}, &buf)
	require.NoError(t, err)
	log := zap.New(newCollapseCore(core.Core().(*collapseCore).Core, 300*time.Millisecond)).Named("supabase")

	for i := range 50 {
		log.Warn("request failed; retrying", zap.String("op", "lease_due"), zap.Int("attempt", i+1),
			zap.Error(fmt.Errorf("503 number %d", i)))
	}
	log.Warn("request failed; retrying", zap.String("op", "claim"), zap.Int("attempt", 1)) // another operation
	log.Info("alert delivered", zap.String("x", "y"))
	log.Info("alert delivered", zap.String("x", "y"))
	for range 3 {
		log.Warn("alert attempt failed; will retry", zap.String("alert_id", "a1"))
		log.With(zap.String("run_id", "r1")).Warn("confirming a timed run failed")
	}
	lines := decodeLines(t, &buf)
	require.Len(t, lines, 1+1+2+6, "%s", buf.String())
	assert.Equal(t, "lease_due", lines[0]["op"])
	assert.Equal(t, 1.0, lines[0]["attempt"])
	assert.NotContains(t, lines[0], RepeatedKey)

	require.Eventually(t, func() bool { return len(buf.Lines()) == 11 }, 10*time.Second, 5*time.Millisecond,
		"the window's summary is written when it ends")
	summary := decodeLines(t, &buf)[10]
	assert.Equal(t, "request failed; retrying", summary["msg"])
	assert.Equal(t, "lease_due", summary["op"])
	assert.Equal(t, 49.0, summary[RepeatedKey], "the occurrences after the first")
	assert.Equal(t, 50.0, summary["attempt"], "the fields are the last occurrence's")
	assert.Equal(t, "503 number 49", summary["error"])

	// It keeps recurring: once per window, with its count. Then it stops:
	// nothing more.
	for range 5 {
		log.Warn("request failed; retrying", zap.String("op", "lease_due"), zap.Int("attempt", 1))
	}
	require.Eventually(t, func() bool { return len(buf.Lines()) == 12 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, 5.0, decodeLines(t, &buf)[11][RepeatedKey])
}

// Sync writes the counts pending, so that a daemon stopping mid-outage
// does not take them along.
func TestCollapseSyncFlushes(t *testing.T) {
	var buf lockedBuffer
	log, err := NewWithOutput(Config{}, &buf)
	require.NoError(t, err)
	for range 4 {
		log.Error("reconciliation failed; retrying", zap.Error(errors.New("down")))
	}
	require.Len(t, buf.Lines(), 1)
	require.NoError(t, log.Sync())
	lines := decodeLines(t, &buf)
	require.Len(t, lines, 2)
	assert.Equal(t, 3.0, lines[1][RepeatedKey])
	assert.Equal(t, "error", lines[1]["level"])
}

func TestCollapseKey(t *testing.T) {
	ent := zapcore.Entry{LoggerName: "l", Level: zapcore.WarnLevel, Message: "m"}
	a := collapseKey(ent, nil, []zapcore.Field{zap.String("op", "x"), zap.Int("attempt", 1), zap.Error(errors.New("e1"))})
	b := collapseKey(ent, nil, []zapcore.Field{zap.String("op", "x"), zap.Int("attempt", 2), zap.Error(errors.New("e2"))})
	c := collapseKey(ent, nil, []zapcore.Field{zap.String("op", "y")})
	d := collapseKey(ent, []zapcore.Field{zap.String("channel", "runs")}, nil)
	assert.Equal(t, a, b)
	assert.NotEqual(t, a, c)
	assert.NotEqual(t, c, d)
}
