package supabase

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/supabase-community/postgrest-go"
	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/internal/jsonscan"
)

// Defaults for Options fields left zero.
const (
	DefaultSchema              = "public"
	DefaultTimeout             = 10 * time.Second
	DefaultMaxRetries          = 3
	DefaultRetryInitial        = 200 * time.Millisecond
	DefaultRetryMaxInterval    = 5 * time.Second
	DefaultRetryMaxElapsed     = 30 * time.Second
	DefaultMaxRetryAfter       = 30 * time.Second
	DefaultPageSize            = 1000
	DefaultDialTimeout         = 5 * time.Second
	DefaultTLSHandshakeTimeout = 5 * time.Second
	DefaultIdleConnTimeout     = 90 * time.Second
	DefaultMaxIdleConnsPerHost = 8
	DefaultMaxResponseBytes    = 64 << 20
	DefaultUserAgent           = "meshhook-alerts"
)

// Options configures a Store. URL and ServiceKey are required; every other
// zero field takes the documented default.
type Options struct {
	// URL is the Supabase project URL (https://<ref>.supabase.co); "/rest/v1"
	// is appended unless the URL already ends with it.
	URL string
	// ServiceKey is the service-role key: a legacy service_role JWT (sent as
	// apikey and as Authorization: Bearer) or a new sb_secret_… key (sent as
	// apikey only, since it is not a JWT). It never appears in errors or logs.
	ServiceKey string
	// Schema holds the alert tables. Defaults to "public".
	Schema string
	// Timeout bounds each HTTP request (one attempt). Defaults to 10s.
	Timeout time.Duration
	// MaxRetries is how many times a transient failure is retried after the
	// first attempt. Defaults to 3; a negative value disables retries.
	MaxRetries int
	// RetryInitialInterval and RetryMaxInterval bound the jittered
	// exponential backoff between attempts. Default 200ms and 5s.
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	// RetryMaxElapsed stops retrying once this much time has passed since
	// the first attempt. Defaults to 30s.
	RetryMaxElapsed time.Duration
	// MaxRetryAfter is the longest Retry-After the store waits for; a longer
	// one ends the call with the error instead. Defaults to 30s.
	MaxRetryAfter time.Duration
	// PageSize is the number of rows asked for per page when listing. The
	// server may return fewer (Supabase caps responses at max_rows, 1000 by
	// default); listing stops only at an empty page. Defaults to 1000.
	PageSize int
	// DialTimeout, TLSHandshakeTimeout, IdleConnTimeout and
	// MaxIdleConnsPerHost tune the HTTP transport. Defaults 5s, 5s, 90s, 8.
	// They are ignored when Transport is set.
	DialTimeout         time.Duration
	TLSHandshakeTimeout time.Duration
	IdleConnTimeout     time.Duration
	MaxIdleConnsPerHost int
	// MaxResponseBytes caps a successful response body. Defaults to 64 MiB.
	MaxResponseBytes int64
	// Transport, if set, replaces the store's own *http.Transport (tests).
	Transport http.RoundTripper
	// UserAgent is sent with every request. Defaults to "meshhook-alerts".
	UserAgent string
	// Logger receives retry warnings. Nil discards them.
	Logger *zap.Logger
}

// String describes the options with the key redacted.
func (o Options) String() string {
	return fmt.Sprintf("supabase.Options{URL:%q ServiceKey:%s Schema:%q Timeout:%s MaxRetries:%d}",
		o.URL, redacted, o.Schema, o.Timeout, o.MaxRetries)
}

func (o *Options) setDefaults() {
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	} else if o.MaxRetries < 0 {
		o.MaxRetries = 0
	}
	if o.RetryInitialInterval <= 0 {
		o.RetryInitialInterval = DefaultRetryInitial
	}
	if o.RetryMaxInterval <= 0 {
		o.RetryMaxInterval = DefaultRetryMaxInterval
	}
	if o.RetryMaxElapsed <= 0 {
		o.RetryMaxElapsed = DefaultRetryMaxElapsed
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = DefaultIdleConnTimeout
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
}

// Store is the daemon's typed access to its Supabase tables over REST. It
// is safe for concurrent use; it starts no goroutines. Call Close to release
// idle connections.
type Store struct {
	opts   Options
	client *postgrest.Client
	http   http.RoundTripper // the base transport, for Close
	log    *zap.Logger

	// Function calls bypass postgrest-go (see rpc): the same transport,
	// with the headers postgrest-go sends but its X-Client-Info.
	rpcClient *http.Client
	rpcBase   string // <rest URL>/rpc/
	rpcHeader http.Header
}

// New validates opts and returns a Store. It does not contact the server.
func New(opts Options) (*Store, error) {
	opts.setDefaults()
	if opts.ServiceKey == "" {
		return nil, errors.New("supabase: ServiceKey is required")
	}
	if strings.ContainsAny(opts.ServiceKey, "\r\n") {
		return nil, errors.New("supabase: ServiceKey contains a line break")
	}
	restURL, err := restBase(opts.URL)
	if err != nil {
		return nil, err
	}
	if err := checkIdent("Schema", opts.Schema); err != nil {
		return nil, err
	}
	base := opts.Transport
	if base == nil {
		base = newHTTPTransport(&opts)
	}
	headers := map[string]string{
		"apikey":     opts.ServiceKey,
		"User-Agent": opts.UserAgent,
	}
	if !strings.HasPrefix(opts.ServiceKey, "sb_") {
		headers["Authorization"] = "Bearer " + opts.ServiceKey
	}
	client, err := postgrest.NewClientWithError(restURL, opts.Schema, headers)
	if err != nil {
		return nil, fmt.Errorf("supabase: URL: %w", err)
	}
	tr := &transport{
		base:    base,
		secrets: []string{opts.ServiceKey},
		maxBody: opts.MaxResponseBytes,
		now:     time.Now,
	}
	client.Transport.Parent = tr
	rpcHeader := http.Header{
		"Accept":          {"application/json"},
		"Content-Type":    {"application/json"},
		"Accept-Profile":  {opts.Schema},
		"Content-Profile": {opts.Schema},
	}
	for k, v := range headers {
		rpcHeader.Set(k, v)
	}
	return &Store{opts: opts, client: client, http: base, log: opts.Logger,
		rpcClient: &http.Client{Transport: tr}, rpcBase: restURL + "/rpc/", rpcHeader: rpcHeader}, nil
}

// Close releases idle connections. The store stays usable.
func (s *Store) Close() {
	if c, ok := s.http.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// restBase turns the project URL into the REST base URL.
func restBase(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("supabase: URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("supabase: URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("supabase: URL %q: want http(s)://host", u.Redacted())
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("supabase: URL %q: must not carry credentials, a query or a fragment", u.Redacted())
	}
	p := strings.TrimRight(u.Path, "/")
	if !strings.HasSuffix(p, "/rest/v1") {
		p += "/rest/v1"
	}
	u.Path = p
	return u.String(), nil
}

// checkIdent accepts plain SQL identifiers, the only table and column names
// the store interpolates into PostgREST URLs.
func checkIdent(field, name string) error {
	if name == "" {
		return fmt.Errorf("supabase: %s is required", field)
	}
	for i, r := range name {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("supabase: %s %q: want a plain identifier (letters, digits, underscore)", field, name)
		}
	}
	return nil
}

// headers for one request.
type reqHeaders = http.Header

// preferHeader builds a Prefer override.
func preferHeader(prefs ...string) reqHeaders {
	return reqHeaders{"Prefer": {strings.Join(prefs, ",")}}
}

// profileHeaders selects a schema other than the store's.
func (s *Store) profileHeaders(h reqHeaders, schema string) reqHeaders {
	if schema == "" || schema == s.opts.Schema {
		return h
	}
	if h == nil {
		h = reqHeaders{}
	}
	h["Accept-Profile"] = []string{schema}
	h["Content-Profile"] = []string{schema}
	return h
}

// exec runs one request built by build, with the per-request deadline,
// header overrides and retries. build is called again for every attempt.
func (s *Store) exec(ctx context.Context, op string, h reqHeaders, build func() *postgrest.FilterBuilder) ([]byte, error) {
	var body []byte
	err := s.retry(ctx, op, func(ctx context.Context) error {
		if len(h) > 0 {
			ctx = withHeaders(ctx, h)
		}
		b, _, err := build().ExecuteWithContext(ctx)
		if err != nil {
			return err
		}
		body = b
		return nil
	})
	return body, err
}

// retry calls fn until it succeeds, fails permanently, or the retry budget
// (MaxRetries, RetryMaxElapsed, ctx) is spent. Each call gets its own
// Timeout.
func (s *Store) retry(ctx context.Context, op string, fn func(context.Context) error) error {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(s.opts.RetryInitialInterval),
		backoff.WithMaxInterval(s.opts.RetryMaxInterval),
		backoff.WithMaxElapsedTime(s.opts.RetryMaxElapsed),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMultiplier(2),
	)
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return opError(op, attempt-1, err)
		}
		actx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		err := fn(actx)
		timedOut := err != nil && actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil {
			return nil
		}
		err = unwrapURLError(err)
		if timedOut {
			err = fmt.Errorf("%w (no response within %s)", err, s.opts.Timeout)
		}
		if ctx.Err() != nil || !IsRetryable(err) || attempt > s.opts.MaxRetries {
			return opError(op, attempt, err)
		}
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			return opError(op, attempt, err)
		}
		if ra := retryAfter(err); ra > 0 {
			if ra > s.opts.MaxRetryAfter {
				return opError(op, attempt, err)
			}
			wait = max(wait, ra)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return opError(op, attempt, err)
		}
		s.log.Warn("request failed; retrying", zap.String("op", op), zap.Int("attempt", attempt),
			zap.Duration("backoff", wait), zap.Error(err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return opError(op, attempt, err)
		case <-t.C:
		}
	}
}

// unwrapURLError drops http.Client's *url.Error around our *Error: the
// status says more than the method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if e, ok := asError(ue.Err); ok {
			return e
		}
	}
	return err
}

func opError(op string, attempts int, err error) error {
	if attempts > 1 {
		return fmt.Errorf("supabase: %s (%d attempts): %w", op, attempts, err)
	}
	return fmt.Errorf("supabase: %s: %w", op, err)
}

// decodeArray decodes a JSON array response into its raw rows.
func decodeArray(body []byte) ([]json.RawMessage, error) {
	var rows []json.RawMessage
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(body, &rows); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	return rows, nil
}

// decodeObject decodes one row as a map, numbers as json.Number.
func decodeObject(raw json.RawMessage) (map[string]any, error) {
	p := jsonscan.NewParser(raw)
	p.SkipSpace()
	m, err := scanRow(&p, jsonscan.Unescape)
	if err == nil {
		err = p.End()
	}
	if err != nil {
		return nil, fmt.Errorf("decode row: %w", err)
	}
	return m, nil
}

// decodeMaps decodes an array of rows (PostgREST's answer to a select) as
// maps, numbers as json.Number, as encoding/json would with UseNumber, in
// one pass over the body and with each column name allocated once (a page
// of rows repeats the same names): the reconciler reads every changed run
// this way, and encoding/json made that a quarter of the daemon's CPU in a
// burst. A blank body or null is no rows.
func decodeMaps(body []byte) ([]map[string]any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	p := jsonscan.NewParser(body)
	p.SkipSpace()
	if p.Literal("null") {
		if err := p.End(); err != nil {
			return nil, fmt.Errorf("decode response: %w", err)
		}
		return nil, nil
	}
	keys := map[string]string{}
	key := func(raw []byte) string {
		if k, ok := keys[string(raw)]; ok {
			return k
		}
		k := jsonscan.Unescape(raw)
		keys[string(raw)] = k
		return k
	}
	var rows []map[string]any
	err := p.Array(func() error {
		m, err := scanRow(&p, key)
		if err != nil {
			return fmt.Errorf("decode row: %w", err)
		}
		rows = append(rows, m)
		return nil
	})
	if err == nil {
		err = p.End()
	}
	if err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	return rows, nil
}

// scanRow decodes the object at p's position.
func scanRow(p *jsonscan.Parser, key func([]byte) string) (map[string]any, error) {
	if p.Peek() != '{' {
		if err := p.SkipValue(); err != nil {
			return nil, err
		}
		return nil, errors.New("not an object")
	}
	v, err := p.Value(key)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}
