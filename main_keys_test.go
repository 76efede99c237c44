package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/authtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
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

// The daemon runs with a new secret key alone, for REST and for Realtime on
// both protocol versions: the gateway mints a JWT for the socket, and when
// that JWT expires Realtime shuts the channels down; the daemon then opens
// a new socket (rejoining on the old one would meet the same expired
// token) and keeps alerting from Realtime.
func TestEndToEndWithASecretKey(t *testing.T) {
	for _, vsn := range []string{"1.0.0", "2.0.0"} {
		t.Run(vsn, func(t *testing.T) {
			ctx := context.Background()
			const socketTTL = 3 * time.Second
			e := newE2EStackWith(t, standin.Options{RealtimeKeyTTL: socketTTL})
			si, rcv := e.si, e.rcv
			e.insertRule(t, rule{project: e.project, slug: "billing", events: "{failed}", url: rcv.URL + "/hook"})

			// The secret key alone, from SUPABASE_SECRET_KEY; reconciliation
			// is slowed down so that alerts after start come from Realtime.
			d := e.startDaemon(t, "MESHHOOK_ALERTS_SUPABASE_SERVICE_ROLE_KEY=", "SUPABASE_SECRET_KEY="+si.SecretKey,
				"MESHHOOK_ALERTS_REALTIME_VSN="+vsn, "MESHHOOK_ALERTS_ALERTS_RECONCILE_INTERVAL=1h")
			waitSubscribed(t, si, 2)
			tok, ok := si.Realtime.LastAccessToken("realtime:runs")
			if ok {
				assert.Equal(t, si.SecretKey, tok, "the join's access_token is the key itself, as supabase-js sends it")
			}

			failRun := func() string {
				var runID string
				require.NoError(t, si.Pool.QueryRow(ctx, `insert into workflow_runs (project_id, workflow_id, status)
					values ($1, $2, 'running') returning id`, e.project, e.wfV1).Scan(&runID))
				_, err := si.Pool.Exec(ctx, `update workflow_runs set status = 'failed', finished_at = now() where id = $1`, runID)
				require.NoError(t, err)
				return runID
			}
			first := failRun()
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			got, err := rcv.Wait(wctx, 1)
			require.NoError(t, err)
			require.NoError(t, got[0].VerifyErr)
			assert.Contains(t, string(got[0].Body), first)

			// The socket's JWT expires: the daemon reconnects for a fresh one
			// and subscribes again.
			require.Eventually(t, func() bool {
				return strings.Contains(d.logs.String(), `"reason":"socket_token_expired"`)
			}, 30*time.Second, 50*time.Millisecond, "the session ends when the socket's token expires")
			waitSubscribed(t, si, 2)
			second := failRun()
			got, err = rcv.Wait(wctx, 2)
			require.NoError(t, err)
			assert.Contains(t, string(got[1].Body), second)
			assert.NotContains(t, d.logs.String(), si.SecretKey, "the key is never logged")
			assert.Equal(t, exitOK, d.stop())
		})
	}
}

// signIn seeds the stand-in's Auth with a user of this id and signs them
// in with email and password, returning their access token.
func (e *e2e) signIn(t *testing.T, userID string) string {
	t.Helper()
	email := userID + "@example.com"
	e.si.Auth.AddUser(authtest.User{ID: userID, Email: email, Password: "password-of-" + userID})
	s, err := e.si.Auth.SignIn(email, "password-of-"+userID)
	require.NoError(t, err)
	return s.AccessToken
}
