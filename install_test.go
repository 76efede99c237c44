package main

import (
	"os"
	"reflect"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/config"
)

// The env file scripts/install.sh installs names every secret the
// configuration has, so that an operator filling it in misses none (the
// sealing key was missing once). .ci/check-install checks the install
// itself: files, modes and systemd-analyze verify.
func TestEnvTemplateNamesEverySecret(t *testing.T) {
	raw, err := os.ReadFile("scripts/meshhook-alerts.env")
	require.NoError(t, err)
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+)=(.*)$`).FindAllStringSubmatch(string(raw), -1) {
		names[m[1]] = true
		assert.Empty(t, m[2], "the template carries no value: %s", m[0])
	}
	secrets := secretKeys(reflect.TypeFor[config.Config](), "")
	require.Contains(t, secrets, "secrets.encryption_key")
	for _, key := range secrets {
		name := config.EnvName(key)
		if key == "supabase.service_role_key" {
			name = "SUPABASE_SERVICE_ROLE_KEY" // MeshHook's own spelling, which the loader accepts
		}
		assert.True(t, names[name], "scripts/meshhook-alerts.env lacks %s (%s)", name, key)
	}
	assert.True(t, names["SUPABASE_URL"], "scripts/meshhook-alerts.env lacks SUPABASE_URL")

	unit, err := os.ReadFile("scripts/meshhook-alerts.service")
	require.NoError(t, err)
	assert.Contains(t, string(unit), "EnvironmentFile=/etc/meshhook-alerts/env")
}

// secretKeys lists the dotted keys of t's config.Secret fields.
func secretKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		switch {
		case f.Type == reflect.TypeFor[config.Secret](), f.Type == reflect.TypeFor[[]config.Secret]():
			out = append(out, key)
		case f.Type.Kind() == reflect.Struct:
			out = append(out, secretKeys(f.Type, key)...)
		}
	}
	return out
}
