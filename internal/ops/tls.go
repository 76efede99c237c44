package ops

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// TLSFiles names the PEM files the listener serves TLS with.
type TLSFiles struct {
	// CertFile is the certificate chain, leaf first; KeyFile its key.
	CertFile, KeyFile string
	// ClientCAFile, when set, is a bundle of CA certificates: /metrics then
	// answers only requests with a client certificate one of them signed.
	ClientCAFile string
}

// tlsCheckInterval is how often, at most, a handshake looks at the files
// for a change.
const tlsCheckInterval = time.Second

// certSource serves the listener's certificate and client CAs from files,
// loading them again when their contents change (looked at, at most once
// a tlsCheckInterval, by the handshake that comes along) or when Reload is
// called (on SIGHUP). A new set that does not load is logged and the
// previous one kept, so a half-written renewal never takes the listener
// down.
type certSource struct {
	files TLSFiles
	base  *tls.Config
	log   *zap.Logger
	now   func() time.Time

	cur       atomic.Pointer[tlsState]
	lastCheck atomic.Int64 // UnixNano of the last look at the files

	mu        sync.Mutex // serializes loads; guards failed and failedMsg
	failed    *tlsInput  // the last input that did not load (nil: unreadable)
	failedMsg string     // and why, so that a failure is logged once

	notAfter prometheus.Gauge
	reloads  *prometheus.CounterVec
}

// tlsInput is the contents of the files.
type tlsInput struct{ cert, key, ca []byte }

func (a *tlsInput) equal(b *tlsInput) bool {
	return a != nil && b != nil && bytes.Equal(a.cert, b.cert) && bytes.Equal(a.key, b.key) && bytes.Equal(a.ca, b.ca)
}

// tlsState is one loaded set.
type tlsState struct {
	in     *tlsInput
	cert   *tls.Certificate
	client *tls.Config // with the client CAs; nil without ClientCAFile
}

// newCertSource loads the files once; an error names the file at fault.
func newCertSource(files TLSFiles, log *zap.Logger) (*certSource, error) {
	s := &certSource{
		files: files, log: log, now: time.Now,
		notAfter: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshhook_alerts_http_tls_certificate_not_after_timestamp_seconds",
			Help: "When the certificate the listener serves expires, in seconds since the epoch.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshhook_alerts_http_tls_certificate_loads_total",
			Help: "Loads of changed TLS files by result (ok, error); on error the previous certificate is kept.",
		}, []string{"result"}),
	}
	s.base = &tls.Config{
		MinVersion:     tls.VersionTLS12, // cipher suites and curves: Go's defaults
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: s.getCertificate,
	}
	if files.ClientCAFile != "" {
		// Ask every client for a certificate but require none: /metrics
		// checks for a verified one per request (requireClientCert).
		s.base.ClientAuth = tls.VerifyClientCertIfGiven
		s.base.GetConfigForClient = s.configForClient
	}
	in, err := s.read()
	if err != nil {
		return nil, err
	}
	st, err := s.parse(in)
	if err != nil {
		return nil, err
	}
	s.install(st, "loaded")
	s.lastCheck.Store(s.now().UnixNano())
	return s, nil
}

// Config is the listener's TLS configuration.
func (s *certSource) Config() *tls.Config { return s.base }

func (s *certSource) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.maybeCheck()
	return s.cur.Load().cert, nil
}

func (s *certSource) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	s.maybeCheck()
	return s.cur.Load().client, nil
}

// maybeCheck looks at the files when tlsCheckInterval has passed since
// the last look and no other handshake is looking already.
func (s *certSource) maybeCheck() {
	last := s.lastCheck.Load()
	now := s.now().UnixNano()
	if now-last < int64(tlsCheckInterval) || !s.lastCheck.CompareAndSwap(last, now) {
		return
	}
	if !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	_ = s.check(false)
}

// Reload reads the files now (SIGHUP). It reports why a new set was not
// taken; the previous one is still served then.
func (s *certSource) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastCheck.Store(s.now().UnixNano())
	return s.check(true)
}

// check loads the files if their contents changed; forced (by Reload) it
// also retries, and logs, an input that failed before. A failure is logged
// once until it changes. Callers hold mu.
func (s *certSource) check(forced bool) error {
	in, err := s.read()
	if err == nil {
		if in.equal(s.cur.Load().in) {
			s.failed, s.failedMsg = nil, ""
			if forced {
				s.log.Info("TLS files read again: unchanged", zap.String("cert_file", s.files.CertFile))
			}
			return nil
		}
		if !forced && in.equal(s.failed) {
			return errors.New(s.failedMsg) // already logged
		}
		var st *tlsState
		if st, err = s.parse(in); err == nil {
			s.failed, s.failedMsg = nil, ""
			s.reloads.WithLabelValues("ok").Inc()
			s.install(st, "reloaded")
			return nil
		}
	}
	if forced || err.Error() != s.failedMsg {
		s.reloads.WithLabelValues("error").Inc()
		s.log.Error("TLS files changed but do not load; still serving the previous certificate",
			zap.Error(err), zap.Time("previous_not_after", s.cur.Load().cert.Leaf.NotAfter))
	}
	s.failed, s.failedMsg = in, err.Error()
	return err
}

// read reads the files. Each is read whole; a pair caught in the middle of
// a renewal fails to parse and is read again at the next change.
func (s *certSource) read() (*tlsInput, error) {
	in := &tlsInput{}
	var err error
	if in.cert, err = os.ReadFile(s.files.CertFile); err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	if in.key, err = os.ReadFile(s.files.KeyFile); err != nil {
		return nil, fmt.Errorf("TLS key: %w", err)
	}
	if s.files.ClientCAFile != "" {
		if in.ca, err = os.ReadFile(s.files.ClientCAFile); err != nil {
			return nil, fmt.Errorf("TLS client CA: %w", err)
		}
	}
	return in, nil
}

func (s *certSource) parse(in *tlsInput) (*tlsState, error) {
	cert, err := tls.X509KeyPair(in.cert, in.key)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", s.files.CertFile, s.files.KeyFile, err)
	}
	st := &tlsState{in: in, cert: &cert}
	if s.files.ClientCAFile != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(in.ca) {
			return nil, fmt.Errorf("TLS client CA %s: no PEM certificate in it", s.files.ClientCAFile)
		}
		st.client = s.base.Clone()
		st.client.GetConfigForClient = nil
		st.client.ClientCAs = pool
	}
	return st, nil
}

// install makes st the served set and logs it.
func (s *certSource) install(st *tlsState, what string) {
	s.cur.Store(st)
	leaf := st.cert.Leaf
	s.notAfter.Set(float64(leaf.NotAfter.Unix()))
	fields := []zap.Field{
		zap.String("cert_file", s.files.CertFile), zap.String("subject", leaf.Subject.String()),
		zap.Strings("dns_names", leaf.DNSNames), zap.Time("not_after", leaf.NotAfter),
	}
	now := s.now()
	switch {
	case now.After(leaf.NotAfter):
		s.log.Warn("TLS certificate "+what+", but it has expired: clients will refuse it", fields...)
	case now.Before(leaf.NotBefore):
		s.log.Warn("TLS certificate "+what+", but it is not valid yet: clients will refuse it", append(fields, zap.Time("not_before", leaf.NotBefore))...)
	default:
		s.log.Info("TLS certificate "+what, fields...)
	}
}

// Describe and Collect make the source a prometheus.Collector.
func (s *certSource) Describe(ch chan<- *prometheus.Desc) {
	s.notAfter.Describe(ch)
	s.reloads.Describe(ch)
}

func (s *certSource) Collect(ch chan<- prometheus.Metric) {
	s.notAfter.Collect(ch)
	s.reloads.Collect(ch)
}

// requireClientCert serves h only to requests whose TLS client certificate
// verified against the client CAs (tls.VerifyClientCertIfGiven verified
// any that was sent); others are answered 403.
func requireClientCert(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "403 forbidden: "+r.URL.Path+" needs a TLS client certificate signed by a CA in http.tls_client_ca_file",
				http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// errNoTLS is Reload's error when the listener serves no TLS.
var errNoTLS = errors.New("the listener serves no TLS (http.tls_cert_file is not set)")
