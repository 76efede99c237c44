// Package ops serves the daemon's operational endpoints on a local listener:
// /healthz (the process is alive), /readyz (every readiness check passes)
// and /metrics (Prometheus exposition), next to whatever is mounted there
// (the HTTP API, the web UI), over plain HTTP or TLS (UseTLS), with the
// browser security headers on every response.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Check reports nil when one readiness condition holds, else why not.
type Check func() error

// Server is the operational HTTP server. Create it with New and run it with Run.
type Server struct {
	addr   string
	checks map[string]Check
	// degraded are checks whose failure /readyz reports without failing:
	// the daemon still does its job another way.
	degraded map[string]Check
	registry *prometheus.Registry
	log      *zap.Logger
	ln       net.Listener
	mounts   []mount
	tls      *certSource // nil: plain HTTP
}

// mount is a handler served next to the operational endpoints.
type mount struct {
	pattern string
	h       http.Handler
}

// Mount serves h for pattern (an http.ServeMux pattern such as "/api/")
// next to the operational endpoints, for example the HTTP API. Call it
// before Handler or Run.
func (s *Server) Mount(pattern string, h http.Handler) {
	s.mounts = append(s.mounts, mount{pattern: pattern, h: h})
}

// New builds a server for addr ("host:port"). checks are the named
// readiness conditions; collectors are registered next to the Go and
// process collectors.
func New(addr string, checks map[string]Check, log *zap.Logger, cs ...prometheus.Collector) (*Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Server{addr: addr, checks: checks, registry: reg, log: log}, nil
}

// Degraded adds a check that /readyz reports under "degraded" when it
// fails, answering 200 all the same: for example Realtime being down while
// reconciliation still finds every change. Call it before Handler or Run.
func (s *Server) Degraded(name string, c Check) {
	if s.degraded == nil {
		s.degraded = map[string]Check{}
	}
	s.degraded[name] = c
}

// UseTLS makes the server serve TLS only, with the certificate and key in
// files (and, with files.ClientCAFile, client certificates required on
// /metrics). The files are loaded now, and again when they change or
// ReloadTLS is called. Call it before Handler or Run.
func (s *Server) UseTLS(files TLSFiles) error {
	src, err := newCertSource(files, s.log.Named("tls"))
	if err != nil {
		return err
	}
	if err := s.registry.Register(src); err != nil {
		return err
	}
	s.tls = src
	return nil
}

// ReloadTLS reads the TLS files again now, as on SIGHUP. On an error the
// previous certificate is still served.
func (s *Server) ReloadTLS() error {
	if s.tls == nil {
		return errNoTLS
	}
	return s.tls.Reload()
}

// TLS reports whether the server serves TLS.
func (s *Server) TLS() bool { return s.tls != nil }

// Registry is where further collectors can be registered.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Handler serves the endpoints and the mounted handlers, every response
// with the browser security headers (see securityHeaders).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		failing := failed(s.checks)
		degraded := failed(s.degraded)
		if len(failing) > 0 {
			body := map[string]any{"status": "not ready", "failing": failing}
			if len(degraded) > 0 {
				body["degraded"] = degraded
			}
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
		if len(degraded) > 0 {
			writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "degraded": degraded})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	var metrics http.Handler = promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
	if s.tls != nil && s.tls.files.ClientCAFile != "" {
		metrics = requireClientCert(metrics)
	}
	mux.Handle("GET /metrics", metrics)
	for _, m := range s.mounts {
		mux.Handle(m.pattern, m.h)
	}
	return securityHeaders(mux)
}

// Ready reports whether every check passes.
func (s *Server) Ready() bool { return len(failed(s.checks)) == 0 }

// failed runs checks and returns the failing ones' errors by name.
func failed(checks map[string]Check) map[string]string {
	out := map[string]string{}
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := checks[n](); err != nil {
			out[n] = err.Error()
		}
	}
	return out
}

// Listen binds the address (so a bad address fails at start-up) and
// returns the bound address.
func (s *Server) Listen() (string, error) {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return "", err
	}
	s.ln = ln
	return ln.Addr().String(), nil
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if _, err := s.Listen(); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second,
		ErrorLog: serverErrorLog(s.log)}
	done := make(chan error, 1)
	if s.tls != nil {
		srv.TLSConfig = s.tls.Config()
		go func() { done <- srv.ServeTLS(s.ln, "", "") }()
	} else {
		go func() { done <- srv.Serve(s.ln) }()
	}
	s.log.Info("operational endpoints listening", zap.String("addr", s.ln.Addr().String()), zap.Bool("tls", s.tls != nil))
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
