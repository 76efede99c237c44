package realtimetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

const waitTimeout = 15 * time.Second

// testServer is the TestServer the tests use.
type testServer = TestServer

func newTestServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	if opts.JWTSecret == "" {
		opts.JWTSecret = pgtest.JWTSecret
	}
	return StartTestServer(t, opts)
}

// wsURL is the websocket URL with the given query (apikey, vsn, ...).
func (ts *testServer) wsURL(path string, query url.Values) string {
	u := "ws" + strings.TrimPrefix(ts.HTTP.URL, "http") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// frame is a decoded server frame.
type frame struct {
	JoinRef    json.RawMessage
	HasJoinRef bool // V1 frames never carry the key
	Ref        json.RawMessage
	Topic      string
	Event      string
	Payload    json.RawMessage
	Raw        string
}

func (f frame) payloadMap(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(f.Payload)))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&m), "payload of %s", f.Raw)
	return m
}

func (f frame) String() string { return f.Raw }

// rawClient is a bare websocket client speaking Phoenix frames by hand.
type rawClient struct {
	t      *testing.T
	conn   *websocket.Conn
	vsn    string // "1.0.0" or "2.0.0"
	frames chan frame

	mu      sync.Mutex
	readErr error
	ref     int
}

func dialClient(t *testing.T, ts *testServer, vsn, apikey string) *rawClient {
	t.Helper()
	q := url.Values{"apikey": {apikey}}
	if vsn != "" {
		q.Set("vsn", vsn)
	}
	conn, resp, err := websocket.DefaultDialer.Dial(ts.wsURL("/realtime/v1/websocket", q), nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	require.NoError(t, err)
	if vsn == "" {
		vsn = "1.0.0"
	}
	c := &rawClient{t: t, conn: conn, vsn: vsn, frames: make(chan frame, 256)}
	go c.readLoop()
	t.Cleanup(func() { _ = conn.Close() })
	return c
}

func (c *rawClient) readLoop() {
	defer close(c.frames)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		f, err := decodeFrame(c.vsn, data)
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		c.frames <- f
	}
}

func decodeFrame(vsn string, data []byte) (frame, error) {
	f := frame{Raw: string(data)}
	if vsn == "2.0.0" {
		var arr []json.RawMessage
		if err := json.Unmarshal(data, &arr); err != nil || len(arr) != 5 {
			return f, fmt.Errorf("not a V2 frame: %s", data)
		}
		f.JoinRef, f.HasJoinRef, f.Ref, f.Payload = arr[0], true, arr[1], arr[4]
		if err := json.Unmarshal(arr[2], &f.Topic); err != nil {
			return f, err
		}
		return f, json.Unmarshal(arr[3], &f.Event)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return f, fmt.Errorf("not a V1 frame: %s", data)
	}
	if len(obj) != 4 {
		return f, fmt.Errorf("V1 frame must have exactly topic, event, payload, ref: %s", data)
	}
	f.JoinRef, f.HasJoinRef = obj["join_ref"]
	f.Ref, f.Payload = obj["ref"], obj["payload"]
	if err := json.Unmarshal(obj["topic"], &f.Topic); err != nil {
		return f, err
	}
	return f, json.Unmarshal(obj["event"], &f.Event)
}

// nextRef returns a fresh ref string.
func (c *rawClient) nextRef() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ref++
	return strconv.Itoa(c.ref)
}

// push sends a frame; nil refs are sent as JSON null.
func (c *rawClient) push(joinRef, ref *string, topic, event string, payload any) {
	c.t.Helper()
	var data []byte
	var err error
	if c.vsn == "2.0.0" {
		data, err = json.Marshal([]any{joinRef, ref, topic, event, payload})
	} else {
		data, err = json.Marshal(map[string]any{"join_ref": joinRef, "ref": ref, "topic": topic, "event": event, "payload": payload})
	}
	require.NoError(c.t, err)
	c.sendRaw(string(data))
}

func (c *rawClient) sendRaw(s string) {
	c.t.Helper()
	require.NoError(c.t, c.conn.WriteMessage(websocket.TextMessage, []byte(s)))
}

// join sends phx_join with a fresh ref used as join_ref and returns it.
func (c *rawClient) join(topic string, payload any) string {
	c.t.Helper()
	ref := c.nextRef()
	c.push(&ref, &ref, topic, "phx_join", payload)
	return ref
}

func (c *rawClient) heartbeat() string {
	c.t.Helper()
	ref := c.nextRef()
	c.push(nil, &ref, "phoenix", "heartbeat", map[string]any{})
	return ref
}

// next returns the next frame or fails after waitTimeout.
func (c *rawClient) next() frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection closed while waiting for a frame: %v", c.err())
		}
		return f
	case <-time.After(waitTimeout):
		c.t.Fatalf("no frame within %s", waitTimeout)
	}
	return frame{}
}

// nextEvent skips frames until one with event (and topic, if non-empty).
func (c *rawClient) nextEvent(topic, event string) frame {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("connection closed while waiting for %s %s: %v", topic, event, c.err())
			}
			if f.Event == event && (topic == "" || f.Topic == topic) {
				return f
			}
		case <-deadline:
			c.t.Fatalf("no %s %s within %s", topic, event, waitTimeout)
		}
	}
}

// expectNone asserts no frame arrives within d.
func (c *rawClient) expectNone(d time.Duration) {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if ok {
			c.t.Fatalf("unexpected frame: %s", f.Raw)
		}
		c.t.Fatalf("connection closed: %v", c.err())
	case <-time.After(d):
	}
}

// waitClosed waits for the connection to end and returns the read error.
func (c *rawClient) waitClosed() error {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return c.err()
			}
		case <-deadline:
			c.t.Fatalf("connection still open after %s", waitTimeout)
		}
	}
}

func (c *rawClient) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// closeCode extracts the websocket close code from a read error (1006 for
// an abnormal closure).
func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return websocket.CloseAbnormalClosure
}

// joinPayload builds a realtime-js style join payload.
func joinPayload(accessToken string, changes ...map[string]any) map[string]any {
	if changes == nil {
		changes = []map[string]any{}
	}
	p := map[string]any{"config": map[string]any{
		"broadcast":        map[string]any{"ack": false, "self": false},
		"presence":         map[string]any{"key": "", "enabled": false},
		"postgres_changes": changes,
		"private":          false,
	}}
	if accessToken != "" {
		p["access_token"] = accessToken
	}
	return p
}

// joinAndSubscribe joins topic and waits for the ok reply and
// "Subscribed to PostgreSQL"; it returns the join ref and the reply ids.
func (c *rawClient) joinAndSubscribe(topic string, payload any) (string, []int64) {
	c.t.Helper()
	jr := c.join(topic, payload)
	rep := c.nextEvent(topic, "phx_reply")
	p := rep.payloadMap(c.t)
	require.Equal(c.t, "ok", p["status"], rep.Raw)
	var ids []int64
	for _, e := range p["response"].(map[string]any)["postgres_changes"].([]any) {
		n, err := e.(map[string]any)["id"].(json.Number).Int64()
		require.NoError(c.t, err)
		ids = append(ids, n)
	}
	sys := c.nextEvent(topic, "system")
	require.Equal(c.t, "Subscribed to PostgreSQL", sys.payloadMap(c.t)["message"], sys.Raw)
	return jr, ids
}

// vsns are the serializer versions every protocol test runs under.
var vsns = []string{"1.0.0", "2.0.0"}
