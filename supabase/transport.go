package supabase

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// errorBodyLimit caps how much of an error response is read.
	errorBodyLimit = 16 << 10
	// errorExcerptLimit caps the body excerpt kept for non-JSON errors.
	errorExcerptLimit = 200
	redacted          = "[REDACTED]"
)

// headerKey is the context key for per-request header overrides.
type headerKey struct{}

// withHeaders returns a context whose requests carry h, replacing any
// values the REST library set for the same names. postgrest-go has no
// per-request header API (for example for Prefer), so the store passes them
// down to its transport this way.
func withHeaders(ctx context.Context, h http.Header) context.Context {
	if prev, ok := ctx.Value(headerKey{}).(http.Header); ok {
		merged := prev.Clone()
		for k, v := range h {
			merged[k] = v
		}
		h = merged
	}
	return context.WithValue(ctx, headerKey{}, h)
}

// transport is the http.RoundTripper under postgrest-go's client. It applies
// the per-request header overrides from the context and turns every non-2xx
// response into an *Error, so status and PostgREST's error fields survive
// the library (which flattens errors into strings). http.Client wraps the
// *Error in a *url.Error, which unwraps, so errors.As finds it.
type transport struct {
	base    http.RoundTripper
	secrets []string // redacted from anything read from an error body
	maxBody int64    // cap on successful response bodies; 0 = none
	now     func() time.Time
}

// RoundTrip implements http.RoundTripper. It never modifies req.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if h, ok := req.Context().Value(headerKey{}).(http.Header); ok && len(h) > 0 {
		req = req.Clone(req.Context())
		for k, v := range h {
			if len(v) == 0 {
				req.Header.Del(k)
				continue
			}
			req.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if t.maxBody > 0 {
			resp.Body = &limitedBody{rc: resp.Body, left: t.maxBody}
		}
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, errorBodyLimit)) // let the connection be reused
	return nil, t.newError(resp, body)
}

// newError builds the typed error of a non-2xx response.
func (t *transport) newError(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), t.now())}
	var pg struct {
		Code    json.RawMessage `json:"code"`
		Message json.RawMessage `json:"message"`
		Details json.RawMessage `json:"details"`
		Hint    json.RawMessage `json:"hint"`
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &pg) == nil &&
		(pg.Code != nil || pg.Message != nil) {
		e.Code = t.scrub(jsonText(pg.Code))
		e.Message = t.scrub(jsonText(pg.Message))
		e.Details = t.scrub(jsonText(pg.Details))
		e.Hint = t.scrub(jsonText(pg.Hint))
		return e
	}
	e.Message = http.StatusText(resp.StatusCode)
	if e.Message == "" {
		e.Message = "unexpected status"
	}
	if ex := excerpt(trimmed); ex != "" {
		e.Message += ": " + t.scrub(ex)
	}
	return e
}

// scrub removes the API key from text that came from the server.
func (t *transport) scrub(s string) string {
	for _, secret := range t.secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, redacted)
		}
	}
	return s
}

// jsonText renders a JSON value as text: strings unquoted, null as "",
// anything else as its compact JSON.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return buf.String()
	}
	return string(raw)
}

// excerpt is a short, single-line, valid-UTF-8 excerpt of a body.
func excerpt(b []byte) string {
	s := strings.ToValidUTF8(string(b), "")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > errorExcerptLimit {
		cut := errorExcerptLimit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// limitedBody fails a read once more than left bytes were read, instead of
// silently truncating the response.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One more byte tells a body of exactly the limit from a longer one.
		var one [1]byte
		n, err := l.rc.Read(one[:])
		if n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

// newHTTPTransport is the tuned transport used when Options.Transport is nil.
func newHTTPTransport(o *Options) *http.Transport {
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   o.TLSHandshakeTimeout,
		ResponseHeaderTimeout: o.Timeout + time.Second, // a backstop: each request has a Timeout deadline
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          o.MaxIdleConnsPerHost * 2,
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       o.IdleConnTimeout,
	}
}
