package sdnotify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func listen(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return path, conn
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	require.NoError(t, err)
	return string(buf[:n])
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestNotifySendsToTheSocket(t *testing.T) {
	path, conn := listen(t)
	n := FromEnv(env(map[string]string{"NOTIFY_SOCKET": path}))
	require.True(t, n.Enabled())
	require.NoError(t, n.Notify(Ready))
	assert.Equal(t, "READY=1", read(t, conn))
	require.NoError(t, n.Notify(Stopping))
	assert.Equal(t, "STOPPING=1", read(t, conn))
}

func TestWithoutSystemdEverythingIsANoOp(t *testing.T) {
	n := FromEnv(env(nil))
	assert.False(t, n.Enabled())
	assert.NoError(t, n.Notify(Ready))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.NoError(t, n.RunWatchdog(ctx, nil))
}

func TestWatchdogPingsWhileHealthy(t *testing.T) {
	path, conn := listen(t)
	n := FromEnv(env(map[string]string{"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": strconv.Itoa(os.Getpid())}))
	assert.Equal(t, 100*time.Millisecond, n.WatchdogInterval())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.RunWatchdog(ctx, func() bool { return true }) }()
	assert.Equal(t, "WATCHDOG=1", read(t, conn))
	cancel()
	require.NoError(t, <-done)

	other := FromEnv(env(map[string]string{"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"}))
	assert.Zero(t, other.WatchdogInterval(), "a watchdog meant for another process is ignored")
}
