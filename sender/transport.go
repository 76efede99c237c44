package sender

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// clients hands out one *http.Client per distinct TLS configuration (the
// default one, and one per rule with a custom CA or client certificate).
// Every client dials through the SSRF guard, refuses TLS below 1.2, verifies
// certificates, reuses connections and never follows redirects.
type clients struct {
	opts  *Options
	guard *Guard

	mu    sync.Mutex
	byTLS map[[32]byte]*http.Client
	plain *http.Client
}

// maxCustomClients bounds the cache of per-rule TLS clients.
const maxCustomClients = 256

func newClients(opts *Options, guard *Guard) *clients {
	c := &clients{opts: opts, guard: guard, byTLS: map[[32]byte]*http.Client{}}
	c.plain = c.newClient(&tls.Config{MinVersion: tls.VersionTLS12})
	return c
}

// ErrTLSConfig wraps a rule's unusable TLS material.
var ErrTLSConfig = errors.New("custom TLS configuration is invalid")

// BuildTLSConfig turns a rule's PEM material into a client tls.Config:
// TLS 1.2 or later, certificates verified against the custom CA (or the
// system roots), and the client certificate for mTLS. Errors never quote
// the material.
func BuildTLSConfig(t *TLSConfig) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t == nil {
		return cfg, nil
	}
	if t.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.CAPEM)) {
			return nil, errors.Join(ErrTLSConfig, errors.New("tls_ca_pem holds no PEM certificate"))
		}
		cfg.RootCAs = pool
	}
	switch {
	case t.CertPEM != "" && t.KeyPEM != "":
		cert, err := tls.X509KeyPair([]byte(t.CertPEM), []byte(t.KeyPEM))
		if err != nil {
			return nil, errors.Join(ErrTLSConfig, errors.New("tls_client_cert_pem / tls_client_key_pem are not a matching PEM certificate and key"))
		}
		cfg.Certificates = []tls.Certificate{cert}
	case t.CertPEM != "" || t.KeyPEM != "":
		return nil, errors.Join(ErrTLSConfig, errors.New("tls_client_cert_pem and tls_client_key_pem must be set together"))
	}
	return cfg, nil
}

// get returns the client for t (nil: the default one).
func (c *clients) get(t *TLSConfig) (*http.Client, error) {
	if t == nil || (t.CAPEM == "" && t.CertPEM == "" && t.KeyPEM == "") {
		return c.plain, nil
	}
	h := sha256.New()
	for _, s := range []string{t.CAPEM, t.CertPEM, t.KeyPEM} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var key [32]byte
	h.Sum(key[:0])
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.byTLS[key]; ok {
		return cl, nil
	}
	cfg, err := BuildTLSConfig(t)
	if err != nil {
		return nil, err
	}
	if len(c.byTLS) >= maxCustomClients {
		for k, old := range c.byTLS { // evict one arbitrary entry
			old.CloseIdleConnections()
			delete(c.byTLS, k)
			break
		}
	}
	cl := c.newClient(cfg)
	c.byTLS[key] = cl
	return cl, nil
}

func (c *clients) newClient(tlsCfg *tls.Config) *http.Client {
	o := c.opts
	tr := &http.Transport{
		Proxy:                 nil, // an egress proxy would dial on our behalf, past the SSRF guard
		DialContext:           c.guard.DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   o.TLSHandshakeTimeout,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          4 * o.Workers,
		MaxIdleConnsPerHost:   o.PerHostConcurrency,
		MaxConnsPerHost:       0,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   o.RequestTimeout,
		// Redirects are never followed: a 3xx is a failure with its reason.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (c *clients) closeIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.plain.CloseIdleConnections()
	for _, cl := range c.byTLS {
		cl.CloseIdleConnections()
	}
}

// newDialer is the guard's underlying dialer.
func newDialer(o *Options) *net.Dialer {
	return &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
}
