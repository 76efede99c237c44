package chaos

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// postgrestUnavailable is the body of an injected 503, shaped like
// PostgREST's answer when it cannot reach the database.
const postgrestUnavailable = `{"code":"PGRST001","details":"chaos: injected outage","hint":null,"message":"Database client error. Retrying the connection."}`

// Proxy sits between the daemon and the stand-in. It forwards everything,
// websocket upgrades included, and while failing answers every /rest/v1/
// request with a PostgREST-shaped 503.
type Proxy struct {
	URL string

	srv      *http.Server
	rp       *httputil.ReverseProxy
	failing  atomic.Bool
	failPath atomic.Pointer[string]
	failed   atomic.Int64
	wg       sync.WaitGroup
}

// NewProxy starts a proxy on 127.0.0.1 in front of target.
func NewProxy(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("chaos: proxy target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("chaos: proxy listen: %w", err)
	}
	p := &Proxy{URL: "http://" + ln.Addr().String(), rp: httputil.NewSingleHostReverseProxy(u)}
	p.rp.ErrorLog = log.New(io.Discard, "", 0) // cut connections are expected
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// ServeHTTP forwards req, or fails it during a burst.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	fail := p.failing.Load() && strings.HasPrefix(req.URL.Path, "/rest/v1/")
	if fp := p.failPath.Load(); fp != nil && strings.HasPrefix(req.URL.Path, *fp) {
		fail = true
	}
	if fail {
		p.failed.Add(1)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(postgrestUnavailable))
		return
	}
	p.rp.ServeHTTP(w, req)
}

// SetFailing starts (true) or ends (false) a burst of 503s.
func (p *Proxy) SetFailing(on bool) { p.failing.Store(on) }

// FailPath answers 503 to every request whose path starts with prefix
// (e.g. "/rest/v1/alert_configs"); "" stops.
func (p *Proxy) FailPath(prefix string) {
	if prefix == "" {
		p.failPath.Store(nil)
		return
	}
	p.failPath.Store(&prefix)
}

// Failed returns the number of requests answered with an injected 503.
func (p *Proxy) Failed() int { return int(p.failed.Load()) }

// Close stops the proxy. Websocket connections it carries end when either
// side closes them.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	p.wg.Wait()
	return err
}
