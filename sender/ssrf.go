package sender

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// Resolver resolves host names; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// BlockedError is a connection the SSRF guard refused: the destination
// resolved to an address that is not publicly routable (or is a cloud
// metadata endpoint) and is not in the allowlist.
type BlockedError struct {
	Host   string     // host name (or literal) from the URL
	Addr   netip.Addr // the refused address
	Reason string     // e.g. "loopback", "private", "cloud_metadata"
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("refusing to connect to %s (%s): %s address; list it in sender.allowed_networks to allow it",
		e.Host, e.Addr, strings.ReplaceAll(e.Reason, "_", " "))
}

// Guard is the sender's SSRF defence. It resolves every destination itself,
// checks every resolved address, and connects only to the exact address it
// checked, so a DNS answer that changes between check and connect (DNS
// rebinding) cannot reach an internal address. A second check runs on the
// socket's address just before connect(2). Addresses in AllowedNetworks and
// host names in the allowlist are deliberate internal targets.
type Guard struct {
	nets     []netip.Prefix
	hosts    []string // exact lower-case names, or ".suffix" for "*.suffix"
	resolver Resolver
	dialer   *net.Dialer
	// dial connects to an already checked ip:port (tests replace it).
	dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// allowedHostKey marks a dial whose host name is allowlisted, for the
// connect-time check.
type allowedHostKey struct{}

// NewGuard builds a guard. Each allowlist entry is a CIDR ("10.1.0.0/16"),
// an IP address, a host name ("hooks.internal") or a wildcard
// ("*.internal.example"). resolver nil means net.DefaultResolver; dialer nil
// means a plain net.Dialer (its Control and ControlContext are replaced).
func NewGuard(allowlist []string, resolver Resolver, dialer *net.Dialer) (*Guard, error) {
	g := &Guard{resolver: resolver}
	if g.resolver == nil {
		g.resolver = net.DefaultResolver
	}
	for _, raw := range allowlist {
		e := strings.ToLower(strings.TrimSpace(raw))
		switch {
		case e == "":
			return nil, errors.New("sender: allowed network entry is empty")
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("sender: allowed network %q: %w", raw, err)
			}
			g.nets = append(g.nets, p.Masked())
		default:
			if ip, err := netip.ParseAddr(e); err == nil {
				ip = ip.Unmap()
				g.nets = append(g.nets, netip.PrefixFrom(ip, ip.BitLen()))
				continue
			}
			name, wild := strings.CutPrefix(e, "*.")
			name = strings.TrimSuffix(name, ".")
			if !validHostName(name) {
				return nil, fmt.Errorf("sender: allowed network %q is not a CIDR, an IP address or a host name", raw)
			}
			if wild {
				name = "." + name
			}
			g.hosts = append(g.hosts, name)
		}
	}
	d := &net.Dialer{}
	if dialer != nil {
		c := *dialer
		d = &c
	}
	d.Control = nil
	d.ControlContext = g.control
	g.dialer = d
	g.dial = d.DialContext
	return g, nil
}

func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9')) {
				return false
			}
		}
	}
	return true
}

// hostAllowed reports whether host matches a host-name allowlist entry.
func (g *Guard) hostAllowed(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, e := range g.hosts {
		if e[0] == '.' {
			if strings.HasSuffix(h, e) {
				return true
			}
		} else if h == e {
			return true
		}
	}
	return false
}

func (g *Guard) netAllowed(ip netip.Addr) bool {
	for _, p := range g.nets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Check returns a *BlockedError when ip may not be connected to for host.
func (g *Guard) Check(host string, ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	if g.netAllowed(ip) {
		return nil
	}
	if reason, blocked := Blocked(ip); blocked {
		return &BlockedError{Host: host, Addr: ip, Reason: reason}
	}
	return nil
}

// DialContext resolves addr's host, refuses the connection if any address
// is blocked, and otherwise connects to the checked addresses in order.
// Use it as http.Transport.DialContext.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("sender: bad port %q", portStr)
	}
	allowedHost := g.hostAllowed(host)
	var ips []netip.Addr
	if ip, ok := ParseIPLiteral(host); ok {
		ips = []netip.Addr{ip}
	} else {
		ips, err = g.resolver.LookupNetIP(ctx, ipNetwork(network), host)
		if err != nil {
			return nil, publicDNSError(err)
		}
		if len(ips) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	for i, ip := range ips {
		ips[i] = ip.Unmap().WithZone("")
		if allowedHost {
			continue
		}
		// A name that resolves to any internal address is refused outright,
		// even if it also has public ones.
		if err := g.Check(host, ips[i]); err != nil {
			return nil, err
		}
	}
	if allowedHost {
		ctx = context.WithValue(ctx, allowedHostKey{}, true)
	}
	var firstErr error
	for _, ip := range ips {
		conn, err := g.dial(ctx, network, netip.AddrPortFrom(ip, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// control re-checks the socket's address right before connect(2).
func (g *Guard) control(ctx context.Context, _, address string, _ syscall.RawConn) error {
	if allowed, _ := ctx.Value(allowedHostKey{}).(bool); allowed {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("sender: connect-time check: unparsable address %q", address)
	}
	return g.Check(ap.Addr().String(), ap.Addr())
}

func ipNetwork(network string) string {
	switch network {
	case "tcp4", "udp4":
		return "ip4"
	case "tcp6", "udp6":
		return "ip6"
	}
	return "ip"
}

// ParseIPLiteral parses host as an IP address the way a URL library or
// getaddrinfo(3) might: a standard IPv4 or IPv6 literal (IPv4-mapped forms
// included, zones dropped), or an inet_aton(3) IPv4 form such as
// "2130706433", "0177.0.0.1", "0x7f.1" or "127.1". ok is false for host names.
func ParseIPLiteral(host string) (netip.Addr, bool) {
	h := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().WithZone(""), true
	}
	parts := strings.Split(h, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		v, ok := parseAtonPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	// The last part fills the remaining bytes; the others are one byte each.
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if bits := 8 * (4 - (len(vals) - 1)); last >= 1<<bits {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func parseAtonPart(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base, digits := 10, p
	switch {
	case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
		base, digits = 16, p[2:]
	case len(p) > 1 && p[0] == '0':
		base, digits = 8, p[1:]
	}
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil {
		return 0, false
	}
	return v, true
}

var (
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack, …
		netip.MustParseAddr("fd00:ec2::254"),   // AWS IPv6
		netip.MustParseAddr("168.63.129.16"),   // Azure wire server
		netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	}
	blockedV4 = []struct {
		p      netip.Prefix
		reason string
	}{
		{netip.MustParsePrefix("0.0.0.0/8"), "this_network"},
		{netip.MustParsePrefix("100.64.0.0/10"), "cgnat"},
		{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
		{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
		{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
		{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
		{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
		{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	}
	blockedV6 = []struct {
		p      netip.Prefix
		reason string
	}{
		{netip.MustParsePrefix("::/96"), "ipv4_compatible"},
		{netip.MustParsePrefix("64:ff9b:1::/48"), "nat64_local"},
		{netip.MustParsePrefix("100::/64"), "discard"},
		{netip.MustParsePrefix("2001::/32"), "teredo"},
		{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
		{netip.MustParsePrefix("fec0::/10"), "site_local"},
	}
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

// Blocked reports whether ip is an address webhooks must not reach without
// an explicit allowlist entry, and why: loopback, private (RFC 1918),
// unique-local (fc00::/7), link-local, CGNAT (100.64.0.0/10), multicast,
// unspecified, cloud metadata endpoints, reserved and documentation ranges,
// and IPv6 forms that embed such an IPv4 address (IPv4-mapped, NAT64, 6to4).
func Blocked(ip netip.Addr) (reason string, blocked bool) {
	if !ip.IsValid() {
		return "invalid", true
	}
	ip = ip.Unmap().WithZone("")
	for _, m := range metadataAddrs {
		if ip == m {
			return "cloud_metadata", true
		}
	}
	switch {
	case ip.IsUnspecified():
		return "unspecified", true
	case ip.IsLoopback():
		return "loopback", true
	case ip.IsLinkLocalUnicast():
		return "link_local", true
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast", true
	case ip.Is6() && ip.IsPrivate():
		return "unique_local", true
	case ip.IsPrivate():
		return "private", true
	}
	if ip.Is4() {
		if ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return "broadcast", true
		}
		for _, b := range blockedV4 {
			if b.p.Contains(ip) {
				return b.reason, true
			}
		}
		return "", false
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		if r, bad := Blocked(netip.AddrFrom4([4]byte(b[12:16]))); bad {
			return "nat64_" + r, true
		}
		return "", false
	case sixTo4.Contains(ip):
		if r, bad := Blocked(netip.AddrFrom4([4]byte(b[2:6]))); bad {
			return "6to4_" + r, true
		}
		return "", false
	}
	for _, p := range blockedV6 {
		if p.p.Contains(ip) {
			return p.reason, true
		}
	}
	return "", false
}

// publicDNSError returns a failed lookup's error without what it tells
// about the daemon's own network. A *net.DNSError names the resolver it
// asked ("lookup x on 10.0.0.2:53: no such host"), and its text may quote a
// socket error with local and server addresses ("read udp
// 10.0.0.5:40412->10.0.0.2:53: i/o timeout"). Attempt errors are shown to
// the rule's owner (alert_attempts.error, test sends), so they keep the
// name looked up and the kind of failure only: "lookup x: no such host".
// The flags (not found, timeout, temporary) and a wrapped context error
// are kept, so classification does not change.
func publicDNSError(err error) error {
	var de *net.DNSError
	if !errors.As(err, &de) {
		return err
	}
	msg := de.Err
	switch {
	case !strings.ContainsAny(msg, ":0123456789"):
		// Go's own texts ("no such host", "server misbehaving", "i/o
		// timeout", …) name no address.
	case de.IsNotFound:
		msg = "no such host"
	case de.IsTimeout:
		msg = "i/o timeout"
	default:
		msg = "the lookup failed"
	}
	return &net.DNSError{Err: msg, Name: de.Name, IsTimeout: de.IsTimeout, IsTemporary: de.IsTemporary,
		IsNotFound: de.IsNotFound, UnwrapErr: de.UnwrapErr}
}
