package standin

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestStandInServesRESTAndRealtime(t *testing.T) {
	db := pgtest.Shared(t).NewDatabase(t)
	var served atomic.Int64
	wrap := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served.Add(1)
			h.ServeHTTP(w, r)
		})
	}
	si, err := Start(context.Background(), Options{DatabaseURL: db.URL, Wrap: wrap})
	require.NoError(t, err)
	defer func() { require.NoError(t, si.Close()) }()

	req, err := http.NewRequest(http.MethodGet, si.URL+"/rest/v1/alert_configs?select=id", nil)
	require.NoError(t, err)
	req.Header.Set("apikey", si.ServiceRoleKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.JSONEq(t, "[]", string(body))

	// Without an apikey PostgREST-on-Supabase refuses.
	resp, err = http.Get(si.URL + "/rest/v1/alert_configs")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// The Realtime endpoint upgrades websockets only.
	resp, err = http.Get(si.URL + "/realtime/v1/websocket?vsn=2.0.0&apikey=" + si.ServiceRoleKey)
	require.NoError(t, err)
	resp.Body.Close()
	assert.GreaterOrEqual(t, resp.StatusCode, 400)

	assert.EqualValues(t, 3, served.Load(), "every request goes through Options.Wrap")
}
