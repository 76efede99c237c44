// Package config loads and validates the meshhook-alerts configuration.
//
// Configuration comes from three layers, later layers winning:
//
//  1. built-in defaults (see Default),
//  2. a YAML file (see Load for how it is found),
//  3. environment variables named MESHHOOK_ALERTS_<SECTION>_<KEY>, for
//     example MESHHOOK_ALERTS_SUPABASE_URL or MESHHOOK_ALERTS_SENDER_WORKERS.
//     The Supabase names SUPABASE_URL, SUPABASE_SECRET_KEY and
//     SUPABASE_SERVICE_ROLE_KEY (MeshHook's .env uses the first and last)
//     are accepted too; the prefixed names win over them.
//
// Durations are Go duration strings ("25s", "5m"). Lists given through the
// environment are comma-separated. Only this package imports viper.
package config

import (
	"github.com/meshhook/meshhook-alerts/internal/logging"

	"runtime/debug"
	"time"
)

// Config is the complete daemon configuration. Load returns one; Default
// returns the built-in defaults. A Config is a plain value: it is safe for
// concurrent reads and is never modified by this package after Load returns.
type Config struct {
	// File is the path of the YAML file Load read, or "" when none was read.
	File string `mapstructure:"-"`

	Supabase Supabase `mapstructure:"supabase"`
	Realtime Realtime `mapstructure:"realtime"`
	Watch    Watch    `mapstructure:"watch"`
	Alerts   Alerts   `mapstructure:"alerts"`
	Sender   Sender   `mapstructure:"sender"`
	Secrets  Secrets  `mapstructure:"secrets"`
	HTTP     HTTP     `mapstructure:"http"`
	API      API      `mapstructure:"api"`
	UI       UI       `mapstructure:"ui"`
	Ops      Ops      `mapstructure:"ops"`
	Log      Log      `mapstructure:"log"`
}

// Supabase configures access to the Supabase REST API (PostgREST).
type Supabase struct {
	// URL is the project URL, e.g. https://<ref>.supabase.co. Required.
	URL string `mapstructure:"url"`
	// ServiceRoleKey is the project's secret API key: a new secret key
	// (sb_secret_…, from SUPABASE_SECRET_KEY) or the legacy service_role
	// JWT (SUPABASE_SERVICE_ROLE_KEY). Publishable and anon keys are
	// refused. Required.
	ServiceRoleKey Secret `mapstructure:"service_role_key"`
	// Schema is the PostgREST schema of our tables. Defaults to "public".
	Schema string `mapstructure:"schema"`
	// RequestTimeout bounds one REST request. Defaults to 10s.
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	// MaxRetries is how often a failed idempotent REST request is retried.
	// Defaults to 4.
	MaxRetries int `mapstructure:"max_retries"`
	// AllowInsecure permits an http:// URL (and a ws:// realtime.url) to a
	// host that is not loopback, which sends the service-role key in
	// cleartext. Loopback hosts (127.0.0.0/8, ::1, localhost) need no
	// permission. Defaults to false.
	AllowInsecure bool `mapstructure:"allow_insecure"`
}

// Realtime configures the Supabase Realtime websocket connection.
type Realtime struct {
	// Enabled joins Realtime for changes. When false the daemon finds
	// changes by reconciliation alone (alerts.reconcile_interval), with
	// the same guarantees and latency about that interval. Defaults to
	// true.
	Enabled bool `mapstructure:"enabled"`
	// URL is the websocket endpoint without query, e.g.
	// wss://<ref>.supabase.co/realtime/v1/websocket. When empty, Load derives
	// it from Supabase.URL (see RealtimeURLFromSupabase).
	URL string `mapstructure:"url"`
	// VSN is the Phoenix serializer version, "1.0.0" or "2.0.0".
	// Defaults to "2.0.0".
	VSN string `mapstructure:"vsn"`
	// HeartbeatInterval is the time between heartbeats. Defaults to 25s.
	HeartbeatInterval time.Duration `mapstructure:"heartbeat_interval"`
	// JoinTimeout bounds the wait for a phx_join reply. Defaults to 15s.
	JoinTimeout time.Duration `mapstructure:"join_timeout"`
	// ReconnectInitial is the first reconnect backoff. Defaults to 1s.
	ReconnectInitial time.Duration `mapstructure:"reconnect_initial"`
	// ReconnectMax caps the reconnect backoff. Defaults to 30s.
	ReconnectMax time.Duration `mapstructure:"reconnect_max"`
	// BufferSize is the capacity of the change-event channel: a burst larger
	// than the engine can take at once is held here, then on the socket for
	// up to realtime.DefaultBufferWait, instead of being dropped (and caught
	// up from the database). Defaults to 16384.
	BufferSize int `mapstructure:"buffer_size"`
}

// Workflow lookup modes for Watch.WorkflowLookup.
const (
	// WorkflowLookupMeshHook means the workflow column holds a
	// workflow_definitions.id that is resolved to its slug.
	WorkflowLookupMeshHook = "meshhook"
	// WorkflowLookupNone means the workflow column's value is the slug.
	WorkflowLookupNone = "none"
)

// Watch describes the watched runs table and how its columns map to runs.
// Columns marked optional may be "" when the table has no such column.
type Watch struct {
	// Schema of the runs table. Defaults to "public".
	Schema string `mapstructure:"schema"`
	// Table is the runs table. Defaults to "workflow_runs".
	Table string `mapstructure:"table"`
	// IDColumn holds the run id. Defaults to "id".
	IDColumn string `mapstructure:"id_column"`
	// StatusColumn holds the run status. Defaults to "status".
	StatusColumn string `mapstructure:"status_column"`
	// WorkflowColumn identifies the workflow. Defaults to "workflow_id".
	WorkflowColumn string `mapstructure:"workflow_column"`
	// ProjectColumn holds the project id (optional). Defaults to "project_id".
	ProjectColumn string `mapstructure:"project_column"`
	// StartedAtColumn (optional). Defaults to "started_at".
	StartedAtColumn string `mapstructure:"started_at_column"`
	// FinishedAtColumn (optional). Defaults to "finished_at".
	FinishedAtColumn string `mapstructure:"finished_at_column"`
	// UpdatedAtColumn orders catch-up scans. Defaults to "updated_at".
	UpdatedAtColumn string `mapstructure:"updated_at_column"`
	// WorkflowLookup is WorkflowLookupMeshHook or WorkflowLookupNone.
	// Defaults to WorkflowLookupMeshHook.
	WorkflowLookup string `mapstructure:"workflow_lookup"`
	// Statuses maps raw status values to run states.
	Statuses Statuses `mapstructure:"statuses"`
}

// Statuses lists, per run state, the raw values of the status column that
// mean that state. A value may appear in at most one list.
type Statuses struct {
	Succeeded []string `mapstructure:"succeeded"` // Defaults to [succeeded].
	Failed    []string `mapstructure:"failed"`    // Defaults to [failed].
	Canceled  []string `mapstructure:"canceled"`  // Defaults to [canceled].
	Paused    []string `mapstructure:"paused"`    // Defaults to [paused].
	Running   []string `mapstructure:"running"`   // Defaults to [running].
}

// Alerts configures the alert-rule cache and the run matcher.
type Alerts struct {
	// ConfigsTable is the alert rules table. Defaults to "alert_configs".
	ConfigsTable string `mapstructure:"configs_table"`
	// ResyncInterval is how often the rule cache is fully reloaded.
	// Defaults to 5m.
	ResyncInterval time.Duration `mapstructure:"resync_interval"`
	// ReconcileInterval is how often the runs changed since the reconcile
	// cursor are read from the database. Defaults to 1s.
	ReconcileInterval time.Duration `mapstructure:"reconcile_interval"`
	// ReconcileDelay leaves the newest changes to Realtime: reconciliation
	// reads only rows updated at least this long ago, so that it finds
	// only what Realtime lost instead of racing its poll. Not applied with
	// realtime.enabled false. Defaults to 1s.
	ReconcileDelay time.Duration `mapstructure:"reconcile_delay"`
	// ReconcileLagAlert is the reconciler lag past which an error is
	// logged (and /readyz says so); 0 disables it. Defaults to 1m.
	ReconcileLagAlert time.Duration `mapstructure:"reconcile_lag_alert"`
	// CatchupOverlap holds the reconcile horizon back by this much when the
	// database cannot report its oldest transaction in progress. Defaults
	// to 30s.
	CatchupOverlap time.Duration `mapstructure:"catchup_overlap"`
	// CatchupMaxLookback caps how far back reconciliation reads (after a
	// long outage, and at the first start). Defaults to 24h.
	CatchupMaxLookback time.Duration `mapstructure:"catchup_max_lookback"`
	// TimerTick is the resolution of delayed/stalled timers. Defaults to 1s.
	TimerTick time.Duration `mapstructure:"timer_tick"`
	// LinkBaseURL, when set, is used to build run links in payloads.
	// Defaults to "" (no links).
	LinkBaseURL string `mapstructure:"link_base_url"`
}

// Sender configures webhook delivery.
type Sender struct {
	// Workers is the number of concurrent deliveries. Defaults to 16.
	Workers int `mapstructure:"workers"`
	// QueueSize is the capacity of the delivery queue. Defaults to 10000.
	QueueSize int `mapstructure:"queue_size"`
	// RequestTimeout bounds one delivery attempt. Defaults to 10s.
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	// MaxAttempts caps attempts per alert; 0 means unbounded within MaxAge.
	// Defaults to 0.
	MaxAttempts int `mapstructure:"max_attempts"`
	// RetryInitial is the first retry backoff. Defaults to 5s.
	RetryInitial time.Duration `mapstructure:"retry_initial"`
	// RetryMax caps the retry backoff. Defaults to 30m.
	RetryMax time.Duration `mapstructure:"retry_max"`
	// MaxAge is how long an alert is retried before it fails. Defaults to 24h.
	MaxAge time.Duration `mapstructure:"max_age"`
	// ResponseExcerptBytes caps the stored response body excerpt; 0 stores
	// none. Defaults to 4096.
	ResponseExcerptBytes int `mapstructure:"response_excerpt_bytes"`
	// AllowInsecureHTTP permits plain http:// webhook URLs. Defaults to false.
	AllowInsecureHTTP bool `mapstructure:"allow_insecure_http"`
	// PerHostConcurrency caps concurrent deliveries to one host.
	// Defaults to 4.
	PerHostConcurrency int `mapstructure:"per_host_concurrency"`
	// PollInterval is how often due retries are polled. Defaults to 1s.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// UserAgent is sent with every webhook. When empty, Load sets
	// DefaultUserAgent().
	UserAgent string `mapstructure:"user_agent"`
	// ConnectTimeout bounds the TCP connect of an attempt. Defaults to 5s.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// TLSHandshakeTimeout bounds the TLS handshake. Defaults to 5s.
	TLSHandshakeTimeout time.Duration `mapstructure:"tls_handshake_timeout"`
	// Lease is how long an alert taken for delivery stays reserved to one
	// daemon; a daemon that dies holding it frees it when the lease expires.
	// At least twice RequestTimeout. Defaults to 2m.
	Lease time.Duration `mapstructure:"lease"`
	// AllowedNetworks are deliberate internal destinations the SSRF guard
	// lets through: CIDRs ("10.0.0.0/8"), IP addresses, host names, or
	// "*.domain" for subdomains. Defaults to none.
	AllowedNetworks []string `mapstructure:"allowed_networks"`
	// CircuitFailures is how many consecutive failed attempts to one
	// endpoint (scheme, host, port and path) open its circuit breaker.
	// Defaults to 5.
	CircuitFailures int `mapstructure:"circuit_failures"`
	// CircuitCooldown is how long an open circuit pauses an endpoint before a
	// probe (doubling after each failed probe, up to 10m). Defaults to 30s.
	CircuitCooldown time.Duration `mapstructure:"circuit_cooldown"`
	// WriteBatchSize caps the outcomes recorded in one database request.
	// Defaults to 500.
	WriteBatchSize int `mapstructure:"write_batch_size"`
	// WriteFlushInterval is how long outcomes wait for others to share a
	// database request. Defaults to 2ms.
	WriteFlushInterval time.Duration `mapstructure:"write_flush_interval"`
}

// Secrets configures the keys that seal secrets stored in alert_configs.
type Secrets struct {
	// EncryptionKey is the base64 encoding of a 32-byte key used to seal and
	// open "mhsealed:v1:" values. Empty disables sealed values.
	EncryptionKey Secret `mapstructure:"encryption_key"`
	// PreviousKeys are older keys still accepted for opening, for rotation.
	PreviousKeys []Secret `mapstructure:"previous_keys"`
	// AllowPlaintext accepts alert rules whose webhook_url, signing_secrets,
	// custom header values or TLS key are stored in clear (each such rule is
	// logged once with a warning). Otherwise they are refused. Defaults to
	// false.
	AllowPlaintext bool `mapstructure:"allow_plaintext"`
}

// HTTP configures the daemon's listener: health, metrics, and the HTTP API
// and web UI when they are enabled.
type HTTP struct {
	// Listen is the host:port to listen on; "" disables the listener.
	// Defaults to "127.0.0.1:9464".
	Listen string `mapstructure:"listen"`
	// Pprof serves Go's profiling endpoints under /debug/pprof/ on Listen,
	// for diagnosing CPU and memory use. Defaults to false.
	Pprof bool `mapstructure:"pprof"`
	// TLSCertFile and TLSKeyFile are a PEM certificate (chain) and its
	// private key: when both are set, Listen serves HTTPS only (TLS 1.2 or
	// later), and the files are read again when they change or on SIGHUP.
	// Default: "" (plain HTTP).
	TLSCertFile string `mapstructure:"tls_cert_file"`
	TLSKeyFile  string `mapstructure:"tls_key_file"`
	// TLSClientCAFile is a PEM bundle of CA certificates: when set, /metrics
	// answers only requests whose TLS client certificate one of them
	// signed (other paths ask for no certificate). Needs TLSCertFile.
	// Default: "".
	TLSClientCAFile string `mapstructure:"tls_client_ca_file"`
	// AllowInsecure permits serving the HTTP API, the web UI or the
	// profiling endpoints without TLS on an address that is not loopback,
	// for when a TLS-terminating proxy is in front. Defaults to false.
	AllowInsecure bool `mapstructure:"allow_insecure"`
}

// TLS reports whether the listener serves TLS.
func (h HTTP) TLS() bool { return h.TLSCertFile != "" && h.TLSKeyFile != "" }

// API configures the HTTP API (/api/...) served on HTTP.Listen.
type API struct {
	// Enabled serves the API. It needs HTTP.Listen and Secrets.EncryptionKey
	// (the API seals secret-bearing fields before storing them). Users
	// sign in with their Supabase access tokens, verified against the
	// project's JWKS (<Supabase.URL>/auth/v1/.well-known/jwks.json);
	// operators with OperatorToken. Defaults to false.
	Enabled bool `mapstructure:"enabled"`
	// OperatorToken grants full access when sent as
	// "Authorization: Bearer <token>". Empty: no operator access.
	OperatorToken Secret `mapstructure:"operator_token"`
	// JWTSecret is the Supabase project's legacy JWT secret: users' HS256
	// access tokens verify with it, besides the ES256/RS256 tokens the
	// project's JWKS verifies. Empty: only the JWKS (projects that moved to
	// asymmetric signing keys).
	JWTSecret Secret `mapstructure:"jwt_secret"`
	// MaxBodyBytes caps a request body. Defaults to 1 MiB.
	MaxBodyBytes int `mapstructure:"max_body_bytes"`
}

// UI configures the web UI served on HTTP.Listen. The UI calls the HTTP
// API from the browser, so it is served only when API.Enabled is set too.
type UI struct {
	// Enabled serves the web UI under Path, and redirects "/" there, when
	// the API is enabled. Defaults to true.
	Enabled bool `mapstructure:"enabled"`
	// Path is where the UI is served: an absolute path that ends in "/",
	// not "/" itself and not under the API's or the operational endpoints'
	// paths. Defaults to "/ui/".
	Path string `mapstructure:"path"`
	// SupabasePublishableKey is the project's publishable key
	// (sb_publishable_…, or the legacy anon key): with it the UI signs
	// Supabase users in with email and password through Supabase Auth at
	// supabase.url, and calls the API with their access tokens. It is
	// public by design (served to browsers by GET /api/auth/config); never
	// a secret key. Empty: only tokens can sign in. Defaults to "".
	SupabasePublishableKey string `mapstructure:"supabase_publishable_key"`
}

// Log configures logging. The zero value means info-level JSON.
type Log struct {
	// Level is debug, info, warn or error. Defaults to "info".
	Level string `mapstructure:"level"`
	// Format is "json" or "console". Defaults to "json".
	Format string `mapstructure:"format"`
	// Development enables zap's development mode (DPanic panics, stack
	// traces from warn). Defaults to false.
	Development bool `mapstructure:"development"`
}

// Log formats for Log.Format.
const (
	LogFormatJSON    = logging.FormatJSON
	LogFormatConsole = logging.FormatConsole
)

// Default returns the built-in defaults. Supabase.URL and
// Supabase.ServiceRoleKey are empty, so the result does not validate until
// they are set.
func Default() *Config {
	return &Config{
		Supabase: Supabase{
			Schema:         "public",
			RequestTimeout: 10 * time.Second,
			MaxRetries:     4,
		},
		Realtime: Realtime{
			VSN:               "2.0.0",
			HeartbeatInterval: 25 * time.Second,
			JoinTimeout:       15 * time.Second,
			ReconnectInitial:  time.Second,
			ReconnectMax:      30 * time.Second,
			BufferSize:        16384,
			Enabled:           true,
		},
		Watch: Watch{
			Schema:           "public",
			Table:            "workflow_runs",
			IDColumn:         "id",
			StatusColumn:     "status",
			WorkflowColumn:   "workflow_id",
			ProjectColumn:    "project_id",
			StartedAtColumn:  "started_at",
			FinishedAtColumn: "finished_at",
			UpdatedAtColumn:  "updated_at",
			WorkflowLookup:   WorkflowLookupMeshHook,
			Statuses: Statuses{
				Succeeded: []string{"succeeded"},
				Failed:    []string{"failed"},
				Canceled:  []string{"canceled"},
				Paused:    []string{"paused"},
				Running:   []string{"running"},
			},
		},
		Alerts: Alerts{
			ConfigsTable:       "alert_configs",
			ResyncInterval:     5 * time.Minute,
			ReconcileInterval:  time.Second,
			ReconcileLagAlert:  time.Minute,
			ReconcileDelay:     time.Second,
			CatchupOverlap:     30 * time.Second,
			CatchupMaxLookback: 24 * time.Hour,
			TimerTick:          time.Second,
		},
		Sender: Sender{
			Workers:              16,
			QueueSize:            10000,
			RequestTimeout:       10 * time.Second,
			RetryInitial:         5 * time.Second,
			RetryMax:             30 * time.Minute,
			MaxAge:               24 * time.Hour,
			ResponseExcerptBytes: 4096,
			PerHostConcurrency:   4,
			PollInterval:         time.Second,
			UserAgent:            DefaultUserAgent(),
			ConnectTimeout:       5 * time.Second,
			TLSHandshakeTimeout:  5 * time.Second,
			Lease:                2 * time.Minute,
			AllowedNetworks:      []string{},
			CircuitFailures:      5,
			CircuitCooldown:      30 * time.Second,
			WriteBatchSize:       500,
			WriteFlushInterval:   2 * time.Millisecond,
		},
		Secrets: Secrets{PreviousKeys: []Secret{}},
		HTTP:    HTTP{Listen: "127.0.0.1:9464"},
		API:     API{MaxBodyBytes: 1 << 20},
		UI:      UI{Enabled: true, Path: "/ui/"},
		Ops:     defaultOps(),
		Log:     Log{Level: "info", Format: LogFormatJSON},
	}
}

// version is stamped at build time with
// -ldflags "-X github.com/meshhook/meshhook-alerts/config.version=v1.2.3".
var version string

// Version returns the daemon's version: the value stamped with -ldflags, else
// the main module's version from the build info, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// DefaultUserAgent returns "meshhook-alerts/" + Version().
func DefaultUserAgent() string {
	return "meshhook-alerts/" + Version()
}
