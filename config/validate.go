package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// FieldError is one validation problem: Field is the dotted key path
// ("sender.workers", "secrets.previous_keys[1]") and Problem says why.
type FieldError struct {
	Field   string
	Problem string
}

// Error returns "field: problem".
func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Validate checks every field and returns all problems joined with
// errors.Join, each a *FieldError naming the field; nil means valid.
func (c *Config) Validate() error {
	v := &validator{}
	c.Supabase.validate(v)
	c.Realtime.validate(v, c.Supabase)
	c.Watch.validate(v)
	c.Alerts.validate(v)
	c.Sender.validate(v)
	c.Secrets.validate(v)
	c.HTTP.validate(v, c)
	c.API.validate(v, c)
	c.UI.validate(v)
	c.Ops.validate(v)
	c.Log.validate(v)
	return errors.Join(v.errs...)
}

// validator collects FieldErrors.
type validator struct{ errs []error }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (v *validator) positive(field string, d time.Duration) {
	if d <= 0 {
		v.add(field, "must be a positive duration, got %s", d)
	}
}

func (v *validator) nonNegative(field string, d time.Duration) {
	if d < 0 {
		v.add(field, "must not be negative, got %s", d)
	}
}

func (v *validator) between(field string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(field, "must be between %d and %d, got %d", lo, hi, n)
	}
}

func (v *validator) atLeast(field string, d time.Duration, otherField string, other time.Duration) {
	if d > 0 && other > 0 && d < other {
		v.add(field, "must not be less than %s (%s), got %s", otherField, other, d)
	}
}

// isIdent reports whether s is a plain (unquoted) PostgreSQL identifier.
func isIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		letter := r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
		if !letter && (i == 0 || !(r == '$' || ('0' <= r && r <= '9'))) {
			return false
		}
	}
	return true
}

func (v *validator) ident(field, s string, optional bool) {
	switch {
	case s == "" && optional:
	case s == "":
		v.add(field, "required")
	case !isIdent(s):
		v.add(field, "must be a plain SQL identifier (letters, digits, _ and $, at most 63 bytes), got %q", s)
	}
}

// urlProblem returns why raw is not an absolute URL with one of the schemes
// and a host, or "" when it is.
func urlProblem(raw string, schemes ...string) string {
	want := "must be " + strings.Join(schemes, " or ") + " URL"
	if len(schemes) == 2 && schemes[0]+"s" == schemes[1] {
		want = "must be " + schemes[0] + "(s) URL"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return want + ": " + err.Error()
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	switch {
	case !ok:
		return fmt.Sprintf("%s, got scheme %q", want, u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return want + ": no host"
	case u.User != nil:
		return want + ": must not contain user info"
	case u.Fragment != "":
		return want + ": must not contain a fragment"
	}
	return ""
}

func (s Supabase) validate(v *validator) {
	switch {
	case s.URL == "":
		v.add("supabase.url", "required (or set SUPABASE_URL)")
	default:
		if p := urlProblem(s.URL, "http", "https"); p != "" {
			v.add("supabase.url", "%s", p)
		} else if u, _ := url.Parse(s.URL); u.RawQuery != "" {
			v.add("supabase.url", "must not contain a query")
		} else {
			v.cleartextURL("supabase.url", u, "http", "https", s.AllowInsecure)
		}
	}
	if !s.ServiceRoleKey.IsSet() {
		v.add("supabase.service_role_key", "required (or set SUPABASE_SECRET_KEY or SUPABASE_SERVICE_ROLE_KEY)")
	} else if strings.TrimSpace(s.ServiceRoleKey.Value()) != s.ServiceRoleKey.Value() {
		v.add("supabase.service_role_key", "must not have leading or trailing white space")
	} else if p := s.keyProblem(); p != "" {
		v.add("supabase.service_role_key", "%s", p)
	}
	v.ident("supabase.schema", s.Schema, false)
	v.positive("supabase.request_timeout", s.RequestTimeout)
	v.between("supabase.max_retries", s.MaxRetries, 0, 100)
}

func (r Realtime) validate(v *validator, s Supabase) {
	derived, derr := RealtimeURLFromSupabase(s.URL)
	switch {
	case r.URL == "":
		// Load derives it; only complain when there is nothing to derive from
		// that supabase.url's own check would not already report.
		if derr == nil {
			v.add("realtime.url", "required (Load derives it from supabase.url)")
		}
	default:
		if p := urlProblem(r.URL, "ws", "wss"); p != "" {
			v.add("realtime.url", "%s", p)
		} else if u, _ := url.Parse(r.URL); r.Enabled && r.URL != derived {
			// One derived from supabase.url is reported there.
			v.cleartextURL("realtime.url", u, "ws", "wss", s.AllowInsecure)
		}
	}
	if r.VSN != "1.0.0" && r.VSN != "2.0.0" {
		v.add("realtime.vsn", `must be "1.0.0" or "2.0.0", got %q`, r.VSN)
	}
	v.positive("realtime.heartbeat_interval", r.HeartbeatInterval)
	v.positive("realtime.join_timeout", r.JoinTimeout)
	v.positive("realtime.reconnect_initial", r.ReconnectInitial)
	v.positive("realtime.reconnect_max", r.ReconnectMax)
	v.atLeast("realtime.reconnect_max", r.ReconnectMax, "realtime.reconnect_initial", r.ReconnectInitial)
	v.between("realtime.buffer_size", r.BufferSize, 1, 1<<20)
}

func (w Watch) validate(v *validator) {
	v.ident("watch.schema", w.Schema, false)
	v.ident("watch.table", w.Table, false)
	v.ident("watch.id_column", w.IDColumn, false)
	v.ident("watch.status_column", w.StatusColumn, false)
	v.ident("watch.workflow_column", w.WorkflowColumn, false)
	v.ident("watch.project_column", w.ProjectColumn, true)
	v.ident("watch.started_at_column", w.StartedAtColumn, true)
	v.ident("watch.finished_at_column", w.FinishedAtColumn, true)
	v.ident("watch.updated_at_column", w.UpdatedAtColumn, false)
	if w.WorkflowLookup != WorkflowLookupMeshHook && w.WorkflowLookup != WorkflowLookupNone {
		v.add("watch.workflow_lookup", "must be %q or %q, got %q", WorkflowLookupMeshHook, WorkflowLookupNone, w.WorkflowLookup)
	}

	seen := make(map[string]string) // status value → field that lists it
	for _, l := range []struct {
		field    string
		values   []string
		required bool
	}{
		{"watch.statuses.succeeded", w.Statuses.Succeeded, true},
		{"watch.statuses.failed", w.Statuses.Failed, true},
		{"watch.statuses.canceled", w.Statuses.Canceled, false},
		{"watch.statuses.paused", w.Statuses.Paused, false},
		{"watch.statuses.running", w.Statuses.Running, true},
	} {
		if len(l.values) == 0 && l.required {
			v.add(l.field, "must list at least one status value")
		}
		for i, s := range l.values {
			field := fmt.Sprintf("%s[%d]", l.field, i)
			switch prev, dup := seen[s]; {
			case strings.TrimSpace(s) == "":
				v.add(field, "must not be empty")
			case dup:
				v.add(field, "status %q is already listed in %s", s, prev)
			default:
				seen[s] = l.field
			}
		}
	}
}

func (a Alerts) validate(v *validator) {
	v.ident("alerts.configs_table", a.ConfigsTable, false)
	v.positive("alerts.resync_interval", a.ResyncInterval)
	v.positive("alerts.reconcile_interval", a.ReconcileInterval)
	v.nonNegative("alerts.reconcile_lag_alert", a.ReconcileLagAlert)
	v.nonNegative("alerts.reconcile_delay", a.ReconcileDelay)
	v.nonNegative("alerts.catchup_overlap", a.CatchupOverlap)
	v.positive("alerts.catchup_max_lookback", a.CatchupMaxLookback)
	v.atLeast("alerts.catchup_max_lookback", a.CatchupMaxLookback, "alerts.catchup_overlap", a.CatchupOverlap)
	v.positive("alerts.timer_tick", a.TimerTick)
	if a.LinkBaseURL != "" {
		if p := urlProblem(a.LinkBaseURL, "http", "https"); p != "" {
			v.add("alerts.link_base_url", "%s", p)
		}
	}
}

func (s Sender) validate(v *validator) {
	v.between("sender.workers", s.Workers, 1, 1024)
	v.between("sender.queue_size", s.QueueSize, 1, 1<<20)
	v.positive("sender.request_timeout", s.RequestTimeout)
	if s.MaxAttempts < 0 {
		v.add("sender.max_attempts", "must not be negative (0 means unbounded within sender.max_age), got %d", s.MaxAttempts)
	}
	v.positive("sender.retry_initial", s.RetryInitial)
	v.positive("sender.retry_max", s.RetryMax)
	v.atLeast("sender.retry_max", s.RetryMax, "sender.retry_initial", s.RetryInitial)
	v.positive("sender.max_age", s.MaxAge)
	v.between("sender.response_excerpt_bytes", s.ResponseExcerptBytes, 0, 1<<20)
	v.between("sender.per_host_concurrency", s.PerHostConcurrency, 1, 1024)
	v.positive("sender.poll_interval", s.PollInterval)
	switch {
	case s.UserAgent == "":
		v.add("sender.user_agent", "required")
	case strings.ContainsFunc(s.UserAgent, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		v.add("sender.user_agent", "must not contain control characters")
	}
	v.positive("sender.connect_timeout", s.ConnectTimeout)
	v.positive("sender.tls_handshake_timeout", s.TLSHandshakeTimeout)
	v.positive("sender.lease", s.Lease)
	if s.Lease > 0 && s.RequestTimeout > 0 && s.Lease < 2*s.RequestTimeout {
		v.add("sender.lease", "must be at least twice sender.request_timeout (%s), got %s", s.RequestTimeout, s.Lease)
	}
	for i, n := range s.AllowedNetworks {
		if p := allowedNetworkProblem(n); p != "" {
			v.add(fmt.Sprintf("sender.allowed_networks[%d]", i), "%s, got %q", p, n)
		}
	}
	v.between("sender.circuit_failures", s.CircuitFailures, 1, 1000)
	v.positive("sender.circuit_cooldown", s.CircuitCooldown)
	v.between("sender.write_batch_size", s.WriteBatchSize, 1, 10000)
	if s.WriteFlushInterval < 0 || s.WriteFlushInterval > time.Second {
		v.add("sender.write_flush_interval", "must be between 0s and 1s, got %s", s.WriteFlushInterval)
	}
}

// allowedNetworkProblem checks one sender.allowed_networks entry: a CIDR,
// an IP address, a host name or "*." and a domain.
func allowedNetworkProblem(e string) string {
	const want = "must be a CIDR, an IP address, a host name or *.domain"
	e = strings.TrimSpace(e)
	switch {
	case e == "":
		return want
	case strings.Contains(e, "/"):
		if _, err := netip.ParsePrefix(e); err != nil {
			return want
		}
		return ""
	}
	if _, err := netip.ParseAddr(e); err == nil {
		return ""
	}
	name := strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(e), "*."), ".")
	if name == "" || len(name) > 253 {
		return want
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || strings.ContainsFunc(label, func(r rune) bool {
			return !(r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9'))
		}) {
			return want
		}
	}
	return ""
}

func (s Secrets) validate(v *validator) {
	if s.EncryptionKey.IsSet() {
		if _, err := DecodeKey(s.EncryptionKey); err != nil {
			v.add("secrets.encryption_key", "%v", err)
		}
	} else if len(s.PreviousKeys) > 0 {
		v.add("secrets.previous_keys", "set but secrets.encryption_key is empty")
	}
	for i, k := range s.PreviousKeys {
		if _, err := DecodeKey(k); err != nil {
			v.add(fmt.Sprintf("secrets.previous_keys[%d]", i), "%v", err)
		}
	}
}

func (h HTTP) validate(v *validator, c *Config) {
	switch {
	case h.TLSCertFile != "" && h.TLSKeyFile == "":
		v.add("http.tls_key_file", "required with http.tls_cert_file")
	case h.TLSKeyFile != "" && h.TLSCertFile == "":
		v.add("http.tls_cert_file", "required with http.tls_key_file")
	}
	if h.TLSClientCAFile != "" && !h.TLS() {
		v.add("http.tls_client_ca_file", "requires http.tls_cert_file and http.tls_key_file (client certificates are asked for over TLS only)")
	}
	if h.Listen == "" {
		if h.TLS() {
			v.add("http.tls_cert_file", "set but http.listen is empty (the listener is off)")
		}
		return // disabled
	}
	host, port, err := net.SplitHostPort(h.Listen)
	if err != nil {
		v.add("http.listen", "must be host:port, got %q", h.Listen)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add("http.listen", "port must be a number between 0 and 65535, got %q", port)
	}
	h.cleartext(v, c, host)
}

// Minimum lengths of the API's credentials.
const (
	minOperatorToken = 16
	minJWTSecret     = 32 // Supabase's JWT secrets are at least 32 characters
)

func (a API) validate(v *validator, c *Config) {
	for _, s := range []struct {
		field  string
		value  Secret
		minLen int
	}{
		{"api.operator_token", a.OperatorToken, minOperatorToken},
		{"api.jwt_secret", a.JWTSecret, minJWTSecret},
	} {
		switch {
		case !s.value.IsSet():
		case strings.TrimSpace(s.value.Value()) != s.value.Value():
			v.add(s.field, "must not have leading or trailing white space")
		case len(s.value.Value()) < s.minLen:
			v.add(s.field, "must be at least %d characters, got %d", s.minLen, len(s.value.Value()))
		}
	}
	v.between("api.max_body_bytes", a.MaxBodyBytes, 1<<10, 64<<20)
	if !a.Enabled {
		return
	}
	if c.HTTP.Listen == "" {
		v.add("api.enabled", "requires http.listen (the API is served there)")
	}
	if !c.Secrets.EncryptionKey.IsSet() {
		v.add("api.enabled", "requires secrets.encryption_key (the API seals webhook URLs, signing secrets and header values before storing them)")
	}
}

// reservedPaths are served by the daemon itself; the UI may not take them.
var reservedPaths = []string{"/api/", "/debug/", "/healthz", "/readyz", "/metrics"}

func (u UI) validate(v *validator) {
	if p := publishableKeyProblem(u.SupabasePublishableKey); p != "" {
		v.add("ui.supabase_publishable_key", "%s", p)
	}
	if !u.Enabled {
		return
	}
	p := u.Path
	switch {
	case !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/"):
		v.add("ui.path", "must start and end with \"/\" (e.g. \"/ui/\"), got %q", p)
		return
	case p == "/":
		v.add("ui.path", "must not be \"/\" (the API and the operational endpoints live there); use e.g. \"/ui/\"")
		return
	case path.Clean(p)+"/" != p:
		v.add("ui.path", "must be a clean path without \"//\", \".\" or \"..\" segments, got %q", p)
		return
	}
	for _, c := range p {
		if !(c == '/' || c == '-' || c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			v.add("ui.path", "may hold only letters, digits, \"-\", \"_\", \".\" and \"/\", got %q", p)
			return
		}
	}
	for _, r := range reservedPaths {
		if strings.HasPrefix(p, r) || strings.HasPrefix(r, p) {
			v.add("ui.path", "must not overlap %s, which the daemon serves itself, got %q", r, p)
			return
		}
	}
}

func (l Log) validate(v *validator) {
	if _, err := zapcore.ParseLevel(l.Level); err != nil {
		v.add("log.level", "must be debug, info, warn or error, got %q", l.Level)
	}
	if l.Format != "" && l.Format != LogFormatJSON && l.Format != LogFormatConsole {
		v.add("log.format", "must be %q or %q, got %q", LogFormatJSON, LogFormatConsole, l.Format)
	}
}
