package sender

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ra := func(v string) http.Header { return http.Header{"Retry-After": []string{v}} }
	cases := []struct {
		name   string
		code   int
		err    error
		header http.Header
		want   Outcome
	}{
		{"200", 200, nil, nil, Outcome{Kind: Success, Reason: "ok"}},
		{"204", 204, nil, nil, Outcome{Kind: Success, Reason: "ok"}},
		{"299", 299, nil, nil, Outcome{Kind: Success, Reason: "ok"}},
		{"301 not followed", 301, nil, nil, Outcome{Kind: Permanent, Reason: "redirect_301"}},
		{"302", 302, nil, nil, Outcome{Kind: Permanent, Reason: "redirect_302"}},
		{"308", 308, nil, nil, Outcome{Kind: Permanent, Reason: "redirect_308"}},
		{"400", 400, nil, nil, Outcome{Kind: Permanent, Reason: "http_400"}},
		{"401", 401, nil, nil, Outcome{Kind: Permanent, Reason: "http_401"}},
		{"404", 404, nil, nil, Outcome{Kind: Permanent, Reason: "http_404"}},
		{"408 retries", 408, nil, nil, Outcome{Kind: Retry, Reason: "http_408"}},
		{"410 gone", 410, nil, nil, Outcome{Kind: Gone, Reason: "gone"}},
		{"422", 422, nil, nil, Outcome{Kind: Permanent, Reason: "http_422"}},
		{"425 retries", 425, nil, nil, Outcome{Kind: Retry, Reason: "http_425"}},
		{"429 seconds", 429, nil, ra("120"), Outcome{Kind: Retry, Reason: "http_429", RetryAfter: 2 * time.Minute}},
		{"429 http-date", 429, nil, ra(now.Add(90 * time.Second).Format(http.TimeFormat)), Outcome{Kind: Retry, Reason: "http_429", RetryAfter: 90 * time.Second}},
		{"503 capped", 503, nil, ra("999999"), Outcome{Kind: Retry, Reason: "http_503", RetryAfter: MaxRetryAfter}},
		{"503 past date", 503, nil, ra(now.Add(-time.Hour).Format(http.TimeFormat)), Outcome{Kind: Retry, Reason: "http_503"}},
		{"503 garbage", 503, nil, ra("soon"), Outcome{Kind: Retry, Reason: "http_503"}},
		{"500", 500, nil, nil, Outcome{Kind: Retry, Reason: "http_500"}},
		{"502", 502, nil, nil, Outcome{Kind: Retry, Reason: "http_502"}},
		{"599", 599, nil, nil, Outcome{Kind: Retry, Reason: "http_599"}},
		{"timeout", 0, fmt.Errorf("post: %w", context.DeadlineExceeded), nil, Outcome{Kind: Retry, Reason: "timeout"}},
		{"attempt deadline", 0, fmt.Errorf("post: %w", ErrAttemptTimeout), nil, Outcome{Kind: Retry, Reason: "timeout"}},
		{"io timeout", 0, &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, nil, Outcome{Kind: Retry, Reason: "timeout"}},
		{"refused", 0, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, nil, Outcome{Kind: Retry, Reason: "connection_refused"}},
		{"reset", 0, &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, nil, Outcome{Kind: Retry, Reason: "connection_reset"}},
		{"dns", 0, &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, nil, Outcome{Kind: Retry, Reason: "dns"}},
		{"other", 0, errors.New("EOF"), nil, Outcome{Kind: Retry, Reason: "connection_error"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, Classify(c.code, c.err, c.header, now))
		})
	}
}

func TestScheduleBacksOffAndGivesUp(t *testing.T) {
	s := Schedule{Initial: 5 * time.Second, Max: 30 * time.Minute, Multiplier: 3, MaxAge: 24 * time.Hour}
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var got []time.Duration
	for attempts := 1; attempts <= 8; attempts++ {
		at, ok := s.Next(attempts, first, first, 0)
		assert.True(t, ok)
		got = append(got, at.Sub(first))
	}
	assert.Equal(t, []time.Duration{5 * time.Second, 15 * time.Second, 45 * time.Second, 135 * time.Second,
		405 * time.Second, 1215 * time.Second, 30 * time.Minute, 30 * time.Minute}, got)

	at, ok := s.Next(1, first, first, 10*time.Minute)
	assert.True(t, ok)
	assert.Equal(t, first.Add(10*time.Minute), at, "Retry-After is a lower bound")

	_, ok = s.Next(3, first, first.Add(23*time.Hour+59*time.Minute+50*time.Second), 0)
	assert.False(t, ok, "gives up past the maximum age")

	s.MaxAttempts = 3
	_, ok = s.Next(3, first, first, 0)
	assert.False(t, ok, "gives up after the maximum attempts")

	j := DefaultSchedule()
	for range 50 {
		at, _ := j.Next(1, first, first, 0)
		d := at.Sub(first)
		assert.True(t, d >= 4*time.Second && d <= 6*time.Second, "jitter stays within 20%%: %s", d)
	}
}
