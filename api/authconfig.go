package api

import (
	"net/http"
)

// authConfigResponse is GET /api/auth/config: what a browser needs to sign
// a user in with Supabase Auth. Both values are public by design (the
// publishable key is meant for browsers; row-level security guards the
// data), so the route needs no token.
type authConfigResponse struct {
	// Supabase is null when the operator configured no publishable key:
	// users then cannot sign in with email and password in the UI.
	Supabase *authConfigSupabase `json:"supabase"`
}

type authConfigSupabase struct {
	URL            string `json:"url"`
	PublishableKey string `json:"publishable_key"`
}

func (a *API) getAuthConfig(w http.ResponseWriter, _ *http.Request, _ *principal) error {
	out := authConfigResponse{}
	if a.opts.PublishableKey != "" && a.opts.SupabaseURL != "" {
		out.Supabase = &authConfigSupabase{URL: a.opts.SupabaseURL, PublishableKey: a.opts.PublishableKey}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
