package realtimetest

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// recordingConn is a net.Conn that records its writes.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	err    error
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordingConn) written() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, w := range c.writes {
		out = append(out, string(w))
	}
	return out
}

func TestBatchConn_CollectsWritesUntilFlush(t *testing.T) {
	rc := &recordingConn{}
	bc := &batchConn{Conn: rc}

	_, err := bc.Write([]byte("direct"))
	require.NoError(t, err)
	assert.Equal(t, []string{"direct"}, rc.written(), "outside a batch writes go straight through")

	bc.begin()
	for _, s := range []string{"a", "b", "c"} {
		n, err := bc.Write([]byte(s))
		require.NoError(t, err)
		assert.Equal(t, 1, n)
	}
	assert.Len(t, rc.written(), 1, "nothing written while the batch is open")
	require.NoError(t, bc.flush())
	assert.Equal(t, []string{"direct", "abc"}, rc.written(), "one write per batch")
	require.NoError(t, bc.flush(), "flushing an empty batch writes nothing")
	assert.Len(t, rc.written(), 2)

	bc.begin()
	big := strings.Repeat("x", batchFlushBytes)
	_, err = bc.Write([]byte(big))
	require.NoError(t, err)
	assert.Len(t, rc.written(), 3, "a full batch is written without waiting for the flush")
	_, err = bc.Write([]byte("tail"))
	require.NoError(t, err)
	require.NoError(t, bc.flush())
	assert.Equal(t, "tail", rc.written()[3])

	var nilConn *batchConn
	nilConn.begin()
	assert.NoError(t, nilConn.flush(), "a nil batchConn (no wrapper) is a no-op")
}

func TestBatchConn_FlushReportsWriteErrors(t *testing.T) {
	rc := &recordingConn{err: errors.New("broken pipe")}
	bc := &batchConn{Conn: rc}
	bc.begin()
	_, err := bc.Write([]byte("frame"))
	require.NoError(t, err, "buffered")
	assert.ErrorContains(t, bc.flush(), "broken pipe")
	assert.Equal(t, rc, unwrapConn(bc))
	assert.Equal(t, net.Conn(rc), unwrapConn(rc))
}

func TestPublish_BurstArrivesInOrder(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			c := dialClient(t, ts, vsn, pgtest.ServiceRoleKey())
			c.joinAndSubscribe("realtime:burst", joinPayload("", map[string]any{"event": "*", "schema": "public", "table": "todos"}))
			const n = 3000
			go func() {
				for i := range n {
					if err := ts.Publish(Change{Schema: "public", Table: "todos", Type: Insert, Columns: todoColumns,
						Record: map[string]any{"id": i, "title": strings.Repeat("t", i%500)}, PrimaryKey: []string{"id"}}); err != nil {
						return
					}
				}
			}()
			ref := c.heartbeat()
			sawReply := false
			for i := 0; i < n; {
				f := c.next()
				if f.Event == "phx_reply" {
					assert.Equal(t, `"`+ref+`"`, string(f.Ref))
					sawReply = true
					continue
				}
				require.Equal(t, itoa(i), string(dataOf(t, f).Record["id"]), "frame %d", i)
				i++
			}
			if !sawReply {
				assert.Equal(t, "phx_reply", c.next().Event, "the heartbeat is answered")
			}
			c.expectNone(100 * time.Millisecond)
		})
	}
}

// A client that stops reading is disconnected once more than OutboundBytes
// of frames wait for it (Realtime's transport heap limit), not before.
func TestSlowClientIsDroppedPastTheOutboundByteBudget(t *testing.T) {
	publish := func(ts *testServer, n int) {
		for i := range n {
			if err := ts.Publish(Change{Schema: "public", Table: "todos", Type: Insert, Columns: todoColumns,
				Record: map[string]any{"id": i, "title": strings.Repeat("t", 1000)}, PrimaryKey: []string{"id"}}); err != nil {
				return
			}
		}
	}
	count := func(c *rawClient) (frames int, err error) {
		for range c.frames {
			frames++
		}
		return frames, c.err()
	}

	t.Run("over the budget", func(t *testing.T) {
		ts := newTestServer(t, Options{OutboundBytes: 256 << 10})
		c := dialClient(t, ts, "2.0.0", pgtest.ServiceRoleKey())
		c.joinAndSubscribe("realtime:slow", joinPayload("", map[string]any{"event": "*", "schema": "public", "table": "todos"}))
		// The test reads nothing while 40 MB are published: the client's
		// frame buffer and the socket buffers fill, then the server's queue
		// passes its 256 KiB budget.
		publish(ts, 40000)
		frames, err := count(c)
		require.Error(t, err)
		assert.Equal(t, 1006, closeCode(err), "dropped without a close frame")
		assert.Less(t, frames, 40000)
	})
	t.Run("within the budget", func(t *testing.T) {
		ts := newTestServer(t, Options{})
		c := dialClient(t, ts, "2.0.0", pgtest.ServiceRoleKey())
		c.joinAndSubscribe("realtime:slow", joinPayload("", map[string]any{"event": "*", "schema": "public", "table": "todos"}))
		publish(ts, 10000) // about 11 MB, under the default 50 MiB
		got := 0
		for got < 10000 {
			if c.next().Event == "postgres_changes" {
				got++
			}
		}
		c.expectNone(100 * time.Millisecond)
	})
}
