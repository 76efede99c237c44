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

	"github.com/meshhook/meshhook-alerts/internal/pgtest"
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
