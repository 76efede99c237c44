package ops

import (
	"bytes"
	"log"
	"net/http"

	"go.uber.org/zap"
)

// ContentSecurityPolicy is the policy of every response that sets none of
// its own: nothing may be loaded, run or framed. The API's JSON and the
// operational endpoints need nothing; the web UI sets its own, as strict
// about scripts and styles (its own files only, never inline).
const ContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// StrictTransportSecurity is sent with every response over TLS: browsers
// then use only HTTPS to this host for a year.
const StrictTransportSecurity = "max-age=31536000"

// securityHeaders sets the browser security headers on every response of
// h: a Content-Security-Policy (which a handler may replace with its own,
// as the web UI does), no framing, no Referer sent on, no MIME sniffing,
// and Strict-Transport-Security on requests that came over TLS.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", ContentSecurityPolicy)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		if r.TLS != nil {
			hd.Set("Strict-Transport-Security", StrictTransportSecurity)
		}
		h.ServeHTTP(w, r)
	})
}

// serverErrorLog routes net/http's own error log to zap: failed TLS
// handshakes (scanners, clients refusing the certificate) at debug level,
// anything else at warn.
func serverErrorLog(l *zap.Logger) *log.Logger {
	return log.New(errorLogWriter{l.Named("http")}, "", 0)
}

type errorLogWriter struct{ log *zap.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	if bytes.Contains(p, []byte("TLS handshake error")) {
		w.log.Debug(msg)
	} else {
		w.log.Warn(msg)
	}
	return len(p), nil
}
