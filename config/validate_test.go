package config

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// key32 returns a valid base64 32-byte key.
func key32(b byte) Secret {
	return Secret(base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune(b)), 32))))
}

// validConfig returns defaults plus the required settings.
func validConfig() *Config {
	c := Default()
	c.Supabase.URL = "https://abc.supabase.co"
	c.Supabase.ServiceRoleKey = testKey
	c.Realtime.URL = "wss://abc.supabase.co/realtime/v1/websocket"
	return c
}

func TestValidate_Valid(t *testing.T) {
	require.NoError(t, validConfig().Validate())

	c := validConfig()
	c.Secrets.EncryptionKey = key32('a')
	c.Secrets.PreviousKeys = []Secret{key32('b'), Secret(base64.RawURLEncoding.EncodeToString(make([]byte, 32)))}
	c.Watch.ProjectColumn, c.Watch.StartedAtColumn, c.Watch.FinishedAtColumn = "", "", ""
	c.Watch.Statuses.Paused, c.Watch.Statuses.Canceled = nil, nil
	c.Watch.WorkflowLookup = WorkflowLookupNone
	c.HTTP.Listen = ""
	c.Log = Log{} // zero value: info, json
	c.Alerts.LinkBaseURL = "https://app.example.com/runs"
	c.Alerts.CatchupOverlap = 0
	c.Sender.ResponseExcerptBytes = 0
	c.Realtime.VSN = "1.0.0"
	c.Sender.AllowedNetworks = []string{"127.0.0.0/8", "::1", "10.1.2.3", "hooks.internal", "*.svc.cluster.local", "fd00::/8"}
	c.Sender.WriteFlushInterval = 0
	c.Secrets.AllowPlaintext = true
	require.NoError(t, c.Validate())

	c = validConfig()
	c.Secrets.EncryptionKey = key32('a')
	c.API = API{Enabled: true, OperatorToken: "0123456789abcdef", JWTSecret: Secret(strings.Repeat("j", 32)), MaxBodyBytes: 1024}
	require.NoError(t, c.Validate())
}

func TestValidate_Fields(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // the complete error
	}{
		{"SupabaseURLMissing", func(c *Config) { c.Supabase.URL = "" }, "supabase.url: required (or set SUPABASE_URL)"},
		{"SupabaseURLScheme", func(c *Config) { c.Supabase.URL = "ftp://x.example.com" }, `supabase.url: must be http(s) URL, got scheme "ftp"`},
		{"SupabaseURLNoScheme", func(c *Config) { c.Supabase.URL = "abc.supabase.co" }, `supabase.url: must be http(s) URL, got scheme ""`},
		{"SupabaseURLNoHost", func(c *Config) { c.Supabase.URL = "https:///x" }, "supabase.url: must be http(s) URL: no host"},
		{"SupabaseURLQuery", func(c *Config) { c.Supabase.URL = "https://x.example.com?a=1" }, "supabase.url: must not contain a query"},
		{"SupabaseURLUserInfo", func(c *Config) { c.Supabase.URL = "https://u:p@x.example.com" }, "supabase.url: must be http(s) URL: must not contain user info"},
		{"ServiceRoleKeyMissing", func(c *Config) { c.Supabase.ServiceRoleKey = "" }, "supabase.service_role_key: required (or set SUPABASE_SECRET_KEY or SUPABASE_SERVICE_ROLE_KEY)"},
		{"ServiceRoleKeySpace", func(c *Config) { c.Supabase.ServiceRoleKey = "abc\n" }, "supabase.service_role_key: must not have leading or trailing white space"},
		{"SupabaseSchema", func(c *Config) { c.Supabase.Schema = "my schema" }, `supabase.schema: must be a plain SQL identifier (letters, digits, _ and $, at most 63 bytes), got "my schema"`},
		{"SupabaseTimeout", func(c *Config) { c.Supabase.RequestTimeout = 0 }, "supabase.request_timeout: must be a positive duration, got 0s"},
		{"SupabaseRetries", func(c *Config) { c.Supabase.MaxRetries = -1 }, "supabase.max_retries: must be between 0 and 100, got -1"},
		{"RealtimeURLScheme", func(c *Config) { c.Realtime.URL = "https://abc.supabase.co/realtime/v1/websocket" }, `realtime.url: must be ws(s) URL, got scheme "https"`},
		{"RealtimeURLEmpty", func(c *Config) { c.Realtime.URL = "" }, "realtime.url: required (Load derives it from supabase.url)"},
		{"RealtimeVSN", func(c *Config) { c.Realtime.VSN = "3" }, `realtime.vsn: must be "1.0.0" or "2.0.0", got "3"`},
		{"Heartbeat", func(c *Config) { c.Realtime.HeartbeatInterval = -time.Second }, "realtime.heartbeat_interval: must be a positive duration, got -1s"},
		{"JoinTimeout", func(c *Config) { c.Realtime.JoinTimeout = 0 }, "realtime.join_timeout: must be a positive duration, got 0s"},
		{"ReconnectInitial", func(c *Config) { c.Realtime.ReconnectInitial = 0 }, "realtime.reconnect_initial: must be a positive duration, got 0s"},
		{"ReconnectMaxBelowInitial", func(c *Config) { c.Realtime.ReconnectMax = 500 * time.Millisecond }, "realtime.reconnect_max: must not be less than realtime.reconnect_initial (1s), got 500ms"},
		{"BufferSize", func(c *Config) { c.Realtime.BufferSize = 0 }, "realtime.buffer_size: must be between 1 and 1048576, got 0"},
		{"WatchSchema", func(c *Config) { c.Watch.Schema = "" }, "watch.schema: required"},
		{"WatchTable", func(c *Config) { c.Watch.Table = "runs;drop" }, `watch.table: must be a plain SQL identifier (letters, digits, _ and $, at most 63 bytes), got "runs;drop"`},
		{"WatchIDColumn", func(c *Config) { c.Watch.IDColumn = "1id" }, `watch.id_column: must be a plain SQL identifier (letters, digits, _ and $, at most 63 bytes), got "1id"`},
		{"WatchStatusColumn", func(c *Config) { c.Watch.StatusColumn = "" }, "watch.status_column: required"},
		{"WatchWorkflowColumn", func(c *Config) { c.Watch.WorkflowColumn = "" }, "watch.workflow_column: required"},
		{"WatchProjectColumn", func(c *Config) { c.Watch.ProjectColumn = "a-b" }, `watch.project_column: must be a plain SQL identifier (letters, digits, _ and $, at most 63 bytes), got "a-b"`},
		{"WatchStartedAtColumn", func(c *Config) { c.Watch.StartedAtColumn = strings.Repeat("x", 64) }, `watch.started_at_column: must be a plain SQL identifier (letters, digits, _ and $, at most 63 bytes), got "` + strings.Repeat("x", 64) + `"`},
		{"WatchFinishedAtColumn", func(c *Config) { c.Watch.FinishedAtColumn = "é" }, `watch.finished_at_column: must be a plain SQL identifier (letters, digits, _ and $, at most 63 bytes), got "é"`},
		{"WatchUpdatedAtColumn", func(c *Config) { c.Watch.UpdatedAtColumn = "" }, "watch.updated_at_column: required"},
		{"WatchLookup", func(c *Config) { c.Watch.WorkflowLookup = "slug" }, `watch.workflow_lookup: must be "meshhook" or "none", got "slug"`},
		{"StatusesSucceededEmpty", func(c *Config) { c.Watch.Statuses.Succeeded = nil }, "watch.statuses.succeeded: must list at least one status value"},
		{"StatusesFailedEmpty", func(c *Config) { c.Watch.Statuses.Failed = []string{} }, "watch.statuses.failed: must list at least one status value"},
		{"StatusesRunningEmpty", func(c *Config) { c.Watch.Statuses.Running = nil }, "watch.statuses.running: must list at least one status value"},
		{"StatusesBlankValue", func(c *Config) { c.Watch.Statuses.Paused = []string{"paused", " "} }, "watch.statuses.paused[1]: must not be empty"},
		{"StatusesDuplicate", func(c *Config) { c.Watch.Statuses.Canceled = []string{"failed"} }, `watch.statuses.canceled[0]: status "failed" is already listed in watch.statuses.failed`},
		{"ConfigsTable", func(c *Config) { c.Alerts.ConfigsTable = "" }, "alerts.configs_table: required"},
		{"ResyncInterval", func(c *Config) { c.Alerts.ResyncInterval = 0 }, "alerts.resync_interval: must be a positive duration, got 0s"},
		{"CatchupOverlap", func(c *Config) { c.Alerts.CatchupOverlap = -time.Second }, "alerts.catchup_overlap: must not be negative, got -1s"},
		{"CatchupMaxLookback", func(c *Config) { c.Alerts.CatchupMaxLookback = 10 * time.Second }, "alerts.catchup_max_lookback: must not be less than alerts.catchup_overlap (30s), got 10s"},
		{"TimerTick", func(c *Config) { c.Alerts.TimerTick = 0 }, "alerts.timer_tick: must be a positive duration, got 0s"},
		{"LinkBaseURL", func(c *Config) { c.Alerts.LinkBaseURL = "app.example.com" }, `alerts.link_base_url: must be http(s) URL, got scheme ""`},
		{"Workers", func(c *Config) { c.Sender.Workers = 0 }, "sender.workers: must be between 1 and 1024, got 0"},
		{"WorkersHigh", func(c *Config) { c.Sender.Workers = 1025 }, "sender.workers: must be between 1 and 1024, got 1025"},
		{"QueueSize", func(c *Config) { c.Sender.QueueSize = 0 }, "sender.queue_size: must be between 1 and 1048576, got 0"},
		{"SenderTimeout", func(c *Config) { c.Sender.RequestTimeout = 0 }, "sender.request_timeout: must be a positive duration, got 0s"},
		{"MaxAttempts", func(c *Config) { c.Sender.MaxAttempts = -1 }, "sender.max_attempts: must not be negative (0 means unbounded within sender.max_age), got -1"},
		{"RetryInitial", func(c *Config) { c.Sender.RetryInitial = 0 }, "sender.retry_initial: must be a positive duration, got 0s"},
		{"RetryMax", func(c *Config) { c.Sender.RetryMax = time.Second }, "sender.retry_max: must not be less than sender.retry_initial (5s), got 1s"},
		{"MaxAge", func(c *Config) { c.Sender.MaxAge = 0 }, "sender.max_age: must be a positive duration, got 0s"},
		{"Excerpt", func(c *Config) { c.Sender.ResponseExcerptBytes = -1 }, "sender.response_excerpt_bytes: must be between 0 and 1048576, got -1"},
		{"PerHost", func(c *Config) { c.Sender.PerHostConcurrency = 0 }, "sender.per_host_concurrency: must be between 1 and 1024, got 0"},
		{"PollInterval", func(c *Config) { c.Sender.PollInterval = 0 }, "sender.poll_interval: must be a positive duration, got 0s"},
		{"UserAgentEmpty", func(c *Config) { c.Sender.UserAgent = "" }, "sender.user_agent: required"},
		{"UserAgentControl", func(c *Config) { c.Sender.UserAgent = "x\r\nX-Evil: 1" }, "sender.user_agent: must not contain control characters"},
		{"ConnectTimeout", func(c *Config) { c.Sender.ConnectTimeout = 0 }, "sender.connect_timeout: must be a positive duration, got 0s"},
		{"TLSHandshakeTimeout", func(c *Config) { c.Sender.TLSHandshakeTimeout = -time.Second }, "sender.tls_handshake_timeout: must be a positive duration, got -1s"},
		{"LeaseShort", func(c *Config) { c.Sender.Lease = 15 * time.Second }, "sender.lease: must be at least twice sender.request_timeout (10s), got 15s"},
		{"AllowedNetworkBad", func(c *Config) { c.Sender.AllowedNetworks = []string{"127.0.0.0/8", "10.0.0.0/33"} }, `sender.allowed_networks[1]: must be a CIDR, an IP address, a host name or *.domain, got "10.0.0.0/33"`},
		{"AllowedNetworkURL", func(c *Config) { c.Sender.AllowedNetworks = []string{"https://hooks.internal"} }, `sender.allowed_networks[0]: must be a CIDR, an IP address, a host name or *.domain, got "https://hooks.internal"`},
		{"CircuitFailures", func(c *Config) { c.Sender.CircuitFailures = 0 }, "sender.circuit_failures: must be between 1 and 1000, got 0"},
		{"CircuitCooldown", func(c *Config) { c.Sender.CircuitCooldown = 0 }, "sender.circuit_cooldown: must be a positive duration, got 0s"},
		{"WriteBatch", func(c *Config) { c.Sender.WriteBatchSize = 0 }, "sender.write_batch_size: must be between 1 and 10000, got 0"},
		{"WriteFlush", func(c *Config) { c.Sender.WriteFlushInterval = 2 * time.Second }, "sender.write_flush_interval: must be between 0s and 1s, got 2s"},
		{"EncryptionKeyBase64", func(c *Config) { c.Secrets.EncryptionKey = "not base64!" }, "secrets.encryption_key: must be base64 of 32 bytes: not valid base64"},
		{"EncryptionKeyLength", func(c *Config) { c.Secrets.EncryptionKey = Secret(base64.StdEncoding.EncodeToString(make([]byte, 16))) }, "secrets.encryption_key: must be base64 of 32 bytes, got 16 bytes"},
		{"PreviousKeyBad", func(c *Config) {
			c.Secrets.EncryptionKey = key32('a')
			c.Secrets.PreviousKeys = []Secret{key32('b'), "shor"}
		}, "secrets.previous_keys[1]: must be base64 of 32 bytes, got 3 bytes"},
		{"PreviousKeysWithoutCurrent", func(c *Config) { c.Secrets.PreviousKeys = []Secret{key32('b')} }, "secrets.previous_keys: set but secrets.encryption_key is empty"},
		{"Listen", func(c *Config) { c.HTTP.Listen = "9464" }, `http.listen: must be host:port, got "9464"`},
		{"ListenPort", func(c *Config) { c.HTTP.Listen = "127.0.0.1:http" }, `http.listen: port must be a number between 0 and 65535, got "http"`},
		{"APIOperatorTokenShort", func(c *Config) { c.API.OperatorToken = "short" }, "api.operator_token: must be at least 16 characters, got 5"},
		{"APIOperatorTokenSpace", func(c *Config) { c.API.OperatorToken = " 0123456789abcdef" }, "api.operator_token: must not have leading or trailing white space"},
		{"APIJWTSecretShort", func(c *Config) { c.API.JWTSecret = "0123456789" }, "api.jwt_secret: must be at least 32 characters, got 10"},
		{"APIMaxBody", func(c *Config) { c.API.MaxBodyBytes = 0 }, "api.max_body_bytes: must be between 1024 and 67108864, got 0"},
		{"APIEnabledNoListen", func(c *Config) {
			c.API = API{Enabled: true, OperatorToken: "0123456789abcdef", MaxBodyBytes: 1 << 20}
			c.Secrets.EncryptionKey = key32('a')
			c.HTTP.Listen = ""
		}, "api.enabled: requires http.listen (the API is served there)"},
		{"APIEnabledNoKey", func(c *Config) {
			c.API = API{Enabled: true, OperatorToken: "0123456789abcdef", MaxBodyBytes: 1 << 20}
		}, "api.enabled: requires secrets.encryption_key (the API seals webhook URLs, signing secrets and header values before storing them)"},
		{"LogLevel", func(c *Config) { c.Log.Level = "verbose" }, `log.level: must be debug, info, warn or error, got "verbose"`},
		{"LogFormat", func(c *Config) { c.Log.Format = "text" }, `log.format: must be "json" or "console", got "text"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			err := c.Validate()
			require.Error(t, err)
			require.Equal(t, tt.want, err.Error())
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			require.True(t, strings.HasPrefix(tt.want, fe.Field+": "), "field %q", fe.Field)
			require.NotContains(t, err.Error(), testKey)
		})
	}
}

func TestValidate_ReportsEveryProblem(t *testing.T) {
	c := Default() // no url, no key
	c.Realtime.VSN = ""
	c.Sender.Workers = 0
	c.Sender.RetryMax = time.Second
	c.Log.Format = "xml"
	c.Secrets.EncryptionKey = "also-a-secret-value"
	err := c.Validate()
	require.Error(t, err)

	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		require.True(t, errors.As(e, &fe), "%v is not a *FieldError", e)
		fields = append(fields, fe.Field)
	}
	require.Equal(t, []string{
		"supabase.url", "supabase.service_role_key", "realtime.vsn", "sender.workers",
		"sender.retry_max", "secrets.encryption_key", "log.format",
	}, fields)
	require.NotContains(t, err.Error(), "also-a-secret-value")
}

func TestValidate_RealtimeURLNotReportedTwice(t *testing.T) {
	// With a bad supabase.url there is nothing to derive from; only
	// supabase.url is reported.
	c := validConfig()
	c.Supabase.URL = "nonsense"
	c.Realtime.URL = ""
	require.EqualError(t, c.Validate(), `supabase.url: must be http(s) URL, got scheme ""`)
}

func TestSecrets_Keys(t *testing.T) {
	s := Secrets{EncryptionKey: key32('a'), PreviousKeys: []Secret{key32('b')}}
	cur, prev, err := s.Keys()
	require.NoError(t, err)
	require.Equal(t, []byte(strings.Repeat("a", 32)), cur)
	require.Equal(t, [][]byte{[]byte(strings.Repeat("b", 32))}, prev)

	cur, prev, err = Secrets{}.Keys()
	require.NoError(t, err)
	require.Nil(t, cur)
	require.Nil(t, prev)

	_, _, err = Secrets{EncryptionKey: key32('a'), PreviousKeys: []Secret{"bad"}}.Keys()
	require.EqualError(t, err, "secrets.previous_keys[0]: must be base64 of 32 bytes, got 2 bytes")
}

func TestValidateOps(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	for name, tc := range map[string]struct {
		edit  func(*Ops)
		field string // "" means valid
	}{
		"defaults":           {func(*Ops) {}, ""},
		"webhook":            {func(o *Ops) { o.AlertWebhookURL, o.AlertSecret = "https://ops.example/hook", Secret(secret) }, ""},
		"no secret":          {func(o *Ops) { o.AlertWebhookURL = "https://ops.example/hook" }, "ops.alert_secret"},
		"bad secret":         {func(o *Ops) { o.AlertWebhookURL, o.AlertSecret = "https://ops.example/hook", "whsec_short" }, "ops.alert_secret"},
		"secret without url": {func(o *Ops) { o.AlertSecret = Secret(secret) }, "ops.alert_secret"},
		"relative url":       {func(o *Ops) { o.AlertWebhookURL, o.AlertSecret = "/hook", Secret(secret) }, "ops.alert_webhook_url"},
		"percent":            {func(o *Ops) { o.FailurePercent = 101 }, "ops.failure_percent"},
		"window":             {func(o *Ops) { o.FailureWindow = 0 }, "ops.failure_window"},
		"min attempts":       {func(o *Ops) { o.FailureMinAttempts = 0 }, "ops.failure_min_attempts"},
		"backlog":            {func(o *Ops) { o.PendingBacklog = -1 }, "ops.pending_backlog"},
		"interval":           {func(o *Ops) { o.CheckInterval = 0 }, "ops.check_interval"},
	} {
		t.Run(name, func(t *testing.T) {
			o := defaultOps()
			tc.edit(&o)
			v := &validator{}
			o.validate(v)
			if tc.field == "" {
				require.Empty(t, v.errs)
				return
			}
			require.Len(t, v.errs, 1)
			var fe *FieldError
			require.ErrorAs(t, v.errs[0], &fe)
			require.Equal(t, tc.field, fe.Field)
		})
	}
}
