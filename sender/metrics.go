package sender

import (
	"context"
	"net/http/httptrace"
	"sync"
	"time"
)

// Dispatch is the timing of an alert's first attempt, measured from the
// commit of the change that raised it.
type Dispatch struct {
	// Sent is the time until the request's headers were written; valid
	// when WasSent.
	Sent    time.Duration
	WasSent bool
	// Responded is the time until the response headers arrived; valid when
	// GotResponse.
	Responded   time.Duration
	GotResponse bool
	// Daemon is the time from the change's arrival at the daemon to the
	// first byte of the request: the daemon's own share. Valid when
	// HasDaemon (the alert was raised by a change this daemon received
	// and the request was sent).
	Daemon    time.Duration
	HasDaemon bool
}

// Observer is told how long alerts took from their change's commit to the
// wire. The sender calls it for first attempts only (retries would measure
// the retry schedule) of alerts with an OccurredAt, from the worker
// goroutines, so implementations must be safe for concurrent use and fast.
//
// ObserveAttempt is called after every attempt (SendOnce excluded) with the
// alert's event and the outcome reason ("ok", "http_500", "timeout", …).
type Observer interface {
	ObserveDispatch(d Dispatch)
	ObserveAttempt(event, reason string)
}

// observeAttempt reports an attempt's outcome to the Observer, if any.
func (s *Sender) observeAttempt(a Alert, reason string) {
	if s.opts.Observer != nil {
		s.opts.Observer.ObserveAttempt(a.Event, reason)
	}
}

// observe arms a client trace for a's first attempt when an Observer is set
// and returns the context to send with and the function to call with the
// attempt's status code once post returns.
func (s *Sender) observe(ctx context.Context, a Alert) (context.Context, func(code int)) {
	obs := s.opts.Observer
	if obs == nil || a.Attempts > 0 || a.OccurredAt.IsZero() {
		return ctx, func(int) {}
	}
	var (
		mu   sync.Mutex
		sent time.Time
	)
	trace := &httptrace.ClientTrace{
		WroteHeaders: func() {
			mu.Lock()
			if sent.IsZero() {
				sent = s.opts.Now()
			}
			mu.Unlock()
		},
	}
	return httptrace.WithClientTrace(ctx, trace), func(code int) {
		now := s.opts.Now()
		mu.Lock()
		first := sent
		mu.Unlock()
		d := Dispatch{WasSent: !first.IsZero(), GotResponse: code != 0}
		if d.WasSent {
			d.Sent = nonNegative(first.Sub(a.OccurredAt))
			if !a.ReceivedAt.IsZero() {
				d.Daemon, d.HasDaemon = nonNegative(first.Sub(a.ReceivedAt)), true
			}
		}
		if d.GotResponse {
			d.Responded = nonNegative(now.Sub(a.OccurredAt))
		}
		if d.WasSent || d.GotResponse {
			obs.ObserveDispatch(d)
		}
	}
}

// nonNegative clamps d at zero (the clocks of the database and this host
// may disagree slightly).
func nonNegative(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}
