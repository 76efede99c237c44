package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUIDefaults(t *testing.T) {
	d := Default()
	require.True(t, d.UI.Enabled)
	require.Equal(t, "/ui/", d.UI.Path)
	require.Contains(t, Keys(), "ui.enabled")
	require.Contains(t, Keys(), "ui.path")
	require.Equal(t, "MESHHOOK_ALERTS_UI_PATH", EnvName("ui.path"))
}

func TestValidateUIPath(t *testing.T) {
	ok := []string{"/ui/", "/console/", "/a/b-c_d.e/", "/apix/"}
	for _, p := range ok {
		c := validConfig()
		c.UI.Path = p
		require.NoError(t, c.Validate(), p)
	}
	bad := map[string]string{
		"":           `ui.path: must start and end with "/" (e.g. "/ui/"), got ""`,
		"ui/":        `ui.path: must start and end with "/" (e.g. "/ui/"), got "ui/"`,
		"/ui":        `ui.path: must start and end with "/" (e.g. "/ui/"), got "/ui"`,
		"/":          `ui.path: must not be "/" (the API and the operational endpoints live there); use e.g. "/ui/"`,
		"/a//b/":     `ui.path: must be a clean path without "//", "." or ".." segments, got "/a//b/"`,
		"/a/../b/":   `ui.path: must be a clean path without "//", "." or ".." segments, got "/a/../b/"`,
		"/a b/":      `ui.path: may hold only letters, digits, "-", "_", "." and "/", got "/a b/"`,
		"/api/":      `ui.path: must not overlap /api/, which the daemon serves itself, got "/api/"`,
		"/api/ui/":   `ui.path: must not overlap /api/, which the daemon serves itself, got "/api/ui/"`,
		"/debug/ui/": `ui.path: must not overlap /debug/, which the daemon serves itself, got "/debug/ui/"`,
		"/metrics/":  `ui.path: must not overlap /metrics, which the daemon serves itself, got "/metrics/"`,
	}
	for p, want := range bad {
		c := validConfig()
		c.UI.Path = p
		err := c.Validate()
		require.Error(t, err, p)
		require.Equal(t, want, err.Error())
		var fe *FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "ui.path", fe.Field)
	}
}

func TestValidateUIPathIgnoredWhenDisabled(t *testing.T) {
	c := validConfig()
	c.UI.Enabled = false
	c.UI.Path = "/"
	require.NoError(t, c.Validate(), "a disabled UI's path is not used")
}

func TestValidateUIPublishableKey(t *testing.T) {
	require.Equal(t, "MESHHOOK_ALERTS_UI_SUPABASE_PUBLISHABLE_KEY", EnvName("ui.supabase_publishable_key"))
	require.Empty(t, Default().UI.SupabasePublishableKey, "user sign-in is off until the operator gives the key")
	for _, k := range []string{"", "sb_publishable_abc123", roleJWT(t, "anon")} {
		c := validConfig()
		c.UI.SupabasePublishableKey = k
		require.NoError(t, c.Validate(), k)
	}
	bad := map[string]string{
		"sb_secret_abc123":          "is a secret key (sb_secret_…), which must never reach a browser",
		"sb_other_abc":              "is an sb_ key of a kind the daemon does not know",
		"plain-text":                "is neither sb_publishable_… nor a JWT",
		roleJWT(t, "service_role"):  "is the legacy service_role key, which must never reach a browser",
		roleJWT(t, "authenticated"): `is a JWT with role "authenticated", not the anon key`,
	}
	for k, want := range bad {
		c := validConfig()
		c.UI.SupabasePublishableKey = k
		err := c.Validate()
		require.Error(t, err, k)
		var fe *FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "ui.supabase_publishable_key", fe.Field)
		require.Contains(t, fe.Problem, want)
		require.Contains(t, fe.Problem, "Project Settings → API Keys")
		require.NotContains(t, err.Error(), k, "the key itself is not repeated")
	}
	// A secret key is refused even when the UI is off: it must not sit
	// where a browser key belongs.
	c := validConfig()
	c.UI.Enabled = false
	c.UI.SupabasePublishableKey = "sb_secret_abc123"
	require.Error(t, c.Validate())
}
