package sender

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// leakyResolver fails every lookup the way the system resolver does, with
// errors that name the daemon's DNS server and its own address.
type leakyResolver struct{}

func (leakyResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	switch host {
	case "missing.example.invalid":
		return nil, &net.DNSError{Err: "no such host", Name: host, Server: "10.96.0.10:53", IsNotFound: true}
	case "slow.example.com":
		return nil, &net.DNSError{Err: "read udp 10.244.1.7:40412->10.96.0.10:53: i/o timeout", Name: host,
			Server: "10.96.0.10:53", IsTimeout: true, IsTemporary: true}
	default:
		return nil, &net.DNSError{Err: "dial udp 10.96.0.10:53: connect: network is unreachable", Name: host,
			Server: "10.96.0.10:53", IsTemporary: true}
	}
}

// dnsCases are the failures and what an attempt may say about them.
var dnsCases = []struct {
	host, wantErr, wantReason string
}{
	{"missing.example.invalid", "lookup missing.example.invalid: no such host", "dns"},
	{"slow.example.com", "lookup slow.example.com: i/o timeout", "dns"},
	{"broken.example.com", "lookup broken.example.com: the lookup failed", "dns"},
}

func TestTestSendDNSErrorsDoNotShowTheResolver(t *testing.T) {
	opts := fastOptions()
	opts.Resolver = leakyResolver{}
	s, err := New(opts, newMemStore(), nil)
	require.NoError(t, err)
	for _, tc := range dnsCases {
		t.Run(tc.host, func(t *testing.T) {
			res := s.SendOnce(context.Background(), alert("t", "https://"+tc.host+"/hook"))
			assert.Equal(t, tc.wantReason, res.Outcome.Reason)
			assert.Contains(t, res.Error, tc.wantErr)
			assert.NotContains(t, res.Error, "10.96.0.10", "the resolver's address")
			assert.NotContains(t, res.Error, "10.244.1.7", "the daemon's own address")
			assert.NotContains(t, res.Error, ":53")
		})
	}
}

func TestAttemptDNSErrorsDoNotShowTheResolver(t *testing.T) {
	opts := fastOptions()
	opts.Resolver = leakyResolver{}
	opts.Schedule.MaxAttempts = 1
	var as []Alert
	for _, tc := range dnsCases {
		as = append(as, alert(tc.host, "https://"+tc.host+"/hook"))
	}
	store := newMemStore(as...)
	s, stop := runSender(t, opts, store)
	s.Wake()
	eventually(t, func() bool { return store.allDone(dnsCases[0].host, dnsCases[1].host, dnsCases[2].host) },
		"every alert gives up after its one attempt")
	stop()
	for _, tc := range dnsCases {
		at := store.attemptsOf(tc.host)
		require.Len(t, at, 1, tc.host)
		assert.Equal(t, tc.wantReason, at[0].Outcome, tc.host)
		assert.Contains(t, at[0].Error, tc.wantErr, "alert_attempts.error of %s", tc.host)
		assert.NotContains(t, at[0].Error, "10.96.0.10", tc.host)
		assert.NotContains(t, at[0].Error, "10.244.1.7", tc.host)
		row := store.row(tc.host)
		assert.NotContains(t, row.lastErr, "10.96.0.10", "alert_logs.last_error of %s", tc.host)
	}
}
