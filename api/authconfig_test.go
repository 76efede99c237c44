package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/api"
)

// GET /api/auth/config gives browsers, without a token, the project URL and
// publishable key the UI signs users in with; null when none is configured.
func TestAuthConfigIsPublicAndHoldsOnlyThePublishableKey(t *testing.T) {
	const url, key = "https://abcdefghijklmnop.supabase.co", "sb_publishable_test0123456789"
	e := newEnv(t, envOptions{mod: func(o *api.Options) { o.SupabaseURL, o.PublishableKey = url, key }})
	r := e.do(asNobody, http.MethodGet, "/api/auth/config", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, map[string]any{"supabase": map[string]any{"url": url, "publishable_key": key}}, r.body)
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
	assert.NotContains(t, string(r.raw), "sb_secret_")

	// A bad token changes nothing: the route does not look at it.
	r = e.do(caller("not-a-token"), http.MethodGet, "/api/auth/config", nil)
	require.Equal(t, http.StatusOK, r.status)

	// Without a publishable key, users cannot sign in with a password.
	e = newEnv(t, envOptions{mod: func(o *api.Options) { o.SupabaseURL = url }})
	r = e.do(asNobody, http.MethodGet, "/api/auth/config", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, map[string]any{"supabase": nil}, r.body)
}

// A secret key is never accepted as the key browsers get.
func TestNewRefusesASecretKeyAsThePublishableKey(t *testing.T) {
	_, err := api.New(api.Options{PublishableKey: "sb_secret_abc", OperatorToken: "x"})
	require.ErrorContains(t, err, "secret key")
}
