package sender

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Schedule is the retry policy: exponential backoff with jitter between
// Initial and Max, giving up when the alert is older than MaxAge or has had
// MaxAttempts attempts (0: no attempt limit).
type Schedule struct {
	Initial     time.Duration
	Max         time.Duration
	Multiplier  float64
	Jitter      float64 // randomization factor, 0..1
	MaxAge      time.Duration
	MaxAttempts int
}

// DefaultSchedule retries after about 5 s, 15 s, 45 s, 2 min, 7 min, 20 min
// and then every 30 min, for up to 24 h.
func DefaultSchedule() Schedule {
	return Schedule{Initial: 5 * time.Second, Max: 30 * time.Minute, Multiplier: 3, Jitter: 0.2, MaxAge: 24 * time.Hour}
}

// Next returns when attempt number attempts+1 should run, after attempts
// attempts have failed, or false when the alert should give up. firstAt is
// when the alert was created; retryAfter (from the receiver) is a lower
// bound on the delay.
func (s Schedule) Next(attempts int, firstAt, now time.Time, retryAfter time.Duration) (time.Time, bool) {
	if s.MaxAttempts > 0 && attempts >= s.MaxAttempts {
		return time.Time{}, false
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval: s.Initial, RandomizationFactor: s.Jitter, Multiplier: s.Multiplier,
		MaxInterval: s.Max, MaxElapsedTime: 0, Stop: backoff.Stop, Clock: backoff.SystemClock,
	}
	b.Reset()
	var d time.Duration
	for i := 0; i < max(attempts, 1); i++ {
		d = b.NextBackOff()
	}
	d = max(d, retryAfter)
	at := now.Add(d)
	if s.MaxAge > 0 && at.Sub(firstAt) > s.MaxAge {
		return time.Time{}, false
	}
	return at, true
}
