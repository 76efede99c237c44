package chaos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
	"github.com/meshhook/meshhook-alerts/internal/seal"
)

// envDaemon names a prebuilt daemon binary for the tests to run instead of
// building the module's (for example a candidate fix, or a release).
const envDaemon = "MESHHOOK_CHAOS_DAEMON"

// daemonBinary builds the daemon into a temporary directory of t, unless
// envDaemon names one.
func daemonBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv(envDaemon); bin != "" {
		return bin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := standin.BuildDaemon(ctx, t.TempDir())
	require.NoError(t, err)
	return bin
}

// Found by the chaos run: a daemon restarted while an alert is pending
// (left by a killed daemon between retries) fails that alert for good with
// outcome "rule_gone" if its sender leases the alert before the engine has
// loaded the rules — the sender starts at the same time as the engine
// (main.go, the actors list) and alerts.Deliveries.LeaseDue refuses every
// alert whose rule is not in the still empty cache (alerts/deliveries.go,
// the rule_gone refusal). Here the rules load is held back by REST 503s on
// alert_configs, as a slow or briefly failing PostgREST does; the rule
// exists and is enabled throughout, so the alert must be delivered.
func TestRestartedDaemonKeepsPendingAlertsWhileRulesLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := daemonBinary(t)
	db := pgtest.Shared(t).NewDatabase(t)
	si, err := standin.Start(ctx, standin.Options{DatabaseURL: db.URL})
	require.NoError(t, err)
	defer si.Close()
	rcv, err := NewReceiver(webhookSecret, 1)
	require.NoError(t, err)
	defer rcv.Close()
	proxy, err := NewProxy(si.URL)
	require.NoError(t, err)
	defer proxy.Close()

	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(t, err)
	keyring, err := seal.NewKeyring(key)
	require.NoError(t, err)
	sc, err := setupScenario(ctx, si, keyring, rcv.URL+"/hook", webhookSecret)
	require.NoError(t, err)
	d := &Daemon{Binary: bin, LogDir: t.TempDir(), Env: daemonEnv(proxy.URL, si.ServiceRoleKey, base64.StdEncoding.EncodeToString(key))}
	in := &injector{si: si, proxy: proxy, daemon: d, logf: t.Logf}
	defer d.Kill()

	// The first daemon attempts the alert, the receiver fails it, and the
	// daemon is killed while the alert waits for its retry.
	rcv.SetFaults(ReceiverFaults{ServerError: 1})
	require.NoError(t, d.Start())
	in.waitSubscribed(ctx, 0, "start-up")
	var runID string
	require.NoError(t, si.Pool.QueryRow(ctx, `insert into workflow_runs (project_id, workflow_id, status, finished_at)
		values ($1, $2, 'failed', now()) returning id`, sc.project, sc.workflows["reports/v1"]).Scan(&runID))
	status := func() (string, string) {
		var st, reason string
		err := si.Pool.QueryRow(ctx, `select status, coalesce(outcome_reason, '') from alert_logs where run_id = $1`, runID).
			Scan(&st, &reason)
		if err != nil {
			return "", err.Error()
		}
		return st, reason
	}
	// The receiver fails every attempt, so once a failed attempt is
	// recorded the alert waits for a retry (pending or, between leases,
	// delivering) until the kill: wait for the durable record, not for a
	// status that a busy machine may let pass between two polls.
	failedAttempts := func() int {
		var n int
		if err := si.Pool.QueryRow(ctx, `select count(*) from alert_attempts a join alert_logs l on l.id = a.alert_id
			where l.run_id = $1 and a.outcome <> 'succeeded'`, runID).Scan(&n); err != nil {
			return 0
		}
		return n
	}
	require.Eventually(t, func() bool { return failedAttempts() > 0 && rcv.Stats().ServerErrors > 0 },
		60*time.Second, 20*time.Millisecond, "the first attempt failed and was recorded")
	st, _ := status()
	require.NotEqual(t, "succeeded", st, "the receiver refuses every attempt")
	d.Kill()

	// The second daemon starts while alert_configs cannot be read for a while.
	rcv.SetFaults(ReceiverFaults{})
	proxy.FailPath("/rest/v1/alert_configs")
	require.NoError(t, d.Start())
	time.Sleep(3 * time.Second)
	proxy.FailPath("")
	in.waitSubscribed(ctx, 0, "start-up")
	require.Eventually(t, func() bool {
		st, _ := status()
		return st == "succeeded" || st == "failed"
	}, 20*time.Second, 20*time.Millisecond)
	st, reason := status()
	require.Equal(t, "succeeded", st, "the pending alert of an existing, enabled rule is delivered after the restart (outcome %q)", reason)
}
