package realtime

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
)

// TestNew_DefaultDialer checks the dialer New builds when Config.Dialer is
// nil: proxy from the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), TLS
// verification left on, and a handshake timeout. The proxy is checked by
// identity because net/http reads the environment only once per process
// and never proxies loopback addresses, so a behavioural test cannot be
// hermetic.
func TestNew_DefaultDialer(t *testing.T) {
	c, err := New(Config{URL: "https://abc.supabase.co", APIKey: "k"}, dbChannel())
	require.NoError(t, err)
	d := c.cfg.Dialer
	require.NotNil(t, d.Proxy, "proxy from environment")
	require.Equal(t, reflect.ValueOf(http.ProxyFromEnvironment).Pointer(), reflect.ValueOf(d.Proxy).Pointer(),
		"Proxy must be http.ProxyFromEnvironment")
	if d.TLSClientConfig != nil {
		require.False(t, d.TLSClientConfig.InsecureSkipVerify, "TLS must be verified")
	}
	require.Equal(t, DefaultHandshakeTimeout, d.HandshakeTimeout)
	require.Equal(t, "wss", c.url.Scheme)
}

// TestNew_CallerDialerNotMutated checks that a caller's dialer is used but
// never modified: a missing handshake timeout is defaulted on a copy.
func TestNew_CallerDialerNotMutated(t *testing.T) {
	mine := &websocket.Dialer{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13}}
	c, err := New(Config{URL: "https://abc.supabase.co", APIKey: "k", Dialer: mine}, dbChannel())
	require.NoError(t, err)
	require.Zero(t, mine.HandshakeTimeout, "caller's dialer mutated")
	require.Equal(t, DefaultHandshakeTimeout, c.cfg.Dialer.HandshakeTimeout)
	require.Same(t, mine.TLSClientConfig, c.cfg.Dialer.TLSClientConfig)

	timed := &websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	c, err = New(Config{URL: "https://abc.supabase.co", APIKey: "k", Dialer: timed}, dbChannel())
	require.NoError(t, err)
	require.Same(t, timed, c.cfg.Dialer)
}

// TestClient_TLSVerified runs the client against a wss:// server with a
// certificate no system root signs: the default dialer must refuse it and
// keep retrying; a dialer trusting the server's CA connects.
func TestClient_TLSVerified(t *testing.T) {
	t.Run("default dialer rejects an unknown CA", func(t *testing.T) {
		srv := newFakeTLSServer(t)
		h := startClient(t, srv, testConfig(srv))
		h.eventually("TLS failures retried", func(s Stats) bool { return s.Reconnects["dial_error"] >= 2 })
		require.Contains(t, h.c.Stats().LastError, "certificate")
		require.Zero(t, h.c.Stats().Sessions)
		require.NoError(t, h.stop())
		require.Empty(t, srv.conns, "no websocket may be opened over an unverified TLS connection")
	})

	t.Run("trusted CA connects", func(t *testing.T) {
		srv := newFakeTLSServer(t)
		roots := x509.NewCertPool()
		roots.AddCert(srv.srv.Certificate())
		cfg := testConfig(srv)
		cfg.Dialer = &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
		h := startClient(t, srv, cfg)
		fc := srv.waitConn(t)
		require.Equal(t, VsnV2, fc.query.Get("vsn"))
		h.nextReady("db")
	})
}

// newFakeTLSServer is a fakeServer behind TLS with httptest's self-signed
// certificate.
func newFakeTLSServer(t *testing.T) *fakeServer {
	t.Helper()
	srv := &fakeServer{t: t, conns: make(chan *fakeConn, 16)}
	srv.srv = httptest.NewUnstartedServer(http.HandlerFunc(srv.serveHTTP))
	// The refused handshakes are expected; keep them out of the test log.
	srv.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.srv.StartTLS()
	t.Cleanup(srv.close)
	return srv
}
