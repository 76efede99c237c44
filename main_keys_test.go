package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/authtest"
	"github.com/meshhook/meshhook-alerts/internal/pgtest"
)

// check-config names the kind of key it was given and refuses the keys
// meant for browsers, without ever printing the key.
func TestCheckConfigTellsKeyKindsApart(t *testing.T) {
	run := func(env ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := cli(context.Background(), []string{"check-config"}, append([]string{"SUPABASE_URL=https://x.supabase.co"}, env...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	for _, tc := range []struct {
		name, env, kind string
	}{
		{"SecretKey", "SUPABASE_SECRET_KEY=" + authtest.DefaultSecretKey, "supabase key: secret key (sb_secret_…)"},
		{"ServiceRoleJWT", "SUPABASE_SERVICE_ROLE_KEY=" + pgtest.ServiceRoleKey(), "supabase key: legacy service_role key (JWT)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(tc.env)
			require.Equal(t, exitOK, code, errOut)
			assert.Contains(t, out, tc.kind)
		})
	}
	for _, tc := range []struct {
		name, key, want string
	}{
		{"PublishableKey", authtest.DefaultPublishableKey, "is a publishable key (sb_publishable_…)"},
		{"AnonKey", pgtest.AnonKey(), `is the legacy anon key (a JWT with role "anon")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run("SUPABASE_SECRET_KEY=" + tc.key)
			require.Equal(t, exitUsage, code)
			assert.Contains(t, errOut, tc.want)
			assert.NotContains(t, errOut+out, tc.key)
		})
	}
}
