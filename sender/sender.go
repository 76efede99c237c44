package sender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/internal/logging"
)

// Alert is one claimed alert to deliver.
type Alert struct {
	ID                string
	ConfigID          string
	WebhookID         string
	RunID             string
	Event             string
	Payload           []byte // sent verbatim on every attempt
	TargetURL         string
	Secrets           []string // whsec_ secrets; each signs every attempt
	MeshHookSignature bool
	Headers           map[string]string
	Attempts          int // attempts made so far
	CreatedAt         time.Time
}

// Attempt is the record of one delivery attempt.
type Attempt struct {
	AlertID         string
	Attempt         int // 1 for the first
	StartedAt       time.Time
	Latency         time.Duration
	StatusCode      int // 0 when there was no response
	Error           string
	ResponseExcerpt string
	Outcome         string // Outcome.Reason
}

// Alert statuses the sender writes.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Update is an alert's new delivery state after an attempt.
type Update struct {
	Status         string
	Attempts       int
	NextAttemptAt  *time.Time // set when pending again; zero value clears
	LastStatusCode *int
	LastError      string
	OutcomeReason  string
	CompletedAt    *time.Time
}

// Store is what the sender needs from the database.
type Store interface {
	// DueAlerts returns up to limit pending alerts whose next attempt is due.
	DueAlerts(ctx context.Context, now time.Time, limit int) ([]Alert, error)
	RecordAttempts(ctx context.Context, attempts []Attempt) error
	UpdateAlert(ctx context.Context, id string, u Update) error
	// DisableConfig disables a rule whose endpoint is gone (410).
	DisableConfig(ctx context.Context, configID, reason string) error
}

// Options configures a Sender.
type Options struct {
	Workers              int           // concurrent deliveries; default 16
	QueueSize            int           // in-memory queue; default 1024
	RequestTimeout       time.Duration // whole attempt; default 10s
	PollInterval         time.Duration // due-alert polling; default 1s
	ResponseExcerptBytes int           // stored response excerpt; default 4096
	AllowInsecureHTTP    bool          // permit http:// targets
	UserAgent            string
	Schedule             Schedule
	// DrainTimeout bounds how long Run waits for in-flight attempts after
	// its context ends; default 10s.
	DrainTimeout time.Duration
	// Transport overrides the HTTP transport (tests); nil builds a tuned one.
	Transport http.RoundTripper
	Now       func() time.Time
}

func (o *Options) setDefaults() {
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.ResponseExcerptBytes < 0 {
		o.ResponseExcerptBytes = 0
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.Schedule == (Schedule{}) {
		o.Schedule = DefaultSchedule()
	}
	if o.UserAgent == "" {
		o.UserAgent = "meshhook-alerts"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Sender delivers alerts with a bounded worker pool. Create it with New and
// run it with Run; Submit is safe for concurrent use.
type Sender struct {
	opts   Options
	store  Store
	log    *zap.Logger
	client *http.Client
	queue  chan Alert

	mu       sync.Mutex // guards inFlight and recent
	inFlight map[string]struct{}
	recent   map[string]time.Time // recently finished, so a stale poll cannot resend
}

// New builds a Sender.
func New(opts Options, store Store, log *zap.Logger) (*Sender, error) {
	if store == nil {
		return nil, errors.New("sender: store is required")
	}
	opts.setDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	tr := opts.Transport
	if tr == nil {
		tr = newTransport(opts)
	}
	return &Sender{
		opts: opts, store: store, log: log, queue: make(chan Alert, opts.QueueSize),
		client: &http.Client{
			Transport: tr,
			Timeout:   opts.RequestTimeout,
			// Redirects are never followed: a 3xx is a failure with its reason.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		inFlight: map[string]struct{}{},
		recent:   map[string]time.Time{},
	}, nil
}

func newTransport(o Options) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: o.RequestTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   8,
		ForceAttemptHTTP2:     true,
	}
}

// Submit queues an alert for immediate delivery without blocking. It returns
// false when the queue is full or the alert is already being delivered; the
// alert then stays pending in the database and the poller picks it up.
func (s *Sender) Submit(a Alert) bool {
	if !s.acquire(a.ID) {
		return false
	}
	select {
	case s.queue <- a:
		return true
	default:
		s.release(a.ID, false)
		return false
	}
}

func (s *Sender) acquire(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.inFlight[id]; busy {
		return false
	}
	if t, ok := s.recent[id]; ok && s.opts.Now().Sub(t) < time.Minute {
		return false
	}
	s.inFlight[id] = struct{}{}
	return true
}

func (s *Sender) release(id string, finished bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inFlight, id)
	if finished {
		s.recent[id] = s.opts.Now()
	}
}

func (s *Sender) pruneRecent() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for id, t := range s.recent {
		if now.Sub(t) >= time.Minute {
			delete(s.recent, id)
		}
	}
}

// Run delivers alerts until ctx ends, then waits up to DrainTimeout for
// attempts in flight. Alerts not attempted stay pending in the database.
func (s *Sender) Run(ctx context.Context) error {
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var wg sync.WaitGroup
	for range s.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case a := <-s.queue:
					s.deliver(work, a)
				}
			}
		}()
	}
	s.poll(ctx)
	ticker := time.NewTicker(s.opts.PollInterval)
	defer ticker.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-ticker.C:
			s.poll(ctx)
		}
	}
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(s.opts.DrainTimeout):
		s.log.Warn("drain deadline passed; cancelling attempts in flight (they stay pending)")
		stopWork()
		<-drained
	}
	return nil
}

// poll queues due alerts while the queue has room.
func (s *Sender) poll(ctx context.Context) {
	s.pruneRecent()
	room := cap(s.queue) - len(s.queue)
	if room <= 0 {
		return
	}
	due, err := s.store.DueAlerts(ctx, s.opts.Now(), room)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("listing due alerts failed", zap.Error(err))
		}
		return
	}
	for _, a := range due {
		s.Submit(a)
	}
}

// deliver makes one attempt and records it.
func (s *Sender) deliver(ctx context.Context, a Alert) {
	finished := false
	defer func() { s.release(a.ID, finished) }()
	log := s.log.With(zap.String("alert_id", a.ID), zap.String("webhook_id", a.WebhookID),
		zap.String("rule_id", a.ConfigID), zap.String("event", a.Event), zap.String("target", logging.RedactURL(a.TargetURL)))
	attempt := Attempt{AlertID: a.ID, Attempt: a.Attempts + 1, StartedAt: s.opts.Now()}
	code, header, excerpt, err := s.post(ctx, a, attempt.StartedAt)
	attempt.Latency = s.opts.Now().Sub(attempt.StartedAt)
	attempt.StatusCode, attempt.ResponseExcerpt = code, excerpt
	var out Outcome
	var refused *refusedError
	if errors.As(err, &refused) {
		out = Outcome{Kind: Permanent, Reason: refused.reason}
	} else {
		out = Classify(code, err, header, s.opts.Now())
	}
	if err != nil {
		attempt.Error = logging.RedactError(err)
	}
	attempt.Outcome = out.Reason

	u := Update{Attempts: attempt.Attempt, LastError: attempt.Error, OutcomeReason: out.Reason}
	if code != 0 {
		u.LastStatusCode = &code
	}
	now := s.opts.Now()
	switch out.Kind {
	case Success:
		u.Status, u.CompletedAt = StatusSucceeded, &now
	case Retry:
		first := a.CreatedAt
		if first.IsZero() {
			first = attempt.StartedAt
		}
		if next, ok := s.opts.Schedule.Next(attempt.Attempt, first, now, out.RetryAfter); ok {
			u.Status, u.NextAttemptAt = StatusPending, &next
		} else {
			u.Status, u.CompletedAt, u.OutcomeReason = StatusFailed, &now, "gave_up_"+out.Reason
		}
	case Permanent, Gone:
		u.Status, u.CompletedAt = StatusFailed, &now
	}
	if u.Status != StatusPending {
		zero := time.Time{}
		u.NextAttemptAt = &zero
	}

	// Record even when shutting down: the attempt happened.
	rec, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.store.RecordAttempts(rec, []Attempt{attempt}); err != nil {
		log.Error("recording attempt failed", zap.Error(err))
	}
	if err := s.store.UpdateAlert(rec, a.ID, u); err != nil {
		log.Error("updating alert failed; it will be retried", zap.Error(err))
		return
	}
	finished = u.Status != StatusPending
	fields := []zap.Field{zap.Int("attempt", attempt.Attempt), zap.Int("status_code", code),
		zap.Duration("latency", attempt.Latency), zap.String("outcome", out.Reason)}
	switch out.Kind {
	case Success:
		log.Info("alert delivered", fields...)
	case Retry:
		if u.NextAttemptAt != nil && !u.NextAttemptAt.IsZero() {
			fields = append(fields, zap.Time("next_attempt_at", *u.NextAttemptAt))
		}
		log.Warn("alert attempt failed", append(fields, zap.String("status", u.Status), zap.String("error", attempt.Error))...)
	case Gone:
		log.Warn("endpoint gone (410); disabling the rule", fields...)
		if err := s.store.DisableConfig(rec, a.ConfigID, "endpoint answered 410 Gone"); err != nil {
			log.Error("disabling rule failed", zap.Error(err))
		}
	case Permanent:
		log.Warn("alert failed permanently", append(fields, zap.String("error", attempt.Error))...)
	}
}

// refusedError is an attempt the sender refused to make.
type refusedError struct{ reason, detail string }

func (e *refusedError) Error() string { return e.detail }

// post sends one signed attempt and returns the status, headers and a capped
// excerpt of the response body.
func (s *Sender) post(ctx context.Context, a Alert, at time.Time) (int, http.Header, string, error) {
	u, err := url.Parse(a.TargetURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return 0, nil, "", &refusedError{"invalid_url", "the webhook URL is not an absolute http(s) URL"}
	}
	if u.Scheme == "http" && !s.opts.AllowInsecureHTTP {
		return 0, nil, "", &refusedError{"insecure_url", "plain http webhook URLs are refused (sender.allow_insecure_http)"}
	}
	keys := make([][]byte, 0, len(a.Secrets))
	for _, sec := range a.Secrets {
		k, err := ParseSecret(sec)
		if err != nil {
			return 0, nil, "", &refusedError{"bad_secret", "a signing secret is invalid: " + err.Error()}
		}
		keys = append(keys, k)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.opts.RequestTimeout, ErrAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.TargetURL, bytes.NewReader(a.Payload))
	if err != nil {
		return 0, nil, "", &refusedError{"invalid_url", err.Error()}
	}
	for k, v := range a.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.opts.UserAgent)
	req.Header.Set(HeaderID, a.WebhookID)
	req.Header.Set(HeaderTimestamp, fmt.Sprint(at.Unix()))
	if len(keys) > 0 {
		req.Header.Set(HeaderSignature, Sign(keys, a.WebhookID, at, a.Payload))
	}
	if a.MeshHookSignature && len(a.Secrets) > 0 {
		req.Header.Set(HeaderMeshHook, MeshHookSignature(a.Secrets[0], a.Payload))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, int64(s.opts.ResponseExcerptBytes)))
	// Drain a little more so the connection can be reused.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	return resp.StatusCode, resp.Header, strings.ToValidUTF8(string(body), "\uFFFD"), nil
}
