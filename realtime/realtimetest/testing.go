package realtimetest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestServer is a Server listening on a loopback port for the duration of
// one test.
type TestServer struct {
	*Server
	// HTTP is the underlying test HTTP server.
	HTTP *httptest.Server
	// URL is the Realtime endpoint as clients are configured with it, e.g.
	// "ws://127.0.0.1:41234/realtime/v1"; the socket is URL + "/websocket".
	URL string
}

// StartTestServer starts a Server for opts on 127.0.0.1 with the socket at
// /realtime/v1/websocket and /socket/websocket. Test cleanup closes it.
func StartTestServer(tb testing.TB, opts Options) *TestServer {
	tb.Helper()
	if opts.JWTSecret == "" {
		tb.Fatal("realtimetest: Options.JWTSecret is required")
	}
	srv := NewServer(opts)
	mux := http.NewServeMux()
	mux.Handle("/realtime/v1/websocket", srv)
	mux.Handle("/socket/websocket", srv)
	hs := httptest.NewServer(mux)
	tb.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return &TestServer{Server: srv, HTTP: hs, URL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/realtime/v1"}
}
