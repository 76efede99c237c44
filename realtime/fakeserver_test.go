package realtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeServer is a scripted Phoenix/Realtime websocket server for the tests
// of this package. It decodes client frames independently of the package
// codec (generic JSON, strict shape checks) so that codec bugs are not
// mirrored. By default it answers heartbeats, accepts joins (echoing the
// bindings plus ids, then "Subscribed to PostgreSQL") and leaves (reply +
// phx_close), and ignores access_token. Hooks change that per test.
type fakeServer struct {
	t     testing.TB
	srv   *httptest.Server
	conns chan *fakeConn

	joins atomic.Int64 // phx_join frames received over all connections

	mu sync.Mutex // guards all and the hooks below
	// all holds every accepted connection, closed by close.
	all    []*fakeConn
	closed bool
	// reject, if set, answers the upgrade with this status and body.
	reject *fakeReject
	// onJoin, if set, replaces the default join handling. n counts joins
	// over the server's lifetime, starting at 1.
	onJoin func(fc *fakeConn, m clientMsg, n int64)
	// ignoreHeartbeats stops heartbeat replies.
	ignoreHeartbeats bool
}

type fakeReject struct {
	status int
	body   string
}

// clientMsg is one frame received from the client.
type clientMsg struct {
	JoinRef any // string or nil
	Ref     any // string or nil
	Topic   string
	Event   string
	Payload map[string]any
	Raw     string
}

func (m clientMsg) joinRef() string { s, _ := m.JoinRef.(string); return s }
func (m clientMsg) ref() string     { s, _ := m.Ref.(string); return s }

// fakeConn is one accepted client connection.
type fakeConn struct {
	s     *fakeServer
	ws    *websocket.Conn
	vsn   string
	query url.Values

	wmu  sync.Mutex // serializes writes
	msgs chan clientMsg
	done chan struct{} // closed when the read loop ends

	closeMu   sync.Mutex
	closeCode int // close frame received from the client, 0 if none
	closeText string
}

func newFakeServer(t testing.TB) *fakeServer {
	t.Helper()
	s := &fakeServer{t: t, conns: make(chan *fakeConn, 1024)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(s.close)
	return s
}

// URL returns the project URL (http://127.0.0.1:port) the client derives
// /realtime/v1/websocket from.
func (s *fakeServer) URL() string { return s.srv.URL }

// close stops the server and every websocket (hijacked connections are not
// tracked by httptest) and waits for their read loops.
func (s *fakeServer) close() {
	s.srv.Close()
	s.mu.Lock()
	all := s.all
	s.closed = true
	s.mu.Unlock()
	for _, fc := range all {
		_ = fc.ws.NetConn().Close()
		<-fc.done
	}
}

func (s *fakeServer) setReject(r *fakeReject) {
	s.mu.Lock()
	s.reject = r
	s.mu.Unlock()
}

func (s *fakeServer) setOnJoin(f func(fc *fakeConn, m clientMsg, n int64)) {
	s.mu.Lock()
	s.onJoin = f
	s.mu.Unlock()
}

func (s *fakeServer) setIgnoreHeartbeats(v bool) {
	s.mu.Lock()
	s.ignoreHeartbeats = v
	s.mu.Unlock()
}

func (s *fakeServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/realtime/v1/websocket" {
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
		return
	}
	s.mu.Lock()
	reject := s.reject
	s.mu.Unlock()
	if reject != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(reject.status)
		_, _ = w.Write([]byte(reject.body))
		return
	}
	q := r.URL.Query()
	vsn := q.Get("vsn")
	if vsn == "" {
		vsn = VsnV1
	}
	if vsn != VsnV1 && vsn != VsnV2 {
		w.WriteHeader(http.StatusForbidden) // Phoenix: unknown vsn, empty body
		return
	}
	if q.Get("apikey") == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"API key is missing"}`))
		return
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	fc := &fakeConn{s: s, ws: ws, vsn: vsn, query: q, msgs: make(chan clientMsg, 100000), done: make(chan struct{})}
	ws.SetCloseHandler(func(code int, text string) error {
		fc.closeMu.Lock()
		fc.closeCode, fc.closeText = code, text
		fc.closeMu.Unlock()
		fc.wmu.Lock()
		defer fc.wmu.Unlock()
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
		return nil
	})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.all = append(s.all, fc)
	s.mu.Unlock()
	s.conns <- fc
	fc.readLoop()
}

func (fc *fakeConn) readLoop() {
	defer close(fc.done)
	defer fc.ws.Close()
	for {
		mt, data, err := fc.ws.ReadMessage()
		if err != nil {
			return
		}
		if mt != websocket.TextMessage {
			fc.s.t.Errorf("fake server: client sent a non-text frame (type %d)", mt)
			continue
		}
		m, err := parseClientMsg(fc.vsn, data)
		if err != nil {
			fc.s.t.Errorf("fake server: invalid client frame %s: %v", data, err)
			continue
		}
		fc.msgs <- m
		fc.dispatch(m)
	}
}

// parseClientMsg decodes a client frame the way Phoenix does: V2 must be an
// array [join_ref, ref, topic, event, payload]; V1 an object with topic,
// event, payload and ref (join_ref optional). Refs must be strings or null.
func parseClientMsg(vsn string, data []byte) (clientMsg, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	m := clientMsg{Raw: string(data)}
	var topic, event, payload any
	switch vsn {
	case VsnV2:
		var arr []any
		if err := dec.Decode(&arr); err != nil {
			return m, fmt.Errorf("expected V2 array: %w", err)
		}
		if len(arr) != 5 {
			return m, fmt.Errorf("expected 5 elements, got %d", len(arr))
		}
		m.JoinRef, m.Ref, topic, event, payload = arr[0], arr[1], arr[2], arr[3], arr[4]
	case VsnV1:
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			return m, fmt.Errorf("expected V1 object: %w", err)
		}
		for _, k := range []string{"topic", "event", "payload", "ref"} {
			if _, ok := obj[k]; !ok {
				return m, fmt.Errorf("V1 frame lacks %q", k)
			}
		}
		m.JoinRef, m.Ref, topic, event, payload = obj["join_ref"], obj["ref"], obj["topic"], obj["event"], obj["payload"]
	}
	for name, r := range map[string]any{"join_ref": m.JoinRef, "ref": m.Ref} {
		if _, ok := r.(string); r != nil && !ok {
			return m, fmt.Errorf("%s is %T, want string or null", name, r)
		}
	}
	var ok bool
	if m.Topic, ok = topic.(string); !ok {
		return m, fmt.Errorf("topic is %T", topic)
	}
	if m.Event, ok = event.(string); !ok {
		return m, fmt.Errorf("event is %T", event)
	}
	if m.Payload, ok = payload.(map[string]any); !ok {
		return m, fmt.Errorf("payload is %T", payload)
	}
	return m, nil
}

func (fc *fakeConn) dispatch(m clientMsg) {
	fc.s.mu.Lock()
	onJoin, ignoreHB := fc.s.onJoin, fc.s.ignoreHeartbeats
	fc.s.mu.Unlock()
	switch {
	case m.Topic == "phoenix" && m.Event == "heartbeat":
		if !ignoreHB {
			fc.send(nil, m.Ref, "phoenix", "phx_reply", okReply(map[string]any{}))
		}
	case m.Event == "phx_join":
		n := fc.s.joins.Add(1)
		if onJoin != nil {
			onJoin(fc, m, n)
			return
		}
		fc.acceptJoin(m)
		fc.subscribed(m)
	case m.Event == "phx_leave":
		fc.send(m.JoinRef, m.Ref, m.Topic, "phx_reply", okReply(map[string]any{}))
		fc.lifecycle(m.joinRef(), m.Topic, "phx_close")
	}
}

// bindingID imitates the server's phash2 of the binding map: deterministic,
// non-negative and < 2^27.
func bindingID(b map[string]any) int64 {
	raw, _ := json.Marshal(b) // map keys are sorted
	h := fnv.New32a()
	_, _ = h.Write(raw)
	return int64(h.Sum32() % (1 << 27))
}

// joinBindings returns the postgres_changes bindings of a join.
func joinBindings(m clientMsg) []map[string]any {
	cfg, _ := m.Payload["config"].(map[string]any)
	list, _ := cfg["postgres_changes"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, b := range list {
		if bm, ok := b.(map[string]any); ok {
			out = append(out, bm)
		}
	}
	return out
}

// echoBindings returns the reply entries: each binding map verbatim plus id.
func echoBindings(m clientMsg) []any {
	var out []any
	for _, b := range joinBindings(m) {
		e := make(map[string]any, len(b)+1)
		for k, v := range b {
			e[k] = v
		}
		e["id"] = bindingID(b)
		out = append(out, e)
	}
	return out
}

func okReply(response map[string]any) map[string]any {
	return map[string]any{"status": "ok", "response": response}
}

// acceptJoin replies ok with the echoed bindings.
func (fc *fakeConn) acceptJoin(m clientMsg) {
	fc.send(m.JoinRef, m.Ref, m.Topic, "phx_reply", okReply(map[string]any{"postgres_changes": echoBindings(m)}))
}

// rejectJoin replies with a join error.
func (fc *fakeConn) rejectJoin(m clientMsg, reason string) {
	fc.send(m.JoinRef, m.Ref, m.Topic, "phx_reply", map[string]any{"status": "error", "response": map[string]any{"reason": reason}})
}

// subscribed pushes "Subscribed to PostgreSQL" for the join m.
func (fc *fakeConn) subscribed(m clientMsg) {
	fc.system(m.joinRef(), m.Topic, "postgres_changes", "ok", "Subscribed to PostgreSQL")
}

// system pushes a channel system message (join_ref set, ref null).
func (fc *fakeConn) system(joinRef, topic, extension, status, message string) {
	fc.send(nullable(joinRef), nil, topic, "system", map[string]any{
		"extension": extension, "status": status, "message": message,
		"channel": strings.TrimPrefix(topic, "realtime:"),
	})
}

// lifecycle sends phx_close or phx_error for joinRef ([JR, JR, ...]).
func (fc *fakeConn) lifecycle(joinRef, topic, event string) {
	fc.send(nullable(joinRef), nullable(joinRef), topic, event, map[string]any{})
}

// change pushes a postgres_changes frame (refs null).
func (fc *fakeConn) change(topic string, ids []int64, data map[string]any) {
	fc.send(nil, nil, topic, "postgres_changes", map[string]any{"ids": ids, "data": data})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// send writes a server frame; V1 frames carry no join_ref (§1.5).
func (fc *fakeConn) send(joinRef, ref any, topic, event string, payload any) {
	var v any
	if fc.vsn == VsnV2 {
		v = []any{joinRef, ref, topic, event, payload}
	} else {
		v = map[string]any{"topic": topic, "event": event, "payload": payload, "ref": ref}
	}
	b, err := json.Marshal(v)
	if err != nil {
		fc.s.t.Errorf("fake server: marshal: %v", err)
		return
	}
	fc.sendRaw(websocket.TextMessage, b)
}

func (fc *fakeConn) sendRaw(messageType int, b []byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_ = fc.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = fc.ws.WriteMessage(messageType, b)
}

// closeWith sends a close frame with code and reason.
func (fc *fakeConn) closeWith(code int, reason string) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_ = fc.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
}

// drop closes the TCP connection without a close frame.
func (fc *fakeConn) drop() { _ = fc.ws.NetConn().Close() }

func (fc *fakeConn) receivedClose() (int, string) {
	fc.closeMu.Lock()
	defer fc.closeMu.Unlock()
	return fc.closeCode, fc.closeText
}

// waitConn returns the next accepted connection.
func (s *fakeServer) waitConn(t testing.TB) *fakeConn {
	t.Helper()
	select {
	case fc := <-s.conns:
		return fc
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a client connection")
		return nil
	}
}

// waitMsg returns the next received frame for which match returns true,
// discarding the others.
func (fc *fakeConn) waitMsg(t testing.TB, what string, match func(clientMsg) bool) clientMsg {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case m := <-fc.msgs:
			if match(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("timed out waiting for client frame: %s", what)
			return clientMsg{}
		}
	}
}

func isEvent(event string) func(clientMsg) bool {
	return func(m clientMsg) bool { return m.Event == event }
}

// waitClosed waits for the connection's read loop to end.
func (fc *fakeConn) waitClosed(t testing.TB) {
	t.Helper()
	select {
	case <-fc.done:
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for the connection to close")
	}
}
