package ops

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshhook/meshhook-alerts/internal/harness/testcert"
)

// waitFor bounds the waits of these tests: generous, for a busy machine.
const waitFor = 20 * time.Second

// tlsServer runs a Server over TLS with files on 127.0.0.1 and returns its
// address and its log.
func tlsServer(t *testing.T, files TLSFiles, mounts map[string]http.Handler, clock ...*fakeClock) (*Server, string, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	s, err := New("127.0.0.1:0", nil, zap.New(core))
	require.NoError(t, err)
	require.NoError(t, s.UseTLS(files))
	if len(clock) > 0 {
		s.tls.now = clock[0].Now
		s.tls.lastCheck.Store(clock[0].Now().UnixNano())
	}
	for p, h := range mounts {
		s.Mount(p, h)
	}
	addr, err := s.Listen()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return s, addr, logs
}

// client is an HTTPS client trusting roots, presenting certs if any, that
// opens a new connection for every request unless keepAlive.
func client(roots *x509.CertPool, keepAlive bool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: waitFor, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, Certificates: certs},
		DisableKeepAlives: !keepAlive, ForceAttemptHTTP2: true,
	}}
}

// fetch GETs url and returns the response with its body read.
func fetch(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// servedSerial is the serial number of the certificate a new connection
// to addr is shown.
func servedSerial(t *testing.T, addr string, roots *x509.CertPool) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestTLSListener(t *testing.T) {
	ca := testcert.NewCA(t, "server CA")

	t.Run("Valid", func(t *testing.T) {
		files := testcert.NewFiles(t, ca.Issue(t, "alerts", testcert.Options{}))
		_, addr, _ := tlsServer(t, TLSFiles{CertFile: files.Cert, KeyFile: files.Key}, nil)
		resp, body := fetch(t, client(ca.Pool(), false), "https://"+addr+"/healthz")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.JSONEq(t, `{"status":"ok"}`, body)
		assert.GreaterOrEqual(t, resp.TLS.Version, uint16(tls.VersionTLS12))
		assert.Equal(t, StrictTransportSecurity, resp.Header.Get("Strict-Transport-Security"), "HSTS over TLS")
		assert.Equal(t, ContentSecurityPolicy, resp.Header.Get("Content-Security-Policy"))

		// localhost is on the certificate too, and HTTP/2 is offered.
		port := addr[strings.LastIndexByte(addr, ':'):]
		resp, _ = fetch(t, client(ca.Pool(), true), "https://localhost"+port+"/healthz")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, 2, resp.ProtoMajor)

		// TLS 1.1 is refused.
		old := &http.Client{Timeout: waitFor, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}}
		_, err := old.Get("https://" + addr + "/healthz")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "protocol version")

		// Nothing is served in cleartext.
		resp, body = fetch(t, http.DefaultClient, "http://"+addr+"/healthz")
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, body, "HTTP request to an HTTPS server")
	})

	t.Run("Expired", func(t *testing.T) {
		files := testcert.NewFiles(t, ca.Issue(t, "alerts", testcert.Options{
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}))
		_, addr, logs := tlsServer(t, TLSFiles{CertFile: files.Cert, KeyFile: files.Key}, nil)
		assert.Equal(t, 1, logs.FilterMessage("TLS certificate loaded, but it has expired: clients will refuse it").Len())
		_, err := client(ca.Pool(), false).Get("https://" + addr + "/healthz")
		var invalid x509.CertificateInvalidError
		require.ErrorAs(t, err, &invalid, "the client refuses: %v", err)
		assert.Equal(t, x509.Expired, invalid.Reason)
	})

	t.Run("WrongHost", func(t *testing.T) {
		files := testcert.NewFiles(t, ca.Issue(t, "alerts", testcert.Options{Hosts: []string{"alerts.example.com"}}))
		_, addr, _ := tlsServer(t, TLSFiles{CertFile: files.Cert, KeyFile: files.Key}, nil)
		_, err := client(ca.Pool(), false).Get("https://" + addr + "/healthz")
		var wrong x509.HostnameError
		require.ErrorAs(t, err, &wrong, "the client refuses: %v", err)
		assert.Equal(t, "127.0.0.1", wrong.Host)
	})

	t.Run("UnknownCA", func(t *testing.T) {
		files := testcert.NewFiles(t, ca.Issue(t, "alerts", testcert.Options{}))
		_, addr, _ := tlsServer(t, TLSFiles{CertFile: files.Cert, KeyFile: files.Key}, nil)
		_, err := client(testcert.NewCA(t, "another CA").Pool(), false).Get("https://" + addr + "/healthz")
		var unknown x509.UnknownAuthorityError
		require.ErrorAs(t, err, &unknown, "the client refuses: %v", err)
	})
}

func TestUseTLSRefusesBadFiles(t *testing.T) {
	ca := testcert.NewCA(t, "CA")
	files := testcert.NewFiles(t, ca.Issue(t, "a", testcert.Options{}))
	other := testcert.NewFiles(t, ca.Issue(t, "b", testcert.Options{}))
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for name, tc := range map[string]struct {
		files TLSFiles
		want  string
	}{
		"MissingCert":     {TLSFiles{CertFile: missing, KeyFile: files.Key}, "TLS certificate: open " + missing},
		"MissingKey":      {TLSFiles{CertFile: files.Cert, KeyFile: missing}, "TLS key: open " + missing},
		"MismatchedPair":  {TLSFiles{CertFile: files.Cert, KeyFile: other.Key}, "private key does not match public key"},
		"MissingClientCA": {TLSFiles{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: missing}, "TLS client CA: open " + missing},
		"ClientCANotPEM":  {TLSFiles{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.Key}, "no PEM certificate in it"},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := New("127.0.0.1:0", nil, nil)
			require.NoError(t, err)
			require.ErrorContains(t, s.UseTLS(tc.files), tc.want)
			assert.False(t, s.TLS())
		})
	}
	s, err := New("127.0.0.1:0", nil, nil)
	require.NoError(t, err)
	require.ErrorIs(t, s.ReloadTLS(), errNoTLS)
}

// A renewed certificate is served to new connections without a restart,
// while a request in flight on the old one completes; a pair that does not
// load is logged and the previous certificate kept.
func TestTLSCertificateSwap(t *testing.T) {
	ca := testcert.NewCA(t, "CA")
	first := ca.Issue(t, "first", testcert.Options{})
	files := testcert.NewFiles(t, first)
	started, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	clock := newFakeClock()
	s, addr, logs := tlsServer(t, TLSFiles{CertFile: files.Cert, KeyFile: files.Key}, map[string]http.Handler{"/slow": slow}, clock)
	require.Equal(t, first.Serial(), servedSerial(t, addr, ca.Pool()))

	// A request in flight, and an idle keep-alive connection, on the first
	// certificate.
	kept := client(ca.Pool(), true)
	resp, _ := fetch(t, kept, "https://"+addr+"/healthz")
	require.Equal(t, first.Serial(), resp.TLS.PeerCertificates[0].SerialNumber.String())
	type result struct {
		resp *http.Response
		body string
		err  error
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, err := client(ca.Pool(), false).Get("https://" + addr + "/slow")
		if err != nil {
			inFlight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inFlight <- result{resp, string(b), err}
	}()
	select {
	case <-started:
	case <-time.After(waitFor):
		t.Fatal("the slow request did not start")
	}

	// Renew: the files are looked at again only once a second...
	second := ca.Issue(t, "second", testcert.Options{})
	files.Write(t, second)
	assert.Equal(t, first.Serial(), servedSerial(t, addr, ca.Pool()))
	// ...and then new connections get the second certificate, no restart.
	clock.Advance()
	assert.Equal(t, second.Serial(), servedSerial(t, addr, ca.Pool()))
	assert.Equal(t, 1, logs.FilterMessage("TLS certificate reloaded").Len())

	close(release)
	r := <-inFlight
	require.NoError(t, r.err, "the request in flight is not dropped")
	assert.Equal(t, http.StatusOK, r.resp.StatusCode)
	assert.Equal(t, "done", r.body)
	assert.Equal(t, first.Serial(), r.resp.TLS.PeerCertificates[0].SerialNumber.String())
	resp, _ = fetch(t, kept, "https://"+addr+"/healthz")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the kept connection still works")
	assert.Equal(t, first.Serial(), resp.TLS.PeerCertificates[0].SerialNumber.String(), "on the first certificate")

	// A certificate with the wrong key: logged once, the second kept.
	third := ca.Issue(t, "third", testcert.Options{})
	testcert.WriteFile(t, files.Cert, third.CertPEM)
	clock.Advance()
	assert.Equal(t, second.Serial(), servedSerial(t, addr, ca.Pool()))
	failed := func() []observer.LoggedEntry {
		return logs.FilterMessage("TLS files changed but do not load; still serving the previous certificate").All()
	}
	require.Len(t, failed(), 1)
	assert.Equal(t, zap.ErrorLevel, failed()[0].Level)
	assert.Contains(t, failed()[0].ContextMap()["error"], "private key does not match public key")
	// Later looks neither load it again nor log it again.
	clock.Advance()
	before := s.tls.lastCheck.Load()
	assert.Equal(t, second.Serial(), servedSerial(t, addr, ca.Pool()))
	require.NotEqual(t, before, s.tls.lastCheck.Load(), "the handshake looked at the files")
	assert.Len(t, failed(), 1)
	// A reload (SIGHUP) says why, and logs it.
	require.ErrorContains(t, s.ReloadTLS(), "private key does not match public key")
	assert.Len(t, failed(), 2)

	// The key arrives: a reload serves the third certificate at once.
	testcert.WriteFile(t, files.Key, third.KeyPEM)
	require.NoError(t, s.ReloadTLS())
	assert.Equal(t, third.Serial(), servedSerial(t, addr, ca.Pool()))
	require.NoError(t, s.ReloadTLS())
	assert.Equal(t, 1, logs.FilterMessage("TLS files read again: unchanged").Len())

	// A file that disappears is logged, and the third kept.
	require.NoError(t, os.Remove(files.Key))
	require.ErrorContains(t, s.ReloadTLS(), "TLS key: open "+files.Key)
	assert.Equal(t, third.Serial(), servedSerial(t, addr, ca.Pool()))

	resp, body := fetch(t, client(ca.Pool(), false), "https://"+addr+"/metrics")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, `meshhook_alerts_http_tls_certificate_loads_total{result="ok"} 2`)
	assert.Contains(t, body, `meshhook_alerts_http_tls_certificate_loads_total{result="error"} 3`)
	m := regexp.MustCompile(`(?m)^meshhook_alerts_http_tls_certificate_not_after_timestamp_seconds (\S+)$`).FindStringSubmatch(body)
	require.Len(t, m, 2, body)
	notAfter, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	assert.Equal(t, float64(third.Leaf.NotAfter.Unix()), notAfter)
}

// With http.tls_client_ca_file, /metrics needs a client certificate from
// that CA; the other paths need none.
func TestMetricsClientCertificate(t *testing.T) {
	serverCA, clientCA, otherCA := testcert.NewCA(t, "server CA"), testcert.NewCA(t, "scrapers"), testcert.NewCA(t, "other")
	files := testcert.NewFiles(t, serverCA.Issue(t, "alerts", testcert.Options{}))
	caFile := filepath.Join(filepath.Dir(files.Cert), "scrapers.pem")
	testcert.WriteFile(t, caFile, clientCA.PEM)
	_, addr, _ := tlsServer(t, TLSFiles{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: caFile},
		map[string]http.Handler{"/api/": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "api") })})
	base := "https://" + addr
	pair := func(ca *testcert.CA) tls.Certificate {
		c := ca.Issue(t, "prometheus", testcert.Options{Client: true})
		p, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
		require.NoError(t, err)
		return p
	}

	anon := client(serverCA.Pool(), false)
	resp, body := fetch(t, anon, base+"/metrics")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, body, "needs a TLS client certificate signed by a CA in http.tls_client_ca_file")
	assert.NotContains(t, body, "go_goroutines")
	for _, p := range []string{"/healthz", "/readyz", "/api/x"} {
		resp, _ = fetch(t, anon, base+p)
		assert.Equal(t, http.StatusOK, resp.StatusCode, p)
	}

	scraper := client(serverCA.Pool(), false, pair(clientCA))
	resp, body = fetch(t, scraper, base+"/metrics")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "go_goroutines")

	// A certificate from another CA: the client does not offer it (it is
	// not from a CA the server asks for)...
	resp, _ = fetch(t, client(serverCA.Pool(), false, pair(otherCA)), base+"/metrics")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	// ...and a client that sends it all the same fails the handshake.
	forced := pair(otherCA)
	pushy := &http.Client{Timeout: waitFor, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverCA.Pool(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &forced, nil }}}}
	_, err := pushy.Get(base + "/healthz")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate")

	// The CA bundle is reloaded like the certificate.
	testcert.WriteFile(t, caFile, otherCA.PEM)
	other := client(serverCA.Pool(), false, pair(otherCA))
	require.Eventually(t, func() bool {
		resp, err := other.Get(base + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, waitFor, 20*time.Millisecond, "a certificate from the new CA is accepted")
}

// Every response carries the browser security headers; a handler may set
// its own policy.
func TestSecurityHeaders(t *testing.T) {
	s, err := New("127.0.0.1:0", nil, nil)
	require.NoError(t, err)
	s.Mount("/api/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	s.Mount("/ui/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'")
	}))
	h := s.Handler()
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/api/status", "/nowhere", "/ui/"} {
		rec := httptestRecorder(h, p)
		hd := rec.Header()
		csp := hd.Get("Content-Security-Policy")
		if p == "/ui/" {
			assert.Equal(t, "default-src 'none'; script-src 'self'", csp, "the handler's own policy wins")
		} else {
			assert.Equal(t, ContentSecurityPolicy, csp, p)
		}
		assert.NotContains(t, csp, "unsafe-inline", p)
		assert.NotContains(t, csp, "unsafe-eval", p)
		assert.Equal(t, "DENY", hd.Get("X-Frame-Options"), p)
		assert.Equal(t, "no-referrer", hd.Get("Referrer-Policy"), p)
		assert.Equal(t, "nosniff", hd.Get("X-Content-Type-Options"), p)
		assert.Empty(t, hd.Get("Strict-Transport-Security"), "%s: no HSTS in cleartext", p)
	}
	assert.Contains(t, ContentSecurityPolicy, "frame-ancestors 'none'")
	assert.Contains(t, ContentSecurityPolicy, "default-src 'none'")
}

func TestServerErrorLogLevels(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	l := serverErrorLog(zap.New(core))
	l.Print("http: TLS handshake error from 127.0.0.1:5555: remote error: tls: bad certificate")
	l.Print("http: panic serving 127.0.0.1:5555: boom")
	require.Equal(t, 2, logs.Len())
	assert.Equal(t, zap.DebugLevel, logs.All()[0].Level)
	assert.Equal(t, zap.WarnLevel, logs.All()[1].Level)
	assert.Equal(t, "http: panic serving 127.0.0.1:5555: boom", logs.All()[1].Message)
}

func httptestRecorder(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

// fakeClock is a certSource's clock that tests move on by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock past the next look at the files.
func (c *fakeClock) Advance() { c.ns.Add(int64(tlsCheckInterval)) }
