package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// IsLoopbackHost reports whether host (a URL's or listen address's host,
// without brackets or port) is "localhost" or a loopback IP address
// (127.0.0.0/8, ::1, or one of those IPv4 addresses mapped into IPv6).
// Everything else, including "" and 0.0.0.0 (every interface) and any
// other host name, is reachable from other machines as far as the daemon
// can tell.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// loopbackHosts names what IsLoopbackHost accepts, for messages.
const loopbackHosts = "127.0.0.0/8, ::1 and localhost"

// cleartextURL refuses u when its scheme is the cleartext one (http, ws) and
// its host is not loopback, unless supabase.allow_insecure is set: the
// service-role key travels with every request to it.
func (v *validator) cleartextURL(field string, u *url.URL, plain, secure string, allow bool) {
	if u.Scheme != plain || allow || IsLoopbackHost(u.Hostname()) {
		return
	}
	v.add(field, "%s:// to %q would send the service-role key in cleartext: use %s://, or set supabase.allow_insecure: true "+
		"(without it plain %s is allowed only to loopback hosts, %s)", plain, u.Hostname(), secure, plain, loopbackHosts)
}

// cleartext refuses a listener on a host that is not loopback serving the
// HTTP API, the web UI or the profiling endpoints, which all carry tokens,
// without TLS, unless http.allow_insecure says a TLS-terminating proxy is in
// front.
func (h HTTP) cleartext(v *validator, c *Config, host string) {
	if h.TLS() || h.AllowInsecure || IsLoopbackHost(host) {
		return
	}
	var served []string
	switch {
	case c.API.Enabled && c.UI.Enabled:
		served = append(served, "the HTTP API and web UI (api.enabled)")
	case c.API.Enabled:
		served = append(served, "the HTTP API (api.enabled)")
	}
	if h.Pprof {
		served = append(served, "the profiling endpoints (http.pprof)")
	}
	if len(served) == 0 {
		return // health and metrics only: nothing secret travels
	}
	v.add("http.listen", "%q is not a loopback address, and %s would send tokens, webhook URLs and secrets over it in cleartext: "+
		"set http.tls_cert_file and http.tls_key_file to serve TLS, or http.allow_insecure: true if a TLS-terminating proxy is in front",
		h.Listen, strings.Join(served, " and "))
}

// CheckFiles reads the files the configuration names (the listener's TLS
// certificate, key and client CA bundle) and reports each that cannot be
// used as a *FieldError, joined as Validate joins them. Warnings are about
// files that can be used but have a problem worth knowing, such as a
// certificate that has expired (clients refuse it) at now. Validate reads
// no files; check-config and the daemon's start call both.
func (c *Config) CheckFiles(now time.Time) (warnings []string, err error) {
	v := &validator{}
	h := c.HTTP
	if c.HTTP.Listen == "" || !h.TLS() {
		return nil, nil
	}
	certPEM, cerr := os.ReadFile(h.TLSCertFile)
	if cerr != nil {
		v.add("http.tls_cert_file", "%v", cerr)
	}
	keyPEM, kerr := os.ReadFile(h.TLSKeyFile)
	if kerr != nil {
		v.add("http.tls_key_file", "%v", kerr)
	}
	if cerr == nil && kerr == nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		switch {
		case err != nil:
			v.add("http.tls_cert_file", "cannot be used with http.tls_key_file: %v", err)
		case now.After(pair.Leaf.NotAfter):
			warnings = append(warnings, fmt.Sprintf("http.tls_cert_file: the certificate expired at %s; clients will refuse it",
				pair.Leaf.NotAfter.UTC().Format(time.RFC3339)))
		case now.Before(pair.Leaf.NotBefore):
			warnings = append(warnings, fmt.Sprintf("http.tls_cert_file: the certificate is not valid before %s; clients will refuse it until then",
				pair.Leaf.NotBefore.UTC().Format(time.RFC3339)))
		}
	}
	if h.TLSClientCAFile != "" {
		if pem, err := os.ReadFile(h.TLSClientCAFile); err != nil {
			v.add("http.tls_client_ca_file", "%v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			v.add("http.tls_client_ca_file", "no PEM certificate in %s", h.TLSClientCAFile)
		}
	}
	return warnings, errors.Join(v.errs...)
}
