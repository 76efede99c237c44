package sender

import (
	"context"
	"net/http/httptrace"
	"sync"
	"time"
)

// Observer is told how long alerts took from their change's commit to the
// wire. The sender calls it for first attempts only (retries would measure
// the retry schedule), from the worker goroutines, so implementations must
// be safe for concurrent use and fast.
type Observer interface {
	// ObserveDispatch reports, for a first attempt of an alert whose change
	// was committed, how long until the request's first byte
	// was written (sent, 0 if nothing was written) and until the response
	// headers arrived (responded, 0 if there was no response).
	ObserveDispatch(sent, responded time.Duration)
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
		var sentD, respD time.Duration
		if !first.IsZero() {
			sentD = nonNegative(first.Sub(a.OccurredAt))
		}
		if code != 0 {
			respD = nonNegative(now.Sub(a.OccurredAt))
		}
		if sentD > 0 || respD > 0 {
			obs.ObserveDispatch(sentD, respD)
		}
	}
}

// nonNegative clamps d at zero (clocks of the database and this host may
// disagree slightly).
func nonNegative(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}
