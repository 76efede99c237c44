package api_test

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/api"
	"github.com/meshhook/meshhook-alerts/sender"
)

// systemLikeDNS fails lookups as the system resolver does: its errors name
// the DNS server the daemon asked.
type systemLikeDNS struct{}

func (systemLikeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, Server: "10.0.0.2:53", IsNotFound: true}
}

func TestTestSend_DNSErrorHidesTheResolver(t *testing.T) {
	e := newEnv(t, envOptions{mod: func(o *api.Options) {
		snd, err := sender.New(sender.Options{RequestTimeout: 5 * time.Second, Resolver: systemLikeDNS{}}, noStore{}, nil)
		require.NoError(t, err)
		o.Tester = snd
	}})
	r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/test", map[string]any{"url": "https://hooks.example.invalid/x"})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, "dns", r.str("outcome"))
	assert.Contains(t, r.str("error"), "lookup hooks.example.invalid: no such host")
	assert.NotContains(t, string(r.raw), "10.0.0.2", "the daemon's DNS server is not shown")
}
