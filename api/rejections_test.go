package api_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshhook/meshhook-alerts/api"
)

// A call refused for its token is logged at info with the reason it was
// given (never the token), at most five lines a minute; the next line
// logged says how many refusals went unlogged meanwhile.
func TestRejectedCallsAreLoggedRateLimited(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, envOptions{mod: func(o *api.Options) { o.Logger, o.Now = zap.New(core), clock }})
	rejected := func() []observer.LoggedEntry { return logs.FilterMessage("API request rejected").All() }

	const wrong = "not-the-operator-token-0123456789"
	r := e.do(caller(wrong), http.MethodGet, "/api/alerts/config", nil)
	require.Equal(t, http.StatusUnauthorized, r.status, "%s", r.raw)
	require.Len(t, rejected(), 1)
	first := rejected()[0]
	assert.Equal(t, zapcore.InfoLevel, first.Level)
	f := first.ContextMap()
	assert.Equal(t, int64(http.StatusUnauthorized), f["status"])
	assert.Equal(t, r.str("error", "code"), f["code"])
	assert.Equal(t, r.str("error", "message"), f["reason"])
	assert.Equal(t, "/api/alerts/config", f["path"])
	assert.NotEmpty(t, f["remote_addr"])
	assert.NotContains(t, f, "suppressed")
	r = e.do(asNobody, http.MethodGet, "/api/alerts/config", nil)
	require.Equal(t, http.StatusUnauthorized, r.status)

	for range 8 {
		e.do(caller(wrong), http.MethodGet, "/api/alerts/config", nil)
	}
	assert.Len(t, rejected(), 5, "at most five lines a minute")
	for _, l := range logs.All() {
		for k, v := range l.ContextMap() {
			assert.NotContains(t, fmt.Sprint(v), wrong, "the token is never logged (%s)", k)
		}
	}

	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	e.do(caller(wrong), http.MethodGet, "/api/alerts/config", nil)
	require.Len(t, rejected(), 6)
	assert.Equal(t, int64(5), rejected()[5].ContextMap()["suppressed"], "the refusals not logged are counted")

	// A valid token is not logged as rejected.
	r = e.do(asOperator, http.MethodGet, "/api/alerts/config", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Len(t, rejected(), 6)
}
