package sender

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

func newTestCA(t *testing.T) *sendertest.CA {
	t.Helper()
	ca, err := sendertest.NewCA("meshhook test CA")
	require.NoError(t, err)
	return ca
}

func issue(t *testing.T, ca *sendertest.CA, server bool) (certPEM, keyPEM string) {
	t.Helper()
	c, k, err := ca.Issue("meshhook test", server)
	require.NoError(t, err)
	return c, k
}

func tlsServer(t *testing.T, ca *sendertest.CA, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv, err := sendertest.NewTLSServer(ca, cfg)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return srv
}

// Per-rule custom CAs and client certificates (mTLS), TLS 1.2 as a floor,
// and certificate verification always on.
func TestTLSCustomCAAndClientCertificates(t *testing.T) {
	ca := newTestCA(t)
	clientCA := newTestCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.Cert)
	mtls := tlsServer(t, ca, &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	plain := tlsServer(t, ca, &tls.Config{})
	old := tlsServer(t, ca, &tls.Config{MaxVersion: tls.VersionTLS11})

	certPEM, keyPEM := issue(t, clientCA, false)
	withCert := alert("mtls", mtls.URL)
	withCert.TLS = &TLSConfig{CAPEM: ca.PEM, CertPEM: certPEM, KeyPEM: keyPEM}
	noCert := alert("nocert", mtls.URL)
	noCert.TLS = &TLSConfig{CAPEM: ca.PEM}
	customCA := alert("customca", plain.URL)
	customCA.TLS = &TLSConfig{CAPEM: ca.PEM}
	systemRoots := alert("systemroots", plain.URL)
	tls11 := alert("tls11", old.URL)
	tls11.TLS = &TLSConfig{CAPEM: ca.PEM}

	store := newMemStore(withCert, noCert, customCA, systemRoots, tls11)
	opts := fastOptions()
	opts.AllowInsecureHTTP = false
	opts.Schedule.Initial = time.Hour // one attempt each
	opts.Schedule.Max = time.Hour
	opts.Schedule.MaxAge = 48 * time.Hour
	runSender(t, opts, store)
	ids := []string{"mtls", "nocert", "customca", "systemroots", "tls11"}
	eventually(t, func() bool {
		for _, id := range ids {
			if len(store.attemptsOf(id)) == 0 {
				return false
			}
		}
		return true
	}, "every alert attempted once")
	assert.Equal(t, StatusSucceeded, store.status("mtls"), "client certificate presented and accepted")
	assert.Equal(t, StatusSucceeded, store.status("customca"), "the rule's CA verifies the server")
	for _, id := range []string{"nocert", "systemroots", "tls11"} {
		as := store.attemptsOf(id)
		assert.NotEqual(t, "ok", as[0].Outcome, id)
		assert.Contains(t, []string{"tls", "connection_error", "connection_reset"}, as[0].Outcome, "%s: %s", id, as[0].Error)
	}
	assert.Equal(t, "tls", store.attemptsOf("systemroots")[0].Outcome, "an unknown CA fails verification")

	_, err := BuildTLSConfig(&TLSConfig{CAPEM: "garbage"})
	require.ErrorIs(t, err, ErrTLSConfig)
	_, err = BuildTLSConfig(&TLSConfig{CertPEM: certPEM})
	require.ErrorContains(t, err, "set together")
	_, err = BuildTLSConfig(&TLSConfig{CertPEM: certPEM, KeyPEM: strings.Replace(keyPEM, "A", "B", 5)})
	require.ErrorIs(t, err, ErrTLSConfig)
	assert.NotContains(t, err.Error(), "PRIVATE KEY")
	cfg, err := BuildTLSConfig(nil)
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
	assert.False(t, cfg.InsecureSkipVerify)
}

// Logs and recorded errors never contain secrets, URL paths or queries,
// or custom header values.
func TestLogsNeverShowSecrets(t *testing.T) {
	const (
		pathToken   = "T0SECRETPATH"
		queryToken  = "querysecret123"
		headerValue = "Bearer hdr-secret-456"
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/fail"):
			w.WriteHeader(500)
		case strings.HasSuffix(r.URL.Path, "/gone"):
			w.WriteHeader(410)
		default:
			w.WriteHeader(204)
		}
	}))
	defer srv.Close()
	var buf bytes.Buffer
	var mu syncWriter
	mu.w = &buf
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&mu), zap.DebugLevel))

	mk := func(id, suffix string) Alert {
		a := alert(id, srv.URL+"/"+pathToken+suffix+"?token="+queryToken)
		a.Headers = map[string]string{"Authorization": headerValue}
		a.MeshHookSignature = true
		return a
	}
	badSecret := mk("badsecret", "")
	badSecret.Secrets = []string{"whsec_" + pathToken + "!!"}
	blocked := mk("blocked", "")
	blocked.TargetURL = "http://10.0.0.1/" + pathToken + "?token=" + queryToken
	timeout := mk("timeout", "")
	timeout.TargetURL = "http://127.0.0.1:1/" + pathToken + "?token=" + queryToken // connection refused
	store := newMemStore(mk("ok", ""), mk("fail", "/fail"), mk("gone", "/gone"), badSecret, blocked, timeout)
	opts := fastOptions()
	opts.Schedule.Initial = time.Hour
	opts.Schedule.Max = time.Hour
	opts.Schedule.MaxAge = 48 * time.Hour
	s, err := New(opts, store, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	ids := []string{"ok", "fail", "gone", "badsecret", "blocked", "timeout"}
	eventually(t, func() bool {
		for _, id := range ids {
			if len(store.attemptsOf(id)) == 0 {
				return false
			}
		}
		return true
	}, "all attempted")
	eventually(t, func() bool { return s.Stats().Held == 0 }, "all settled")
	cancel()
	<-done

	out := mu.String()
	require.Contains(t, out, "alert delivered")
	require.Contains(t, out, "alert attempt failed")
	store.mu.Lock()
	recorded, _ := json.Marshal(store.attempts)
	store.mu.Unlock()
	for _, where := range []struct{ name, text string }{{"logs", out}, {"recorded attempts", string(recorded)}} {
		for _, secret := range []string{secretA, strings.TrimPrefix(secretA, "whsec_"), pathToken, queryToken, headerValue, "hdr-secret"} {
			assert.NotContains(t, where.text, secret, "%s leak %q", where.name, secret)
		}
	}
	assert.Contains(t, out, srv.URL+"/[redacted]", "URLs are logged as scheme and host only")
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}
