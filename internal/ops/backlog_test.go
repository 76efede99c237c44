package ops

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBacklogPollsAndExports(t *testing.T) {
	var n atomic.Int64
	var failing atomic.Bool
	n.Store(42)
	count := func(context.Context) (int64, error) {
		if failing.Load() {
			return 0, errors.New("rest down")
		}
		return n.Load(), nil
	}
	b := NewBacklog(count, 10*time.Millisecond, nil)
	srv, err := New("127.0.0.1:0", nil, nil, b)
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	_, body := get(t, ts.URL+"/metrics")
	assert.NotContains(t, body, "meshhook_alerts_alerts_pending", "unknown before the first count")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	require.Eventually(t, func() bool { v, ok := b.Last(); return ok && v == 42 }, 10*time.Second, 5*time.Millisecond)
	_, body = get(t, ts.URL+"/metrics")
	assert.Contains(t, body, "meshhook_alerts_alerts_pending 42")

	n.Store(7)
	require.Eventually(t, func() bool { v, _ := b.Last(); return v == 7 }, 10*time.Second, 5*time.Millisecond)
	failing.Store(true)
	require.Eventually(t, func() bool { _, ok := b.Last(); return !ok }, 10*time.Second, 5*time.Millisecond,
		"a failed count makes the backlog unknown")
}
