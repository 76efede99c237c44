package sender

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeResolver answers from a table; a name with several answers returns
// them in turn, one per lookup (to model DNS rebinding).
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	calls   map[string]int
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	a, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	i := min(r.calls[host], len(a)-1)
	r.calls[host]++
	return append([]netip.Addr(nil), a[i]...), nil
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// recordingGuard returns a guard whose connections are recorded, not made.
func recordingGuard(t *testing.T, allow []string, r Resolver) (*Guard, *[]string) {
	t.Helper()
	g, err := NewGuard(allow, r, nil)
	require.NoError(t, err)
	var dialed []string
	var mu sync.Mutex
	g.dial = func(_ context.Context, _, address string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		dialed = append(dialed, address)
		c1, c2 := net.Pipe()
		_ = c2.Close()
		return c1, nil
	}
	return g, &dialed
}

func dialURL(ctx context.Context, g *Guard, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	conn, err := g.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if conn != nil {
		_ = conn.Close()
	}
	return err
}

func TestGuardRefusesHostileURLs(t *testing.T) {
	r := &fakeResolver{answers: map[string][][]netip.Addr{
		"public.example":      {addrs("93.184.216.34")},
		"v6.example":          {addrs("2606:2800:220:1:248:1893:25c8:1946")},
		"localhost":           {addrs("127.0.0.1", "::1")},
		"internal.example":    {addrs("10.0.0.5")},
		"mixed.example":       {addrs("93.184.216.34", "192.168.1.1")},
		"metadata.example":    {addrs("169.254.169.254")},
		"mapped.example":      {addrs("::ffff:10.1.2.3")},
		"allowed.internal":    {addrs("10.9.9.9")},
		"svc.corp.example":    {addrs("172.16.0.10")},
		"corp.example":        {addrs("172.16.0.11")},
		"nat64-loop.example":  {addrs("64:ff9b::7f00:1")},
		"nat64-ok.example":    {addrs("64:ff9b::5db8:d822")},
		"sixto4.example":      {addrs("2002:c0a8:0101::1")},
		"teredo.example":      {addrs("2001:0:4136:e378:8000:63bf:3fff:fdd2")},
		"allowed-net.example": {addrs("192.168.50.7")},
	}}
	g, dialed := recordingGuard(t, []string{"allowed.internal", "*.corp.example", "192.168.50.0/24"}, r)
	cases := []struct {
		url    string
		reason string // "" = allowed
		dial   string // address dialed when allowed
	}{
		{"https://public.example/hook", "", "93.184.216.34:443"},
		{"https://v6.example:8443/x", "", "[2606:2800:220:1:248:1893:25c8:1946]:8443"},
		{"https://93.184.216.34/", "", "93.184.216.34:443"},
		{"http://127.0.0.1/", "loopback", ""},
		{"http://127.255.255.254:8080/", "loopback", ""},
		{"http://localhost/", "loopback", ""},
		{"http://[::1]/", "loopback", ""},
		{"http://0.0.0.0/", "unspecified", ""},
		{"http://[::]/", "unspecified", ""},
		{"http://0/", "unspecified", ""},
		{"http://10.0.0.1/", "private", ""},
		{"http://172.16.5.4/", "private", ""},
		{"http://192.168.0.1/", "private", ""},
		{"http://internal.example/", "private", ""},
		{"http://mixed.example/", "private", ""},
		{"http://100.64.0.1/", "cgnat", ""},
		{"http://100.127.255.254/", "cgnat", ""},
		{"http://169.254.169.254/latest/meta-data/", "cloud_metadata", ""},
		{"http://metadata.example/", "cloud_metadata", ""},
		{"http://[fd00:ec2::254]/", "cloud_metadata", ""},
		{"http://169.254.1.1/", "link_local", ""},
		{"http://[fe80::1%25eth0]/", "link_local", ""},
		{"http://[fc00::1]/", "unique_local", ""},
		{"http://[fd12:3456::1]/", "unique_local", ""},
		{"http://224.0.0.1/", "multicast", ""},
		{"http://[ff02::1]/", "multicast", ""},
		{"http://255.255.255.255/", "broadcast", ""},
		{"http://240.0.0.1/", "reserved", ""},
		{"http://192.0.2.10/", "documentation", ""},
		// IPv4-mapped and IPv4-embedding IPv6 forms.
		{"http://[::ffff:127.0.0.1]/", "loopback", ""},
		{"http://[::ffff:7f00:1]/", "loopback", ""},
		{"http://[::ffff:169.254.169.254]/", "cloud_metadata", ""},
		{"http://mapped.example/", "private", ""},
		{"http://[::127.0.0.1]/", "ipv4_compatible", ""},
		{"http://nat64-loop.example/", "nat64_loopback", ""},
		{"http://[64:ff9b::a00:1]/", "nat64_private", ""},
		{"http://nat64-ok.example/", "", "[64:ff9b::5db8:d822]:80"},
		{"http://sixto4.example/", "6to4_private", ""},
		{"http://teredo.example/", "teredo", ""},
		// Decimal, octal, hexadecimal and short IPv4 forms.
		{"http://2130706433/", "loopback", ""},
		{"http://017700000001/", "loopback", ""},
		{"http://0x7f000001/", "loopback", ""},
		{"http://0177.0.0.1/", "loopback", ""},
		{"http://0x7f.0.0.1/", "loopback", ""},
		{"http://0x7f.1/", "loopback", ""},
		{"http://127.1/", "loopback", ""},
		{"http://127.0.1/", "loopback", ""},
		{"http://0xa9.0xfe.0xa9.0xfe/", "cloud_metadata", ""},
		{"http://2852039166/", "cloud_metadata", ""},
		{"http://127.0.0.1./", "loopback", ""},
		// Deliberate internal targets from the allowlist.
		{"http://allowed.internal/", "", "10.9.9.9:80"},
		{"http://svc.corp.example/", "", "172.16.0.10:80"},
		{"http://corp.example/", "private", ""}, // the wildcard covers subdomains only
		{"http://allowed-net.example/", "", "192.168.50.7:80"},
		{"http://192.168.50.200/", "", "192.168.50.200:80"},
		{"http://192.168.51.1/", "private", ""},
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			before := len(*dialed)
			err := dialURL(ctx, g, c.url)
			if c.reason == "" {
				require.NoError(t, err)
				require.Len(t, *dialed, before+1)
				assert.Equal(t, c.dial, (*dialed)[before])
				return
			}
			var be *BlockedError
			require.True(t, errors.As(err, &be), "want a BlockedError, got %v", err)
			assert.Equal(t, c.reason, be.Reason)
			assert.Contains(t, be.Error(), "sender.allowed_networks")
			assert.Len(t, *dialed, before, "nothing is dialed")
			o := Classify(0, err, nil, time.Time{})
			assert.Equal(t, Outcome{Kind: Permanent, Reason: "blocked_address"}, o)
		})
	}
}

// A name that first resolves to a public address and then to a private
// one (DNS rebinding) connects to exactly the public address it checked,
// and the second lookup is refused.
func TestGuardDefeatsDNSRebinding(t *testing.T) {
	r := &fakeResolver{answers: map[string][][]netip.Addr{
		"rebind.example": {addrs("93.184.216.34"), addrs("127.0.0.1"), addrs("169.254.169.254")},
	}}
	g, dialed := recordingGuard(t, nil, r)
	ctx := context.Background()
	require.NoError(t, dialURL(ctx, g, "https://rebind.example/hook"))
	assert.Equal(t, []string{"93.184.216.34:443"}, *dialed, "the checked address is the one dialed")
	for _, want := range []string{"loopback", "cloud_metadata"} {
		err := dialURL(ctx, g, "https://rebind.example/hook")
		var be *BlockedError
		require.ErrorAs(t, err, &be)
		assert.Equal(t, want, be.Reason)
	}
	assert.Len(t, *dialed, 1)
}

// The connect-time check refuses an internal address even when the dial
// does not go through DialContext's resolution.
func TestGuardChecksAtConnectTime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	g, err := NewGuard(nil, nil, nil)
	require.NoError(t, err)
	_, err = g.dialer.DialContext(context.Background(), "tcp", ln.Addr().String())
	var be *BlockedError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "loopback", be.Reason)

	allowed, err := NewGuard([]string{"127.0.0.0/8"}, nil, nil)
	require.NoError(t, err)
	conn, err := allowed.DialContext(context.Background(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	_ = conn.Close()
}

func TestNewGuardRejectsBadEntries(t *testing.T) {
	for _, bad := range []string{"", "10.0.0.0/33", "not a host", "http://x", "*."} {
		_, err := NewGuard([]string{bad}, nil, nil)
		assert.Error(t, err, bad)
	}
	_, err := NewGuard([]string{"10.0.0.0/8", "::1", "hooks.internal", "*.svc.cluster.local", "FD00::/8"}, nil, nil)
	assert.NoError(t, err)
}

func TestParseIPLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3.4": "1.2.3.4", "16909060": "1.2.3.4", "0x01020304": "1.2.3.4", "1.0x2.03.4": "1.2.3.4",
		"1.2.772": "1.2.3.4", "1.131844": "1.2.3.4", "[::ffff:1.2.3.4]": "1.2.3.4", "::1": "::1",
	} {
		ip, ok := ParseIPLiteral(in)
		require.True(t, ok, in)
		assert.Equal(t, want, ip.String(), in)
	}
	for _, name := range []string{"example.com", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "08.1.1.1", "0x", "4294967296", "a.1"} {
		_, ok := ParseIPLiteral(name)
		assert.False(t, ok, name)
	}
}
