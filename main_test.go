package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

func TestMain(m *testing.M) {
	if os.Getenv(envTestDaemon) == "1" {
		// A child daemon for the kill test (see startChildDaemon).
		os.Exit(cli(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
	}
	pgtest.Main(m)
}

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// testEncryptionKey is secrets.encryption_key in tests (base64 of 32 bytes).
var testEncryptionKey = base64.StdEncoding.EncodeToString([]byte("meshhook-alerts test key 32 byte"))

// sealed seals v with testEncryptionKey, as `meshhook-alerts seal` does.
func sealed(t *testing.T, v string) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(testEncryptionKey)
	require.NoError(t, err)
	k, err := seal.NewKeyring(key)
	require.NoError(t, err)
	out, err := k.Seal(v)
	require.NoError(t, err)
	return out
}

// daemonEnv is the environment the daemon runs with against a stand-in.
// The local receivers are reached through the SSRF allowlist, and rules'
// secrets are sealed with testEncryptionKey.
func daemonEnv(si *standin.StandIn) []string {
	return []string{
		"MESHHOOK_ALERTS_SUPABASE_URL=" + si.URL,
		"MESHHOOK_ALERTS_SUPABASE_SERVICE_ROLE_KEY=" + si.ServiceRoleKey,
		"MESHHOOK_ALERTS_SENDER_ALLOW_INSECURE_HTTP=true",
		"MESHHOOK_ALERTS_SENDER_ALLOWED_NETWORKS=127.0.0.0/8",
		"MESHHOOK_ALERTS_SENDER_POLL_INTERVAL=100ms",
		"MESHHOOK_ALERTS_SECRETS_ENCRYPTION_KEY=" + testEncryptionKey,
		"MESHHOOK_ALERTS_HTTP_LISTEN=127.0.0.1:0",
		"MESHHOOK_ALERTS_LOG_LEVEL=debug",
	}
}

type e2e struct {
	si      *standin.StandIn
	rcv     *sendertest.Receiver
	project string
	wfV1    string
	wfV2    string
	stop    func() int
	logs    *syncBuffer
}

// startE2E runs a stand-in with a MeshHook project (workflow "billing" in
// two versions) and a rule alerting its failures, and the daemon against it.
func startE2E(t *testing.T) *e2e {
	t.Helper()
	e := newE2EStack(t)
	_, err := e.si.Pool.Exec(context.Background(), `insert into alert_configs (project_id, workflow_slug, name, events, webhook_url, signing_secrets)
		values ($1, 'billing', 'billing failures', '{failed}', $2, array[$3])`, e.project,
		sealed(t, e.rcv.URL+"/hook/{{.Workflow.Slug}}"), sealed(t, testSecret))
	require.NoError(t, err)
	d := e.startDaemon(t)
	e.stop, e.logs = d.stop, d.logs
	require.Eventually(t, func() bool { return len(e.si.Realtime.SubscribedTopics()) == 2 }, 30*time.Second, 20*time.Millisecond,
		"the daemon subscribes to runs and alert_configs")
	return e
}

// newE2EStack starts a stand-in on a fresh database (after running setup
// SQL statements, if any), a verifying receiver, and a MeshHook project with
// workflow "billing" in two versions. No rule, no daemon.
func newE2EStack(t *testing.T, setup ...string) *e2e {
	t.Helper()
	return newE2EStackWith(t, standin.Options{}, setup...)
}

// newE2EStackWith is newE2EStack with the stand-in tuned by opts (its
// Realtime limits, its key lifetimes); the database is the test's own.
func newE2EStackWith(t *testing.T, opts standin.Options, setup ...string) *e2e {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Shared(t).NewDatabase(t)
	for _, q := range setup {
		_, err := db.Pool.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	opts.DatabaseURL = db.URL
	si, err := standin.Start(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = si.Close() })
	rcv, err := sendertest.NewReceiver(testSecret)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rcv.Close() })

	e := &e2e{si: si, rcv: rcv}
	require.NoError(t, si.Pool.QueryRow(ctx, `insert into projects (owner, name) values (gen_random_uuid(), 'p') returning id`).Scan(&e.project))
	require.NoError(t, si.Pool.QueryRow(ctx, `insert into workflow_definitions (project_id, slug, version, definition, name)
		values ($1, 'billing', 1, '{}', 'Billing') returning id`, e.project).Scan(&e.wfV1))
	require.NoError(t, si.Pool.QueryRow(ctx, `insert into workflow_definitions (project_id, slug, version, definition, name)
		values ($1, 'billing', 2, '{}', 'Billing') returning id`, e.project).Scan(&e.wfV2))
	return e
}

// daemonRun is one daemon process (run in-process by cli).
type daemonRun struct {
	logs *syncBuffer
	stop func() int // stops the daemon and returns its exit code
}

// startDaemon runs the daemon against the stack with daemonEnv plus env
// (later entries win). It is stopped at test cleanup if still running.
func (e *e2e) startDaemon(t *testing.T, env ...string) *daemonRun {
	t.Helper()
	dctx, cancel := context.WithCancel(context.Background())
	d := &daemonRun{logs: &syncBuffer{}}
	code := make(chan int, 1)
	go func() { code <- cli(dctx, []string{"run"}, append(daemonEnv(e.si), env...), d.logs, d.logs) }()
	var once sync.Once
	result := -1
	d.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case result = <-code:
			case <-time.After(30 * time.Second):
				t.Errorf("daemon did not stop; output:\n%s", d.logs.String())
			}
		})
		return result
	}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.logs.String())
		}
	})
	return d
}

func TestEndToEndFailedRunSendsOneVerifiedAlert(t *testing.T) {
	e := startE2E(t)
	ctx := context.Background()

	var runID string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `insert into workflow_runs (project_id, workflow_id, status) values ($1, $2, 'running') returning id`,
		e.project, e.wfV2).Scan(&runID))
	_, err := e.si.Pool.Exec(ctx, `update workflow_runs set status = 'failed', finished_at = now() where id = $1`, runID)
	require.NoError(t, err)
	// The same terminal state written again must not alert again.
	_, err = e.si.Pool.Exec(ctx, `update workflow_runs set finished_at = now() where id = $1`, runID)
	require.NoError(t, err)

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got, err := e.rcv.Wait(wctx, 1)
	require.NoError(t, err)
	d := got[0]
	require.NoError(t, d.VerifyErr, "the official Standard Webhooks verifier accepts the signature")
	assert.Equal(t, "/hook/billing", d.Path, "the URL template rendered the workflow slug")
	assert.Contains(t, string(d.Body), `"type":"workflow_run.failed"`)
	assert.Contains(t, string(d.Body), runID)

	// The attempt and outcome are recorded.
	var status, webhookID string
	var attempts, code int
	require.Eventually(t, func() bool {
		err := e.si.Pool.QueryRow(ctx, `select l.status, l.attempts, l.webhook_id, a.status_code
			from alert_logs l join alert_attempts a on a.alert_id = l.id where l.run_id = $1`, runID).
			Scan(&status, &attempts, &webhookID, &code)
		return err == nil && status == "succeeded"
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, 1, attempts)
	assert.Equal(t, 204, code)
	assert.Equal(t, d.ID, webhookID)

	// The operational endpoints report readiness and the Realtime metrics.
	addr := regexp.MustCompile(`"msg":"operational endpoints listening","addr":"([^"]+)"`).FindStringSubmatch(e.logs.String())
	require.Len(t, addr, 2, "the daemon logs where /readyz is served")
	resp, err := http.Get("http://" + addr[1] + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = http.Get("http://" + addr[1] + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(metrics), `meshhook_alerts_realtime_channel_subscribed{channel="runs"} 1`)
	assert.Contains(t, string(metrics), `meshhook_alerts_engine_alerts_claimed_total{event="failed"} 1`)
	assert.Contains(t, string(metrics), `meshhook_alerts_sender_attempts_total{reason="ok"} 1`)
	assert.Contains(t, string(metrics), `meshhook_alerts_dispatch_attempts_total{event="failed",reason="ok"} 1`)
	assert.Contains(t, string(metrics), `meshhook_alerts_dispatch_commit_to_response_seconds_count 1`)
	assert.Regexp(t, `(?m)^meshhook_alerts_alerts_pending \d+$`, string(metrics), "the pending backlog is counted at start")

	// A catch-up replay (forced by a new subscription) does not alert again.
	e.si.Realtime.ResendSubscribed("realtime:runs")
	time.Sleep(time.Second)
	assert.Len(t, e.rcv.Deliveries(), 1, "exactly one alert per (rule, run, event)")
	assert.Equal(t, exitOK, e.stop())
}

func TestBadConfigurationExitsWithTheFieldNamed(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	cases := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"missing url and key", []string{"run"}, nil, "supabase.url"},
		{"missing key", []string{"run"}, []string{"SUPABASE_URL=https://x.supabase.co"}, "supabase.service_role_key"},
		{"malformed yaml", []string{"--config", write("bad.yaml", "supabase: [url\n"), "run"}, nil, "bad.yaml"},
		{"unknown key", []string{"--config", write("unknown.yaml", "sender:\n  wrokers: 3\n"), "run"}, nil, "wrokers"},
		{"bad value", []string{"run"}, []string{"SUPABASE_URL=https://x.supabase.co", "SUPABASE_SERVICE_ROLE_KEY=k", "MESHHOOK_ALERTS_SENDER_WORKERS=0"}, "sender.workers"},
		{"unknown command", []string{"frobnicate"}, nil, "unknown command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := cli(context.Background(), c.args, c.env, &out, &errOut)
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, errOut.String(), c.want)
		})
	}
}

func TestCheckConfigAndVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	env := []string{"SUPABASE_URL=https://x.supabase.co", "SUPABASE_SERVICE_ROLE_KEY=k"}
	require.Equal(t, exitOK, cli(context.Background(), []string{"check-config"}, env, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "configuration OK")
	out.Reset()
	require.Equal(t, exitOK, cli(context.Background(), []string{"version"}, nil, &out, &errOut))
	assert.Contains(t, out.String(), "meshhook-alerts")
}

// syncBuffer is a bytes.Buffer safe for the daemon's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
