package supabase

import (
	"context"
	"net/http"
)

// WithUserToken returns a context whose store requests run as the user who
// holds token, a Supabase access token (JWT): it is sent as
// "Authorization: Bearer <token>" while apikey stays the store's key, so
// PostgREST runs the request as that user and row-level security decides
// which rows it sees and may change. Rows the user may not see read as
// absent (IsNotFound). An empty token returns ctx unchanged (the store's own
// key, which bypasses RLS when it is the service-role key).
func WithUserToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return withHeaders(ctx, http.Header{"Authorization": {"Bearer " + token}})
}
