package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/testcert"
)

// apiConfig is validConfig with the HTTP API (and so the web UI) enabled.
func apiConfig() *Config {
	c := validConfig()
	c.Secrets.EncryptionKey = key32('a')
	c.API.Enabled, c.API.OperatorToken = true, "0123456789abcdef"
	return c
}

func TestTransportDefaults(t *testing.T) {
	d := Default()
	assert.Equal(t, HTTP{Listen: "127.0.0.1:9464"}, d.HTTP, "no TLS, no client CA, cleartext not allowed off loopback")
	assert.False(t, d.Supabase.AllowInsecure)
	for _, k := range []string{"http.tls_cert_file", "http.tls_key_file", "http.tls_client_ca_file", "http.allow_insecure", "supabase.allow_insecure"} {
		assert.Contains(t, Keys(), k)
	}
	assert.Equal(t, "MESHHOOK_ALERTS_HTTP_TLS_CLIENT_CA_FILE", EnvName("http.tls_client_ca_file"))
}

func TestIsLoopbackHost(t *testing.T) {
	for _, h := range []string{"127.0.0.1", "127.1.2.3", "::1", "localhost", "LocalHost", "localhost.", "::ffff:127.0.0.1"} {
		assert.True(t, IsLoopbackHost(h), h)
	}
	for _, h := range []string{"", "0.0.0.0", "::", "10.0.0.1", "192.168.1.10", "db.example.com", "localhost.example.com", "foo.localhost", "128.0.0.1"} {
		assert.False(t, IsLoopbackHost(h), h)
	}
}

// The API, the UI and pprof carry tokens: without TLS they are refused on
// an address that is not loopback, with a message naming the keys.
func TestValidate_RefusesCleartextListener(t *testing.T) {
	const fix = "set http.tls_cert_file and http.tls_key_file to serve TLS, or http.allow_insecure: true if a TLS-terminating proxy is in front"
	for _, tc := range []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"APIAndUIOnAllInterfaces", func(c *Config) { c.HTTP.Listen = "0.0.0.0:9464" },
			`http.listen: "0.0.0.0:9464" is not a loopback address, and the HTTP API and web UI (api.enabled) would send tokens, webhook URLs and secrets over it in cleartext: ` + fix},
		{"APIOnlyNoHost", func(c *Config) { c.HTTP.Listen, c.UI.Enabled = ":9464", false },
			`http.listen: ":9464" is not a loopback address, and the HTTP API (api.enabled) would send tokens, webhook URLs and secrets over it in cleartext: ` + fix},
		{"HostName", func(c *Config) { c.HTTP.Listen = "alerts.internal:9464" },
			`http.listen: "alerts.internal:9464" is not a loopback address, and the HTTP API and web UI (api.enabled) would send tokens, webhook URLs and secrets over it in cleartext: ` + fix},
		{"PprofOnly", func(c *Config) {
			c.API.Enabled = false
			c.HTTP.Listen, c.HTTP.Pprof = "10.0.0.5:9464", true
		}, `http.listen: "10.0.0.5:9464" is not a loopback address, and the profiling endpoints (http.pprof) would send tokens, webhook URLs and secrets over it in cleartext: ` + fix},
		{"APIAndPprof", func(c *Config) { c.HTTP.Listen, c.HTTP.Pprof = "[2001:db8::1]:9464", true },
			`http.listen: "[2001:db8::1]:9464" is not a loopback address, and the HTTP API and web UI (api.enabled) and the profiling endpoints (http.pprof) would send tokens, webhook URLs and secrets over it in cleartext: ` + fix},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := apiConfig()
			tc.mutate(c)
			err := c.Validate()
			require.EqualError(t, err, tc.want)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "http.listen", fe.Field)
		})
	}
}

func TestValidate_AllowsListenerWhenSafe(t *testing.T) {
	for name, mutate := range map[string]func(c *Config){
		"LoopbackV4":      func(c *Config) { c.HTTP.Listen = "127.0.0.1:9464" },
		"LoopbackV4Other": func(c *Config) { c.HTTP.Listen = "127.0.0.2:0" },
		"LoopbackV6":      func(c *Config) { c.HTTP.Listen = "[::1]:9464" },
		"Localhost":       func(c *Config) { c.HTTP.Listen = "localhost:9464" },
		"TLS": func(c *Config) {
			c.HTTP.Listen, c.HTTP.TLSCertFile, c.HTTP.TLSKeyFile = "0.0.0.0:9464", "/etc/tls/crt", "/etc/tls/key"
		},
		"AllowInsecure": func(c *Config) { c.HTTP.Listen, c.HTTP.AllowInsecure = "0.0.0.0:9464", true },
		"HealthAndMetricsOnly": func(c *Config) {
			c.API.Enabled = false
			c.HTTP.Listen = "0.0.0.0:9464"
		},
		"ListenerOff": func(c *Config) { c.API.Enabled, c.HTTP.Listen, c.HTTP.Pprof = false, "", true },
	} {
		t.Run(name, func(t *testing.T) {
			c := apiConfig()
			mutate(c)
			require.NoError(t, c.Validate())
		})
	}
}

func TestValidate_TLSKeys(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(h *HTTP)
		want   string
	}{
		{"CertWithoutKey", func(h *HTTP) { h.TLSCertFile = "/tls.crt" }, "http.tls_key_file: required with http.tls_cert_file"},
		{"KeyWithoutCert", func(h *HTTP) { h.TLSKeyFile = "/tls.key" }, "http.tls_cert_file: required with http.tls_key_file"},
		{"ClientCAWithoutTLS", func(h *HTTP) { h.TLSClientCAFile = "/ca.pem" },
			"http.tls_client_ca_file: requires http.tls_cert_file and http.tls_key_file (client certificates are asked for over TLS only)"},
		{"TLSWithoutListener", func(h *HTTP) { h.Listen, h.TLSCertFile, h.TLSKeyFile = "", "/tls.crt", "/tls.key" },
			"http.tls_cert_file: set but http.listen is empty (the listener is off)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c.HTTP)
			require.EqualError(t, c.Validate(), tc.want)
		})
	}
	c := validConfig()
	c.HTTP.TLSCertFile, c.HTTP.TLSKeyFile, c.HTTP.TLSClientCAFile = "/tls.crt", "/tls.key", "/ca.pem"
	require.NoError(t, c.Validate())
	assert.True(t, c.HTTP.TLS())
}

// supabase.url and realtime.url carry the service-role key: plain http/ws
// only to loopback unless supabase.allow_insecure.
func TestValidate_RefusesCleartextSupabase(t *testing.T) {
	const supabaseMsg = `supabase.url: http:// to "db.example.com" would send the service-role key in cleartext: use https://, ` +
		`or set supabase.allow_insecure: true (without it plain http is allowed only to loopback hosts, 127.0.0.0/8, ::1 and localhost)`
	for _, tc := range []struct {
		name       string
		url, rtURL string // rtURL "" derives it as Load does
		rtDisabled bool
		allow      bool
		want       string // "" means valid
		wantField  string
	}{
		{name: "RemoteHTTP", url: "http://db.example.com", want: supabaseMsg, wantField: "supabase.url"},
		{name: "PrivateIP", url: "http://10.1.2.3:8000",
			want: `supabase.url: http:// to "10.1.2.3" would send the service-role key in cleartext: use https://, or set supabase.allow_insecure: true ` +
				`(without it plain http is allowed only to loopback hosts, 127.0.0.0/8, ::1 and localhost)`, wantField: "supabase.url"},
		{name: "RemoteHTTPAllowed", url: "http://db.example.com", allow: true},
		{name: "LoopbackV4", url: "http://127.0.0.1:54321"},
		{name: "LoopbackV6", url: "http://[::1]:54321"},
		{name: "Localhost", url: "http://localhost:54321"},
		{name: "HTTPS", url: "https://abc.supabase.co"},
		{name: "RemoteWS", url: "https://abc.supabase.co", rtURL: "ws://rt.example.com/socket",
			want: `realtime.url: ws:// to "rt.example.com" would send the service-role key in cleartext: use wss://, or set supabase.allow_insecure: true ` +
				`(without it plain ws is allowed only to loopback hosts, 127.0.0.0/8, ::1 and localhost)`, wantField: "realtime.url"},
		{name: "RemoteWSAllowed", url: "https://abc.supabase.co", rtURL: "ws://rt.example.com/socket", allow: true},
		{name: "RemoteWSRealtimeOff", url: "https://abc.supabase.co", rtURL: "ws://rt.example.com/socket", rtDisabled: true},
		{name: "LoopbackWS", url: "https://abc.supabase.co", rtURL: "ws://127.0.0.1:4000/socket"},
		// The derived ws:// URL is not reported a second time.
		{name: "DerivedWSOnce", url: "http://db.example.com", want: supabaseMsg, wantField: "supabase.url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			c.Supabase.URL, c.Supabase.AllowInsecure, c.Realtime.Enabled = tc.url, tc.allow, !tc.rtDisabled
			c.Realtime.URL = tc.rtURL
			if c.Realtime.URL == "" {
				var err error
				c.Realtime.URL, err = RealtimeURLFromSupabase(tc.url)
				require.NoError(t, err)
			}
			err := c.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.want)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.wantField, fe.Field)
			assert.NotContains(t, err.Error(), testKey)
		})
	}
}

// The same refusals come out of Load, so check-config reports them.
func TestLoad_CleartextRefusedFromEnvironment(t *testing.T) {
	env := []string{
		"SUPABASE_URL=http://db.example.com:8000", "SUPABASE_SERVICE_ROLE_KEY=" + testKey,
		"MESHHOOK_ALERTS_SECRETS_ENCRYPTION_KEY=" + key32('a').Value(),
		"MESHHOOK_ALERTS_API_ENABLED=true", "MESHHOOK_ALERTS_API_OPERATOR_TOKEN=0123456789abcdef",
		"MESHHOOK_ALERTS_HTTP_LISTEN=0.0.0.0:9464",
	}
	cfg, err := loadNoSearch(t, "", env...)
	require.NoError(t, err)
	err = cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `supabase.url: http:// to "db.example.com"`)
	assert.Contains(t, err.Error(), `http.listen: "0.0.0.0:9464" is not a loopback address`)

	cfg, err = loadNoSearch(t, "", append(env,
		"MESHHOOK_ALERTS_SUPABASE_ALLOW_INSECURE=true", "MESHHOOK_ALERTS_HTTP_ALLOW_INSECURE=true")...)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
}

func TestCheckFiles(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	good := ca.Issue(t, "alerts", testcert.Options{})
	files := testcert.NewFiles(t, good)
	dir := filepath.Dir(files.Cert)
	caFile := filepath.Join(dir, "ca.pem")
	testcert.WriteFile(t, caFile, ca.PEM)
	notPEM := filepath.Join(dir, "not.pem")
	testcert.WriteFile(t, notPEM, []byte("hello\n"))
	other := testcert.NewFiles(t, ca.Issue(t, "other", testcert.Options{}))
	expired := testcert.NewFiles(t, ca.Issue(t, "old", testcert.Options{
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}))
	missing := filepath.Join(dir, "missing.pem")

	check := func(cert, key, ca string) ([]string, error) {
		c := validConfig()
		c.HTTP.TLSCertFile, c.HTTP.TLSKeyFile, c.HTTP.TLSClientCAFile = cert, key, ca
		require.NoError(t, c.Validate())
		return c.CheckFiles(time.Now())
	}

	warnings, err := check(files.Cert, files.Key, caFile)
	require.NoError(t, err)
	assert.Empty(t, warnings)

	_, err = check(missing, files.Key, "")
	require.EqualError(t, err, "http.tls_cert_file: open "+missing+": no such file or directory")
	_, err = check(files.Cert, missing, "")
	require.EqualError(t, err, "http.tls_key_file: open "+missing+": no such file or directory")
	_, err = check(files.Cert, other.Key, "")
	require.EqualError(t, err, "http.tls_cert_file: cannot be used with http.tls_key_file: tls: private key does not match public key")
	_, err = check(notPEM, files.Key, "")
	require.ErrorContains(t, err, "http.tls_cert_file: cannot be used with http.tls_key_file: tls: failed to find any PEM data in certificate input")
	_, err = check(files.Cert, files.Key, notPEM)
	require.EqualError(t, err, "http.tls_client_ca_file: no PEM certificate in "+notPEM)
	_, err = check(files.Cert, files.Key, missing)
	require.EqualError(t, err, "http.tls_client_ca_file: open "+missing+": no such file or directory")

	warnings, err = check(expired.Cert, expired.Key, "")
	require.NoError(t, err, "an expired certificate is served (a renewal may follow), with a warning")
	require.Len(t, warnings, 1)
	assert.True(t, strings.HasPrefix(warnings[0], "http.tls_cert_file: the certificate expired at "), warnings[0])

	// Without TLS no file is read.
	c := validConfig()
	warnings, err = c.CheckFiles(time.Now())
	require.NoError(t, err)
	assert.Empty(t, warnings)
}
