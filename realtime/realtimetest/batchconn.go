package realtimetest

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// batchFlushBytes is the amount of batched frame data after which a batch
// is written out even though more frames follow.
const batchFlushBytes = 64 << 10

// batchConn is the network connection under a session's websocket. While
// the session's writer has a batch open, writes are collected and sent by
// flush in one system call; otherwise (handshake, control frames from the
// reader, close frames) they go straight through. Safe for concurrent use.
type batchConn struct {
	net.Conn

	mu       sync.Mutex // guards batching and buf
	batching bool
	buf      []byte
}

// Write sends p, or appends it to the open batch.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.batching {
		return c.Conn.Write(p)
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) >= batchFlushBytes {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// begin opens a batch. A nil batchConn does nothing.
func (c *batchConn) begin() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.batching = true
	c.mu.Unlock()
}

// flush closes the batch and writes what it collected. A nil batchConn
// does nothing.
func (c *batchConn) flush() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batching = false
	return c.flushLocked()
}

func (c *batchConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > 2*batchFlushBytes {
		c.buf = nil // a one-off burst of large frames: do not keep the memory
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

// unwrapConn returns the connection under a batchConn.
func unwrapConn(c net.Conn) net.Conn {
	if bc, ok := c.(*batchConn); ok {
		return bc.Conn
	}
	return c
}

// batchingResponseWriter hands the websocket upgrader the hijacked
// connection wrapped in a batchConn.
type batchingResponseWriter struct {
	http.ResponseWriter
	hijacker http.Hijacker
}

// Hijack implements http.Hijacker.
func (w batchingResponseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := w.hijacker.Hijack()
	if err != nil {
		return nil, nil, err
	}
	return &batchConn{Conn: c}, brw, nil
}

// withBatching wraps w so that an upgraded connection batches its writes;
// a w that cannot be hijacked is returned as is.
func withBatching(w http.ResponseWriter) http.ResponseWriter {
	if hj, ok := w.(http.Hijacker); ok {
		return batchingResponseWriter{ResponseWriter: w, hijacker: hj}
	}
	return w
}
