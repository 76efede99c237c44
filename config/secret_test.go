package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const clearText = "s3cr3t-value"

func TestSecret_NeverPrints(t *testing.T) {
	s := Secret(clearText)
	require.Equal(t, clearText, s.Value())
	require.True(t, s.IsSet())

	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-4v"} {
		out := fmt.Sprintf(format, s)
		require.NotContains(t, out, clearText, format)
		require.Contains(t, out, Redacted, format)
	}
	require.Equal(t, `"[redacted]"`, fmt.Sprintf("%#v", s))
	require.Equal(t, Redacted, fmt.Sprint(s))

	j, err := json.Marshal(struct{ K Secret }{s})
	require.NoError(t, err)
	require.JSONEq(t, `{"K":"[redacted]"}`, string(j))

	y, err := yaml.Marshal(map[string]Secret{"k": s})
	require.NoError(t, err)
	require.Equal(t, "k: '[redacted]'\n", string(y))

	// In a containing struct, printed with every verb.
	sup := Supabase{URL: "https://x.example.com", ServiceRoleKey: s}
	for _, format := range []string{"%v", "%+v", "%#v"} {
		require.NotContains(t, fmt.Sprintf(format, sup), clearText, format)
	}
}

func TestSecret_Empty(t *testing.T) {
	var s Secret
	require.False(t, s.IsSet())
	require.Equal(t, "", s.String())
	require.Equal(t, "", fmt.Sprint(s))
	require.Equal(t, `""`, fmt.Sprintf("%#v", s))
}

func TestConfig_StringAndRedacted(t *testing.T) {
	c := validConfig()
	c.Supabase.ServiceRoleKey = clearText
	c.Secrets.EncryptionKey = clearText + "-enc"
	c.Secrets.PreviousKeys = []Secret{clearText + "-old"}
	c.API.OperatorToken = clearText + "-op"
	c.API.JWTSecret = clearText + "-jwt"

	out := c.String()
	require.NotContains(t, out, clearText)
	require.Contains(t, out, "service_role_key: '[redacted]'")
	require.Contains(t, out, "previous_keys: ['[redacted]']")
	require.Contains(t, out, "url: https://abc.supabase.co")
	require.Contains(t, out, "heartbeat_interval: 25s")
	require.Contains(t, out, "succeeded: [succeeded]")
	// Sections appear in declaration order.
	require.Less(t, strings.Index(out, "supabase:"), strings.Index(out, "realtime:"))
	require.Less(t, strings.Index(out, "sender:"), strings.Index(out, "log:"))
	require.NotContains(t, fmt.Sprintf("%v %+v %#v", c, *c, *c), clearText)

	r := c.Redacted()
	require.Equal(t, Redacted, r["supabase"].(map[string]any)["service_role_key"])
	require.Equal(t, "https://abc.supabase.co", r["supabase"].(map[string]any)["url"])
	require.Equal(t, []string{Redacted}, r["secrets"].(map[string]any)["previous_keys"])
	require.Equal(t, Redacted, r["api"].(map[string]any)["operator_token"])
	require.Equal(t, Redacted, r["api"].(map[string]any)["jwt_secret"])
	require.Equal(t, "5m0s", r["alerts"].(map[string]any)["resync_interval"])
	require.Equal(t, 16, r["sender"].(map[string]any)["workers"])
	j, err := json.Marshal(r)
	require.NoError(t, err)
	require.NotContains(t, string(j), clearText)

	// Every key is present in the redacted view.
	for _, k := range Keys() {
		var m any = r
		for _, p := range strings.Split(k, ".") {
			mm, ok := m.(map[string]any)
			require.True(t, ok, k)
			m, ok = mm[p]
			require.True(t, ok, k)
		}
	}

	// The rendered YAML loads back (secrets aside) to the same config.
	path := writeFile(t, "roundtrip.yaml", strings.NewReplacer("['[redacted]']", "[]", "'[redacted]'", "''").Replace(out))
	got, err := loadNoSearch(t, path)
	require.NoError(t, err)
	want := validConfig()
	want.File = path
	want.Supabase.ServiceRoleKey = ""
	require.Equal(t, want, got)
}
