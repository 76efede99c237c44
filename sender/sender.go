package sender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/meshhook/meshhook-alerts/internal/logging"
)

// Options configures a Sender. Zero fields take the documented defaults.
type Options struct {
	Workers            int // concurrent attempts overall; default 16
	PerHostConcurrency int // concurrent attempts per destination host; default 4
	// QueueSize bounds the alerts held in memory (leased, waiting, running
	// or being recorded); default 10000. Alerts beyond it stay pending in the
	// database (back-pressure, never a drop).
	QueueSize             int
	RequestTimeout        time.Duration // whole attempt; default 10s
	ConnectTimeout        time.Duration // TCP connect; default 5s
	TLSHandshakeTimeout   time.Duration // default 5s
	ResponseHeaderTimeout time.Duration // default RequestTimeout
	PollInterval          time.Duration // due-alert polling; default 1s
	// Lease is how long an alert taken for delivery stays reserved to this
	// sender. A sender that dies holding it leaves the alert delivering
	// until the lease expires; another sender then takes it over. Must be at
	// least twice RequestTimeout; default max(2m, 4×RequestTimeout).
	Lease                time.Duration
	ResponseExcerptBytes int  // stored response excerpt; default 0 (none)
	AllowInsecureHTTP    bool // permit http:// targets
	// AllowedNetworks lists CIDRs, IPs and host names ("*.example" for
	// subdomains) the SSRF guard lets through although they are internal.
	AllowedNetworks []string
	// Resolver resolves destination hosts; nil uses net.DefaultResolver.
	Resolver  Resolver
	UserAgent string
	Schedule  Schedule
	Breaker   BreakerOptions
	// WriteBatch caps the outcomes recorded in one Store.Report call
	// (default 500); WriteLinger is how long a writer waits for more before
	// writing a batch (default 2ms); Writers is how many batches may be in
	// flight at once (default 2).
	WriteBatch  int
	WriteLinger time.Duration
	Writers     int
	// DrainTimeout bounds how long Run waits for attempts in flight after
	// its context ends; default 10s.
	DrainTimeout time.Duration
	Now          func() time.Time
	// Observer, when set, is told the dispatch latency of first attempts.
	Observer Observer
}

func (o *Options) setDefaults() {
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.PerHostConcurrency <= 0 {
		o.PerHostConcurrency = 4
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 10000
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = 5 * time.Second
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = o.RequestTimeout
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Lease <= 0 {
		o.Lease = max(2*time.Minute, 4*o.RequestTimeout)
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
	if o.WriteBatch <= 0 {
		o.WriteBatch = 500
	}
	if o.WriteLinger < 0 {
		o.WriteLinger = 0
	} else if o.WriteLinger == 0 {
		o.WriteLinger = 2 * time.Millisecond
	}
	if o.Writers <= 0 {
		o.Writers = 2
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// leaseBatch caps the alerts leased per Store call.
const leaseBatch = 256

// Sender delivers alerts. It leases due alerts from its Store, runs at most
// Workers attempts at once (at most PerHostConcurrency per host, with a
// circuit breaker per endpoint), signs every attempt, and records each outcome
// durably, in batches, before it considers the alert done. Create it with
// New and run it with Run; Wake is safe for concurrent use.
type Sender struct {
	opts     Options
	store    Store
	log      *zap.Logger
	alertLog *zap.Logger // log, reporting the caller of alertLogger's methods
	guard    *Guard
	clients  *clients
	breakers *breakers
	disp     *dispatcher
	writer   *writer
	wake     chan struct{}
	running  atomic.Bool
	// accepting is true while Run takes alerts handed over with Deliver;
	// handoff orders Deliver calls before the shutdown that clears it.
	accepting atomic.Bool
	handoff   sync.RWMutex

	work context.Context // attempts run under it; cancelled after the drain timeout
	jobs sync.WaitGroup  // jobs started and not yet delivered, and settleAsync calls not yet done
	held atomic.Int64    // alerts leased and not yet settled

	stats senderStats
}

// New builds a Sender.
func New(opts Options, store Store, log *zap.Logger) (*Sender, error) {
	if store == nil {
		return nil, errors.New("sender: store is required")
	}
	opts.setDefaults()
	if opts.Lease < 2*opts.RequestTimeout {
		return nil, fmt.Errorf("sender: lease %s must be at least twice the request timeout %s", opts.Lease, opts.RequestTimeout)
	}
	if log == nil {
		log = zap.NewNop()
	}
	guard, err := NewGuard(opts.AllowedNetworks, opts.Resolver, newDialer(&opts))
	if err != nil {
		return nil, err
	}
	s := &Sender{
		opts: opts, store: store, log: log, alertLog: log.WithOptions(zap.AddCallerSkip(2)), guard: guard, breakers: newBreakers(opts.Breaker),
		wake: make(chan struct{}, 1), stats: senderStats{attempts: map[string]uint64{}, reschedules: map[string]uint64{}},
	}
	s.clients = newClients(&s.opts, guard)
	s.disp = newDispatcher(opts.Workers, opts.PerHostConcurrency, s.start)
	s.writer = newWriter(store, log, opts.QueueSize, opts.WriteBatch, opts.WriteLinger, opts.Lease/2)
	return s, nil
}

// Wake tells the sender that alerts may be due now (for example right after
// a claim), so it polls without waiting for the next PollInterval. It never
// blocks.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run delivers alerts until ctx ends. It then stops leasing, releases the
// alerts it has not started, waits up to DrainTimeout for attempts in
// flight (cancelling the rest, which are recorded and retried later), and
// writes every outcome before returning.
func (s *Sender) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sender: Run called twice")
	}
	writes, stopWrites := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWrites()
	s.writer.start(writes, s.opts.Writers)
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	s.work = work

	s.accepting.Store(true)
	s.fill(ctx)
	ticker := time.NewTicker(s.opts.PollInterval)
	defer ticker.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-ticker.C:
			s.sweep()
		case <-s.wake:
		}
		s.fill(ctx)
	}

	// Shutdown: hand back what has not started, drain what has.
	s.handoff.Lock()
	s.accepting.Store(false)
	s.handoff.Unlock()
	for _, j := range s.disp.take("*", func(*job) bool { return true }) {
		s.settleAsync(j, s.release(j, s.opts.Now(), ""))
	}
	drained := make(chan struct{})
	go func() { s.jobs.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(s.opts.DrainTimeout):
		s.log.Warn("drain deadline passed; cancelling attempts in flight (they are recorded and retried)")
		stopWork()
		<-drained
	}
	flushed := make(chan struct{})
	go func() { s.writer.close(); close(flushed) }()
	select {
	case <-flushed:
	case <-time.After(30 * time.Second):
		s.log.Error("recording outcomes did not finish; unrecorded alerts are retried when their lease expires")
		stopWrites()
		<-flushed
	}
	s.clients.closeIdle()
	return nil
}

// Reserve makes room in memory for up to n alerts that the caller is about
// to claim already leased to this sender, and returns how many it made room
// for and the lease expiry to claim them with. It returns 0 when the sender
// is full or not running. Each reservation is then used by Deliver or
// returned by Unreserve.
func (s *Sender) Reserve(n int) (int, time.Time) {
	if n <= 0 || !s.accepting.Load() {
		return 0, time.Time{}
	}
	for {
		held := s.held.Load()
		k := min(int64(n), int64(s.opts.QueueSize)-held)
		if k <= 0 {
			return 0, time.Time{}
		}
		if s.held.CompareAndSwap(held, held+k) {
			return int(k), s.opts.Now().Add(s.opts.Lease).Truncate(time.Microsecond)
		}
	}
}

// Unreserve returns n reservations Deliver will not use.
func (s *Sender) Unreserve(n int) {
	if n > 0 {
		s.held.Add(-int64(n))
	}
}

// Deliver takes an alert that the caller claimed leased to this sender
// (a.Lease is the lease expiry as stored) into a reservation made by
// Reserve. It reports false when the sender is stopping: the alert then
// stays leased until its lease expires, when it is taken over (at least
// once, never lost).
func (s *Sender) Deliver(a Alert) bool {
	s.handoff.RLock()
	defer s.handoff.RUnlock()
	if !s.accepting.Load() {
		s.held.Add(-1)
		return false
	}
	s.stats.add(func(st *senderStats) { st.leased++ })
	s.enqueue(newJob(a), s.opts.Now())
	return true
}

// fill leases due alerts while there is room in memory.
func (s *Sender) fill(ctx context.Context) {
	for ctx.Err() == nil {
		room := s.opts.QueueSize - int(s.held.Load())
		if room <= 0 {
			return
		}
		n := min(room, leaseBatch)
		now := s.opts.Now()
		until := now.Add(s.opts.Lease).Truncate(time.Microsecond)
		alerts, err := s.store.LeaseDue(ctx, now, until, n)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("leasing due alerts failed", zap.Error(err))
			}
			return
		}
		s.stats.add(func(st *senderStats) { st.leased += uint64(len(alerts)) })
		for _, a := range alerts {
			s.held.Add(1)
			s.enqueue(newJob(a), now)
		}
		if len(alerts) < n {
			return
		}
	}
}

// enqueue hands a leased alert to the dispatcher, or reschedules it at once
// when its endpoint's circuit is open.
func (s *Sender) enqueue(j *job, now time.Time) {
	if until, open := s.breakers.blocked(j.endpoint, now); open && j.a.Refusal == nil {
		s.settleAsync(j, s.reschedule(j, until, "circuit_open"))
		return
	}
	s.disp.add(j, now)
}

// sweep hands back alerts that waited too long for their host (a slow host
// must not hold the memory budget of the others).
func (s *Sender) sweep() {
	now := s.opts.Now()
	old := s.disp.take("*", func(j *job) bool { return now.Sub(j.queued) > s.opts.RequestTimeout })
	for _, j := range old {
		s.settleAsync(j, s.reschedule(j, now.Add(s.opts.RequestTimeout), "host_busy"))
	}
}

// start runs a job the dispatcher picked on a goroutine of its own; it is
// called with the dispatcher's lock held and must not block. (Reusing
// goroutines that finished a job was measured: about 9 % of the sender's
// CPU alone, within noise in the whole pipeline; see docs/benchmarks.md.)
func (s *Sender) start(j *job) {
	s.jobs.Add(1)
	go func() {
		defer s.jobs.Done()
		s.deliver(j)
	}()
}

// settleAsync records a report for a job that never started.
func (s *Sender) settleAsync(j *job, r Report) {
	s.jobs.Add(1)
	go func() {
		defer s.jobs.Done()
		s.settle(j, r, nil)
	}()
}

// release hands an alert back without an attempt: pending and due at next.
func (s *Sender) release(j *job, next time.Time, reason string) Report {
	s.stats.add(func(st *senderStats) { st.reschedules["released"]++ })
	return Report{AlertID: j.a.ID, Lease: j.a.Lease, Update: Update{
		Status: StatusPending, Attempts: j.a.Attempts, NextAttemptAt: next, OutcomeReason: reason,
	}}
}

// reschedule postpones an alert without an attempt, failing it instead if
// that would take it past the schedule's maximum age.
func (s *Sender) reschedule(j *job, next time.Time, reason string) Report {
	if ma, since := s.opts.Schedule.MaxAge, j.a.budgetStart(); ma > 0 && !since.IsZero() && next.Sub(since) > ma {
		return s.fail(j, "gave_up_"+reason, "the alert reached its maximum age while "+strings.ReplaceAll(reason, "_", " "))
	}
	s.stats.add(func(st *senderStats) { st.reschedules[reason]++ })
	return Report{AlertID: j.a.ID, Lease: j.a.Lease, Update: Update{
		Status: StatusPending, Attempts: j.a.Attempts, NextAttemptAt: next, OutcomeReason: reason,
	}}
}

// fail closes an alert without an attempt.
func (s *Sender) fail(j *job, reason, detail string) Report {
	return Report{AlertID: j.a.ID, Lease: j.a.Lease, Update: Update{
		Status: StatusFailed, Attempts: j.a.Attempts, OutcomeReason: reason, CompletedAt: s.opts.Now(),
		SetLast: true, LastError: detail,
	}}
}

// leaseBudget is how much lease a job needs left to start: the attempt plus
// a quarter of the lease for recording its outcome.
func (s *Sender) leaseBudget() time.Duration { return s.opts.RequestTimeout + s.opts.Lease/4 }

// deliver makes one attempt (or decides not to) and settles the job.
func (s *Sender) deliver(j *job) {
	a := j.a
	now := s.opts.Now()
	var r Report
	switch {
	case a.Refusal != nil && a.Refusal.RetryAfter > 0:
		s.disp.done(j)
		r = s.reschedule(j, now.Add(a.Refusal.RetryAfter), a.Refusal.Reason)
	case a.Refusal != nil:
		s.disp.done(j)
		r = s.fail(j, a.Refusal.Reason, a.Refusal.Detail)
	case a.Lease.Sub(now) < s.leaseBudget():
		// Waited so long that the lease could expire mid-attempt.
		s.disp.done(j)
		r = s.release(j, now, "")
	case s.opts.Schedule.MaxAttempts > 0 && a.usedAttempts() >= s.opts.Schedule.MaxAttempts:
		s.disp.done(j)
		r = s.fail(j, "gave_up", "the alert used all its attempts")
	default:
		ok, probe, retryAt := s.breakers.allow(j.endpoint, now)
		if !ok {
			s.disp.done(j)
			r = s.reschedule(j, retryAt, "circuit_open")
			break
		}
		j.probe = probe
		var out Outcome
		r, out = s.attempt(s.work, a)
		var opened, closed bool
		if probe || !rateLimited(a.Vendor, out) {
			opened, closed = s.breakers.record(j.endpoint, probe, countsAsFailure(a.Vendor, out), s.opts.Now())
		}
		s.disp.done(j)
		if opened {
			until, _ := s.breakers.blocked(j.endpoint, s.opts.Now())
			s.log.Warn("circuit opened: attempts to this endpoint are paused", endpointFields(j.a.TargetURL, j.endpoint,
				zap.String("outcome", out.Reason), zap.Time("until", until))...)
			for _, w := range s.disp.take(j.host, func(w *job) bool { return w.endpoint == j.endpoint }) {
				s.settleAsync(w, s.reschedule(w, until, "circuit_open"))
			}
		} else if closed {
			s.log.Info("circuit closed: the endpoint answers again", endpointFields(j.a.TargetURL, j.endpoint)...)
		}
		s.settle(j, r, &out)
		return
	}
	s.settle(j, r, nil)
}

// settle writes a job's report, waits until it is durable and logs the
// outcome. out is the attempt's classification, nil when none was made.
func (s *Sender) settle(j *job, r Report, out *Outcome) {
	defer func() {
		// Crossing below half the memory budget: lease more at once rather
		// than at the next poll, so a busy sender never idles.
		if s.held.Add(-1) == int64(s.opts.QueueSize/2) {
			s.Wake()
		}
	}()
	err := <-s.writer.submit(r)
	a := j.a
	// The alert's fields are built only for a line that is written: at
	// thousands of alerts a second, a child logger per alert costs more
	// than the attempt's signing.
	log := alertLogger{s.alertLog, &a}
	switch {
	case errors.Is(err, errNotApplied):
		s.stats.add(func(st *senderStats) { st.lostLeases++ })
		log.Warn("lease on the alert was taken over by another sender; outcome kept as an attempt only")
		return
	case err != nil:
		log.Error("recording the outcome failed; the alert is retried when its lease expires", zap.Error(err))
		return
	}
	u := r.Update
	if u.Status == StatusSucceeded {
		s.stats.add(func(st *senderStats) { st.delivered++ })
	} else if u.Status == StatusFailed {
		s.stats.add(func(st *senderStats) { st.failed++ })
	}
	if r.Attempt == nil {
		fields := []zap.Field{zap.String("status", string(u.Status)), zap.String("reason", u.OutcomeReason)}
		if u.Status == StatusPending {
			log.Debug("alert rescheduled without an attempt", append(fields, zap.Time("next_attempt_at", u.NextAttemptAt))...)
		} else {
			log.Warn("alert failed without an attempt", append(fields, errField(u.LastError))...)
		}
		return
	}
	at := r.Attempt
	fields := []zap.Field{zap.Int("attempt", at.Attempt), zap.Int("status_code", at.StatusCode),
		zap.Duration("latency", at.Latency), zap.String("outcome", at.Outcome)}
	switch {
	case u.Status == StatusSucceeded:
		log.Info("alert delivered", fields...)
	case u.Status == StatusPending:
		log.Warn("alert attempt failed; will retry", append(fields, zap.Time("next_attempt_at", u.NextAttemptAt),
			errField(at.Error))...)
	case out != nil && out.Kind == Gone:
		log.Warn("endpoint gone (410); disabling the rule", fields...)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.work), 30*time.Second)
		defer cancel()
		if err := s.store.DisableConfig(ctx, a.ConfigID, "endpoint answered 410 Gone"); err != nil {
			log.Error("disabling the rule failed", zap.Error(err))
		}
	default:
		log.Warn("alert failed", append(fields, zap.String("reason", u.OutcomeReason), errField(at.Error))...)
	}
}

// alertLogger logs about one alert, with its identifying fields.
type alertLogger struct {
	log *zap.Logger
	a   *Alert
}

func (l alertLogger) write(lvl zapcore.Level, msg string, fields []zap.Field) {
	ce := l.log.Check(lvl, msg)
	if ce == nil {
		return
	}
	a := l.a
	ce.Write(append([]zap.Field{zap.String("alert_id", a.ID), zap.String("webhook_id", a.WebhookID),
		zap.String("rule_id", a.ConfigID), zap.String("run_id", a.RunID), zap.String("event", a.Event),
		logging.URL("target", a.TargetURL)}, fields...)...)
}

func (l alertLogger) Debug(msg string, fields ...zap.Field) { l.write(zapcore.DebugLevel, msg, fields) }
func (l alertLogger) Info(msg string, fields ...zap.Field)  { l.write(zapcore.InfoLevel, msg, fields) }
func (l alertLogger) Warn(msg string, fields ...zap.Field)  { l.write(zapcore.WarnLevel, msg, fields) }
func (l alertLogger) Error(msg string, fields ...zap.Field) { l.write(zapcore.ErrorLevel, msg, fields) }

// errField logs an attempt's (already redacted) error text, if any.
func errField(msg string) zap.Field {
	if msg == "" {
		return zap.Skip()
	}
	return zap.String("error", msg)
}

// attempt sends one signed attempt and turns its outcome into a report.
func (s *Sender) attempt(ctx context.Context, a Alert) (Report, Outcome) {
	at := Attempt{AlertID: a.ID, Attempt: a.Attempts + 1, StartedAt: s.opts.Now()}
	ctx, observed := s.observe(ctx, a)
	code, header, answer, err := s.post(ctx, a, at.StartedAt)
	observed(code)
	at.Latency = s.opts.Now().Sub(at.StartedAt)
	at.StatusCode, at.ResponseExcerpt = code, s.excerpt(answer)
	var out Outcome
	var refused *refusedError
	if errors.As(err, &refused) {
		out = Outcome{Kind: Permanent, Reason: refused.reason}
	} else {
		out = ClassifyVendor(a.Vendor, code, err, header, answer, s.opts.Now())
	}
	if err != nil {
		at.Error = logging.RedactError(err)
	} else if out.Detail != "" {
		at.Error = out.Detail
	}
	at.Outcome = out.Reason
	s.stats.add(func(st *senderStats) { st.attempts[out.Reason]++ })
	s.observeAttempt(a, out.Reason)

	now := s.opts.Now()
	u := Update{Attempts: at.Attempt, OutcomeReason: out.Reason, SetLast: true, LastStatusCode: code, LastError: at.Error}
	switch out.Kind {
	case Success:
		u.Status, u.CompletedAt = StatusSucceeded, now
	case Retry:
		first := a.budgetStart()
		if first.IsZero() {
			first = at.StartedAt
		}
		if next, ok := s.opts.Schedule.Next(a.usedAttempts()+1, first, now, out.RetryAfter); ok {
			u.Status, u.NextAttemptAt = StatusPending, next
		} else {
			u.Status, u.CompletedAt, u.OutcomeReason = StatusFailed, now, "gave_up_"+out.Reason
		}
	case Permanent, Gone:
		u.Status, u.CompletedAt = StatusFailed, now
	}
	return Report{AlertID: a.ID, Lease: a.Lease, Attempt: &at, Update: u}, out
}

// vendorAnswerBytes is how much of a vendor's answer is read for
// ClassifyVendor, whatever ResponseExcerptBytes keeps: their error words
// and objects are short.
const vendorAnswerBytes = 1024

// excerpt cuts an answer to the ResponseExcerptBytes stored.
func (s *Sender) excerpt(answer string) string {
	if len(answer) <= s.opts.ResponseExcerptBytes {
		return answer
	}
	return strings.ToValidUTF8(answer[:s.opts.ResponseExcerptBytes], "")
}

// refusedError is an attempt the sender refused to make.
type refusedError struct{ reason, detail string }

func (e *refusedError) Error() string { return e.detail }

// post sends one signed attempt and returns the status, headers and the
// start of the response body: ResponseExcerptBytes of it, or for a vendor
// at least vendorAnswerBytes (see excerpt).
func (s *Sender) post(ctx context.Context, a Alert, at time.Time) (int, http.Header, string, error) {
	u, err := url.Parse(a.TargetURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return 0, nil, "", &refusedError{"invalid_url", "the webhook URL is not an absolute http(s) URL"}
	}
	if u.Scheme == "http" && !s.opts.AllowInsecureHTTP {
		return 0, nil, "", &refusedError{"insecure_url", "plain http webhook URLs are refused (sender.allow_insecure_http)"}
	}
	keys := make([][]byte, 0, len(a.Secrets))
	for i, sec := range a.Secrets {
		k, err := ParseSecret(sec)
		if err != nil {
			return 0, nil, "", &refusedError{"bad_secret", fmt.Sprintf("signing secret %d is invalid: %v", i+1, err)}
		}
		keys = append(keys, k)
	}
	for name, value := range a.Headers {
		if err := checkHeader(name, value); err != nil {
			return 0, nil, "", &refusedError{"bad_header", err.Error()}
		}
	}
	client, err := s.clients.get(a.TLS)
	if err != nil {
		return 0, nil, "", &refusedError{"tls_config", err.Error()}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.opts.RequestTimeout, ErrAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.TargetURL, bytes.NewReader(a.Payload))
	if err != nil {
		return 0, nil, "", &refusedError{"invalid_url", "the webhook URL cannot be requested"}
	}
	for k, v := range a.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.opts.UserAgent)
	req.Header.Set(HeaderID, a.WebhookID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	if len(keys) > 0 {
		req.Header.Set(HeaderSignature, Sign(keys, a.WebhookID, at, a.Payload))
	}
	if a.MeshHookSignature && len(a.Secrets) > 0 {
		req.Header.Set(HeaderMeshHook, MeshHookSignature(a.Secrets[0], a.Payload))
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	if resp.ContentLength == 0 {
		return resp.StatusCode, resp.Header, "", nil // nothing to read: the connection is ready for reuse
	}
	limit := s.opts.ResponseExcerptBytes
	if a.Vendor != "" {
		limit = max(limit, vendorAnswerBytes) // ClassifyVendor reads the vendor's answer
	}
	body := readExcerpt(resp.Body, resp.ContentLength, limit)
	// Drain a little more so the connection can be reused.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	return resp.StatusCode, resp.Header, strings.ToValidUTF8(string(body), "\uFFFD"), nil
}

// readExcerpt reads up to limit bytes of a response body of length n (-1
// when unknown), allocating no more than it can keep.
func readExcerpt(r io.Reader, n int64, limit int) []byte {
	size := limit
	if n >= 0 && n < int64(size) {
		size = int(n)
	}
	if size <= 0 {
		return nil
	}
	buf := make([]byte, size)
	k, _ := io.ReadFull(r, buf)
	return buf[:k]
}

// senderStats are the sender's counters.
type senderStats struct {
	mu                        sync.Mutex
	leased, delivered, failed uint64
	lostLeases                uint64
	attempts, reschedules     map[string]uint64
}

func (st *senderStats) add(f func(*senderStats)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	f(st)
}

// Stats is a snapshot of the sender's counters and gauges.
type Stats struct {
	Leased    uint64 // alerts taken from the store
	Delivered uint64 // alerts that succeeded
	Failed    uint64 // alerts that failed for good
	// Attempts counts attempts by outcome reason ("ok", "http_500", "timeout", …).
	Attempts map[string]uint64
	// Reschedules counts alerts postponed without an attempt, by reason
	// ("circuit_open", "host_busy", "released").
	Reschedules  map[string]uint64
	LostLeases   uint64 // outcomes not applied because the lease was taken over
	Held         int    // alerts in memory (leased, waiting, running or being recorded)
	Running      int    // attempts in flight
	Waiting      int    // alerts waiting for a worker or a per-host slot
	OpenCircuits int    // endpoints whose circuit is open or half-open
	// WriteBatches and WriteRows count Store.Report calls and the outcomes
	// they carried; WriteFailures counts batches that could not be written.
	WriteBatches, WriteRows, WriteFailures uint64
}

// Stats returns a snapshot of the sender's counters.
func (s *Sender) Stats() Stats {
	s.stats.mu.Lock()
	st := Stats{Leased: s.stats.leased, Delivered: s.stats.delivered, Failed: s.stats.failed, LostLeases: s.stats.lostLeases,
		Attempts: make(map[string]uint64, len(s.stats.attempts)), Reschedules: make(map[string]uint64, len(s.stats.reschedules))}
	for k, v := range s.stats.attempts {
		st.Attempts[k] = v
	}
	for k, v := range s.stats.reschedules {
		st.Reschedules[k] = v
	}
	s.stats.mu.Unlock()
	st.Held = int(s.held.Load())
	st.Running, st.Waiting = s.disp.counts()
	st.OpenCircuits = s.breakers.openCount()
	st.WriteBatches, st.WriteRows, st.WriteFailures = s.writer.stats()
	return st
}
