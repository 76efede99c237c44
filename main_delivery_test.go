package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

// envTestDaemon makes the test binary run the daemon instead of the tests
// (see TestMain), so that a test can SIGKILL a real daemon process.
const envTestDaemon = "MESHHOOK_TEST_CHILD_DAEMON"

// childDaemon is a daemon in its own process.
type childDaemon struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

func startChildDaemon(t *testing.T, env []string) *childDaemon {
	t.Helper()
	cmd := exec.Command(os.Args[0], "run")
	out := &syncBuffer{}
	cmd.Env = append(append(os.Environ(), envTestDaemon+"=1"), env...)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	c := &childDaemon{cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			t.Logf("daemon (pid %d) output:\n%s", cmd.Process.Pid, out.String())
		}
	})
	return c
}

// kill ends the daemon with SIGKILL: no shutdown, no draining, no flushing.
func (c *childDaemon) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
	c.done <- nil // later kills return at once
}

// waitSubscribed waits for n Realtime subscriptions on the stand-in.
func waitSubscribed(t *testing.T, si *standin.StandIn, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return len(si.Realtime.SubscribedTopics()) >= n }, 30*time.Second, 20*time.Millisecond,
		"the daemon subscribes")
}

type attemptRow struct {
	n       int
	outcome string
	code    int
}

func attemptsOf(t *testing.T, si *standin.StandIn, alertID string) []attemptRow {
	t.Helper()
	rows, err := si.Pool.Query(context.Background(),
		`select attempt, outcome, coalesce(status_code, 0) from alert_attempts where alert_id = $1 order by attempt`, alertID)
	require.NoError(t, err)
	defer rows.Close()
	var out []attemptRow
	for rows.Next() {
		var r attemptRow
		require.NoError(t, rows.Scan(&r.n, &r.outcome, &r.code))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// A daemon is killed twice, once between retries and once in the middle of
// an attempt; each time a fresh daemon resumes from the database. The alert
// completes with exactly one successful delivery, the same webhook-id on
// every attempt, and every attempt logged (the one cut off by the kill as
// "interrupted" once its lease expired).
func TestEndToEndKillTheDaemonMidRetry(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Shared(t).NewDatabase(t)
	si, err := standin.Start(ctx, standin.Options{DatabaseURL: db.URL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = si.Close() })
	rcv, err := sendertest.NewReceiver(testSecret)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rcv.Close() })
	rcv.ScriptSteps(sendertest.Status(500), sendertest.Step{Hang: true})

	var project, wf string
	require.NoError(t, si.Pool.QueryRow(ctx, `insert into projects (owner, name) values (gen_random_uuid(), 'p') returning id`).Scan(&project))
	require.NoError(t, si.Pool.QueryRow(ctx, `insert into workflow_definitions (project_id, slug, version, definition, name)
		values ($1, 'billing', 1, '{}', 'Billing') returning id`, project).Scan(&wf))
	_, err = si.Pool.Exec(ctx, `insert into alert_configs (project_id, name, events, webhook_url, signing_secrets)
		values ($1, 'failures', '{failed}', $2, array[$3])`, project, sealed(t, rcv.URL+"/hook"), sealed(t, testSecret))
	require.NoError(t, err)

	env := append(daemonEnv(si),
		"MESHHOOK_ALERTS_SENDER_REQUEST_TIMEOUT=2s",
		"MESHHOOK_ALERTS_SENDER_LEASE=5s",
		"MESHHOOK_ALERTS_SENDER_RETRY_INITIAL=2s",
		"MESHHOOK_ALERTS_SENDER_RETRY_MAX=2s",
	)
	// The first daemon makes attempt 1 (500) and is killed while the alert
	// waits for its retry.
	a := startChildDaemon(t, env)
	waitSubscribed(t, si, 2)
	var runID string
	require.NoError(t, si.Pool.QueryRow(ctx, `insert into workflow_runs (project_id, workflow_id, status) values ($1, $2, 'failed') returning id`,
		project, wf).Scan(&runID))
	var alertID, webhookID string
	require.Eventually(t, func() bool {
		var status string
		err := si.Pool.QueryRow(ctx, `select id, webhook_id, status from alert_logs where run_id = $1`, runID).Scan(&alertID, &webhookID, &status)
		return err == nil && status == "pending" && len(attemptsOf(t, si, alertID)) == 1
	}, 30*time.Second, 20*time.Millisecond, "attempt 1 is recorded and the alert waits for its retry")
	a.kill()

	// The second daemon resumes the retry; attempt 2 hangs at the receiver
	// and the daemon is killed in the middle of it, holding the lease.
	b := startChildDaemon(t, env)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = rcv.Wait(wctx, 2)
	require.NoError(t, err, "the restarted daemon retries")
	var status string
	require.NoError(t, si.Pool.QueryRow(ctx, `select status from alert_logs where id = $1`, alertID).Scan(&status))
	assert.Equal(t, "delivering", status, "the attempt in flight holds a lease")
	b.kill()

	// The third daemon takes the alert over once the dead daemon's lease
	// expires.
	startChildDaemon(t, env)
	require.Eventually(t, func() bool {
		var st string
		err := si.Pool.QueryRow(ctx, `select status from alert_logs where id = $1`, alertID).Scan(&st)
		return err == nil && st == "succeeded"
	}, 30*time.Second, 20*time.Millisecond, "the alert completes after the restarts")

	got := rcv.Deliveries()
	require.Len(t, got, 3)
	successes := 0
	for _, d := range got {
		assert.Equal(t, webhookID, d.ID, "one webhook-id across attempts and daemons")
		assert.NoError(t, d.VerifyErr)
		if d.Status >= 200 && d.Status < 300 {
			successes++
		}
	}
	assert.Equal(t, 1, successes, "exactly one successful delivery")
	assert.Equal(t, []attemptRow{{1, "http_500", 500}, {2, "interrupted", 0}, {3, "ok", 204}}, attemptsOf(t, si, alertID),
		"every attempt is logged")
	var attempts int
	require.NoError(t, si.Pool.QueryRow(ctx, `select attempts from alert_logs where id = $1`, alertID).Scan(&attempts))
	assert.Equal(t, 3, attempts)
}

// Secrets are sealed at rest, rules storing them in clear are refused, and
// no secret, URL path or header value reaches the logs.
func TestEndToEndSecretsSealedAtRestAndAbsentFromLogs(t *testing.T) {
	const (
		pathToken   = "T0K3N-path-9f2c"
		queryToken  = "q-s3cret-77"
		headerValue = "Bearer hdr-s3cret-4242"
	)
	e := startE2E(t)
	ctx := context.Background()
	e.rcv.Script(503) // one failure (whichever alert comes first), so failure paths are logged too
	url := e.rcv.URL + "/" + pathToken + "?token=" + queryToken
	var sealedRule, plainRule string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `insert into alert_configs (project_id, name, events, webhook_url, signing_secrets, custom_headers)
		values ($1, 'sealed', '{failed}', $2, array[$3], jsonb_build_object('Authorization', $4::text)) returning id`,
		e.project, sealed(t, url), sealed(t, testSecret), sealed(t, headerValue)).Scan(&sealedRule))
	require.NoError(t, e.si.Pool.QueryRow(ctx, `insert into alert_configs (project_id, name, events, webhook_url, signing_secrets)
		values ($1, 'plain', '{failed}', $2, array[$3]) returning id`, e.project, url, testSecret).Scan(&plainRule))
	require.Eventually(t, func() bool {
		return strings.Contains(e.logs.String(), `"rule_id":"`+plainRule+`"`) && strings.Contains(e.logs.String(), "stored in plaintext")
	}, 20*time.Second, 20*time.Millisecond, "the plaintext rule is refused with its reason")
	require.Eventually(t, func() bool {
		var rejected string
		err := e.si.Pool.QueryRow(ctx, `select value->>$1 from alert_daemon_state where key = 'rejected_rules'`, plainRule).Scan(&rejected)
		return err == nil && strings.Contains(rejected, "webhook_url: stored in plaintext")
	}, 20*time.Second, 20*time.Millisecond, "the refusal is recorded where operators and the API see it")

	var runID string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `insert into workflow_runs (project_id, workflow_id, status) values ($1, $2, 'failed') returning id`,
		e.project, e.wfV1).Scan(&runID))
	// The billing rule (startE2E) and the sealed rule fire; the plain one does not.
	require.Eventually(t, func() bool {
		var n int
		_ = e.si.Pool.QueryRow(ctx, `select count(*) from alert_logs where run_id = $1 and status = 'succeeded'`, runID).Scan(&n)
		return n == 2
	}, 30*time.Second, 20*time.Millisecond)
	var sealedDeliveries int
	for _, d := range e.rcv.Deliveries() {
		if strings.Contains(d.Path, pathToken) {
			sealedDeliveries++
			assert.Equal(t, headerValue, d.Header.Get("Authorization"), "the opened header value is sent")
			assert.NoError(t, d.VerifyErr)
		}
	}
	assert.GreaterOrEqual(t, sealedDeliveries, 1)
	assert.Len(t, e.rcv.Deliveries(), 3, "two alerts, one of them retried after the 503")
	var plainAlerts int
	require.NoError(t, e.si.Pool.QueryRow(ctx, `select count(*) from alert_logs where config_id = $1`, plainRule).Scan(&plainAlerts))
	assert.Zero(t, plainAlerts, "a refused rule never fires")
	assert.Equal(t, exitOK, e.stop())

	// At rest: every secret-bearing column holds an envelope, never the value.
	var webhookURL, secrets, headers string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `select webhook_url, signing_secrets::text, custom_headers::text from alert_configs where id = $1`,
		sealedRule).Scan(&webhookURL, &secrets, &headers))
	assert.True(t, strings.HasPrefix(webhookURL, "mhsealed:v1:"))
	assert.Contains(t, secrets, "mhsealed:v1:")
	assert.Contains(t, headers, "mhsealed:v1:")
	rows, err := e.si.Pool.Query(ctx, `select target_url, coalesce(last_error, '') from alert_logs where run_id = $1`, runID)
	require.NoError(t, err)
	var stored []string
	for rows.Next() {
		var target, lastErr string
		require.NoError(t, rows.Scan(&target, &lastErr))
		assert.True(t, strings.HasPrefix(target, "mhsealed:v1:"), "claimed target URLs are sealed too")
		stored = append(stored, target, lastErr)
	}
	require.NoError(t, rows.Err())
	var attemptsText string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `select coalesce(string_agg(coalesce(error, '') || coalesce(response_excerpt, ''), ' '), '')
		from alert_attempts`).Scan(&attemptsText))
	stored = append(stored, webhookURL, secrets, headers, attemptsText)
	logs := e.logs.String()
	require.Contains(t, logs, "alert delivered")
	require.Contains(t, logs, "alert attempt failed")
	for _, leak := range []string{pathToken, queryToken, headerValue, "hdr-s3cret", testSecret, strings.TrimPrefix(testSecret, "whsec_"),
		"/hook/billing", testEncryptionKey} {
		assert.NotContains(t, logs, leak, "the logs leak %q", leak)
		for _, s := range stored {
			assert.NotContains(t, s, leak, "the database stores %q in clear", leak)
		}
	}
}

func TestSealAndVerifyCommands(t *testing.T) {
	env := []string{"MESHHOOK_ALERTS_SECRETS_ENCRYPTION_KEY=" + testEncryptionKey}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := cli(context.Background(), args, env, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, errOut := run("seal", "--value", "https://hooks.example.com/T0/B1?token=x")
	require.Equal(t, exitOK, code, errOut)
	envelope := strings.TrimSpace(out)
	assert.True(t, strings.HasPrefix(envelope, "mhsealed:v1:"))
	assert.NotContains(t, envelope, "hooks.example.com")

	dir := t.TempDir()
	pemPath := filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(pemPath, []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), 0o600))
	code, out, errOut = run("seal", "--in", pemPath)
	require.Equal(t, exitOK, code, errOut)
	assert.True(t, strings.HasPrefix(out, "mhsealed:v1:"))

	var noKey bytes.Buffer
	assert.Equal(t, exitUsage, cli(context.Background(), []string{"seal", "--value", "x"}, nil, &bytes.Buffer{}, &noKey))
	assert.Contains(t, noKey.String(), "secrets.encryption_key is not set")
	code, _, errOut = run("seal", "--value", envelope)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "already sealed")

	// verify: a raw HTTP request as captured from the wire.
	body := []byte(`{"type":"workflow_run.failed"}`)
	key, err := sender.ParseSecret(testSecret)
	require.NoError(t, err)
	now := time.Now()
	sig := sender.Sign([][]byte{key}, "msg_abc", now, body)
	request := fmt.Sprintf("POST /hook HTTP/1.1\r\nHost: receiver.example\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nwebhook-id: msg_abc\r\nwebhook-timestamp: %d\r\nwebhook-signature: %s\r\n\r\n%s",
		len(body), now.Unix(), sig, body)
	reqPath := filepath.Join(dir, "request.txt")
	require.NoError(t, os.WriteFile(reqPath, []byte(request), 0o600))
	code, out, errOut = run("verify", "--secret", testSecret, "--in", reqPath)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "OK: webhook-id msg_abc")

	// The secret from the environment, and headers given as flags.
	bodyPath := filepath.Join(dir, "body.json")
	require.NoError(t, os.WriteFile(bodyPath, body, 0o600))
	var vout, verr bytes.Buffer
	code = cli(context.Background(), []string{"verify", "--id", "msg_abc", "--timestamp", fmt.Sprint(now.Unix()), "--signature", sig, "--in", bodyPath},
		[]string{envWebhookSecret + "=" + testSecret}, &vout, &verr)
	require.Equal(t, exitOK, code, verr.String())

	// Forged, stale and wrong-secret requests fail with exit status 1.
	tampered := filepath.Join(dir, "tampered.txt")
	require.NoError(t, os.WriteFile(tampered, []byte(strings.Replace(request, "failed", "passed", 1)), 0o600))
	code, _, errOut = run("verify", "--secret", testSecret, "--in", tampered)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut, "INVALID")
	other, _ := sender.GenerateSecret()
	code, _, _ = run("verify", "--secret", other, "--in", reqPath)
	assert.Equal(t, exitFailed, code)
	code, _, errOut = run("verify", "--secret", testSecret, "--tolerance", "1ns", "--in", reqPath)
	if time.Now().Unix() > now.Unix() {
		assert.Equal(t, exitFailed, code)
		assert.Contains(t, errOut, "too old")
	}
	// Usage errors exit with 2.
	for _, args := range [][]string{
		{"verify", "--in", reqPath},
		{"verify", "--secret", "not-a-secret", "--in", reqPath},
		{"verify", "--secret", testSecret, "--id", "x", "--in", reqPath},
		{"verify", "--secret", testSecret, "--in", bodyPath},
	} {
		code, _, _ = run(args...)
		assert.Equal(t, exitUsage, code, "%v", args)
	}
}

// A rule's own CA and client certificate (mTLS) come from its tls_*
// columns, the private key stored sealed.
func TestEndToEndMutualTLSRule(t *testing.T) {
	e := startE2E(t)
	ctx := context.Background()
	serverCA, err := sendertest.NewCA("server CA")
	require.NoError(t, err)
	clientCA, err := sendertest.NewCA("client CA")
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.Cert)
	srv, err := sendertest.NewTLSServer(serverCA, &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	require.NoError(t, err)
	defer srv.Close()
	certPEM, keyPEM, err := clientCA.Issue("meshhook-alerts", false)
	require.NoError(t, err)

	var ruleID string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `insert into alert_configs (project_id, name, events, webhook_url, signing_secrets,
		tls_ca_pem, tls_client_cert_pem, tls_client_key_pem) values ($1, 'mtls', '{failed}', $2, array[$3], $4, $5, $6) returning id`,
		e.project, sealed(t, srv.URL+"/mtls"), sealed(t, testSecret), serverCA.PEM, certPEM, sealed(t, keyPEM)).Scan(&ruleID))
	require.Eventually(t, func() bool { return strings.Contains(e.logs.String(), `"alert rule updated","rule_id":"`+ruleID) },
		20*time.Second, 20*time.Millisecond, "the rule is loaded")

	var runID string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `insert into workflow_runs (project_id, workflow_id, status) values ($1, $2, 'failed') returning id`,
		e.project, e.wfV1).Scan(&runID))
	var status, outcome string
	require.Eventually(t, func() bool {
		err := e.si.Pool.QueryRow(ctx, `select l.status, a.outcome from alert_logs l join alert_attempts a on a.alert_id = l.id
			where l.config_id = $1 and l.run_id = $2 order by a.attempt desc limit 1`, ruleID, runID).Scan(&status, &outcome)
		return err == nil && status != "delivering"
	}, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, "succeeded", status, "outcome %s", outcome)
	assert.Equal(t, exitOK, e.stop())
}
