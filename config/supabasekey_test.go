package config

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// roleJWT is a JWT with the given role, signed with some secret (the
// daemon never verifies its own key; Supabase does).
func roleJWT(t *testing.T, role string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"role": role, "iss": "supabase", "exp": 4102444800}).
		SignedString([]byte("some-secret-0123456789-0123456789"))
	require.NoError(t, err)
	return s
}

func TestSupabaseKeyKinds(t *testing.T) {
	ok := []struct {
		name, key, kind string
	}{
		{"Secret", "sb_secret_abcdefghijklmnopqrstuv", KeySecret},
		{"ServiceRoleJWT", roleJWT(t, "service_role"), KeyServiceRoleJWT},
		{"Unrecognised", "service-role-key-for-tests", KeyUnrecognised},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			c.Supabase.ServiceRoleKey = Secret(tc.key)
			require.NoError(t, c.Validate())
			assert.Equal(t, tc.kind, c.Supabase.KeyKind())
		})
	}
	refused := []struct {
		name, key, want string
	}{
		{"Publishable", "sb_publishable_abcdefghijklmnopqrstuv", "supabase.service_role_key: is a publishable key (sb_publishable_…)"},
		{"Anon", roleJWT(t, "anon"), `supabase.service_role_key: is the legacy anon key (a JWT with role "anon")`},
		{"UserToken", roleJWT(t, "authenticated"), `supabase.service_role_key: is a JWT with role "authenticated", not a service_role key`},
		{"OtherNewKey", "sb_temp_abcdefghijklmnop", "supabase.service_role_key: is an sb_ key of a kind the daemon does not know"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			c.Supabase.ServiceRoleKey = Secret(tc.key)
			err := c.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "needs the project's secret key (sb_secret_…")
			assert.NotContains(t, err.Error(), tc.key, "the key itself is never shown")
		})
	}
}

func TestLoad_SecretKeyVariable(t *testing.T) {
	cfg, err := loadNoSearch(t, "", "SUPABASE_URL=https://x.supabase.co", "SUPABASE_SECRET_KEY=sb_secret_new")
	require.NoError(t, err)
	require.Equal(t, "sb_secret_new", cfg.Supabase.ServiceRoleKey.Value())
	require.NoError(t, cfg.Validate())

	// Both set (mid-migration): the new secret key is used.
	cfg, err = loadNoSearch(t, "", "SUPABASE_URL=https://x.supabase.co",
		"SUPABASE_SERVICE_ROLE_KEY="+roleJWT(t, "service_role"), "SUPABASE_SECRET_KEY=sb_secret_new")
	require.NoError(t, err)
	require.Equal(t, "sb_secret_new", cfg.Supabase.ServiceRoleKey.Value())
}
