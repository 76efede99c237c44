// Command demo runs meshhook-alerts end to end on this machine: a throwaway
// PostgreSQL cluster, the local Supabase stand-in, a webhook receiver that
// verifies signatures with the official Standard Webhooks verifier, and the
// real daemon binary. It drives a few workflow runs and shows the alerts
// arriving and the alert_logs rows; the daemon's own log goes to a file
// whose path it prints. Run it with scripts/demo.sh.
//
// With -keep (scripts/demo.sh --keep) it tells no story: it runs the
// daemon with its HTTP API and web UI, seeds two projects with workflows
// and three rules (two send to a receiver that always answers, one to a
// receiver that fails now and then), prints the UI's URL and how to sign in
// (a Supabase user's email and password at the stand-in's Auth, or the
// operator token), and starts a few workflow runs every few seconds until
// it is stopped.
//
// Ctrl-C or SIGTERM stops it (exit status 130 or 143) and a closed output
// (`scripts/demo.sh | head`) stops it quietly (exit status 0); whatever
// stops it, the daemon, the stand-in and PostgreSQL are stopped and the
// temporary directory removed. Only the daemon's log file is kept.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

func main() {
	// The stand-in's Realtime limits (e.g. -realtime-max-events-per-second
	// 100 for a Free project's quota): the demo's alerts arrive all the
	// same, the ones Realtime skips through reconciliation.
	var opts standin.Options
	if err := standin.RealtimeLimitFlags(flag.CommandLine, &opts.Realtime); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}
	var ko keepOptions
	keep := flag.Bool("keep", false, "keep running for the web UI: seeded projects, workflows and rules, runs every few seconds, until Ctrl-C")
	flag.StringVar(&ko.listen, "listen", "127.0.0.1:0", "with -keep: the daemon's HTTP address (API and web UI); port 0 picks a free one")
	flag.DurationVar(&ko.interval, "interval", 3*time.Second, "with -keep: how often new workflow runs start")
	flag.Parse()
	opts.MeshHook = true
	run := func(ctx context.Context, start time.Time) error { return run(ctx, opts, start) }
	if *keep {
		run = func(ctx context.Context, _ time.Time) error { return runKeep(ctx, opts, ko) }
	}
	os.Exit(runDemo(run))
}

// stopped is why the demo was asked to stop: a signal.
type stopped struct{ sig os.Signal }

func (s stopped) Error() string { return "stopped by " + s.sig.String() }

// runDemo runs the demo and returns its exit status.
func runDemo(run func(ctx context.Context, start time.Time) error) int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	// SIGPIPE is caught too: with it caught, a write to a closed stdout
	// fails instead of killing the demo before it cleans up.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	go func() {
		s := <-sigs
		cancel(stopped{s})
		if s != syscall.SIGPIPE {
			fmt.Fprintf(os.Stderr, "\n==> %s: stopping the daemon, the stand-in and PostgreSQL\n", s)
		}
		// Later signals are absorbed: cleaning up is quick, and cutting it
		// short would leave PostgreSQL running.
	}()

	start := time.Now()
	err := run(ctx, start)
	var st stopped
	switch {
	case errors.As(context.Cause(ctx), &st) && st.sig == syscall.SIGPIPE:
		return 0 // nobody is reading any more
	case errors.As(context.Cause(ctx), &st) && st.sig == syscall.SIGTERM:
		fmt.Fprintln(os.Stderr, "==> stopped; nothing is left running")
		return 128 + int(syscall.SIGTERM)
	case errors.As(context.Cause(ctx), &st):
		fmt.Fprintln(os.Stderr, "==> stopped; nothing is left running")
		return 128 + int(syscall.SIGINT)
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	return 0
}

func say(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(ctx context.Context, opts standin.Options, start time.Time) error {
	st, err := startStack(ctx, opts, "REST + Realtime")
	if err != nil {
		return err
	}
	defer st.close()
	logFile, bin, si := st.log, st.bin, st.si
	say("stand-in at %s", si.URL)

	secret, err := newSecret()
	if err != nil {
		return err
	}
	encKey := make([]byte, seal.KeySize)
	if _, err := rand.Read(encKey); err != nil {
		return err
	}
	keys, err := seal.NewKeyring(encKey)
	if err != nil {
		return err
	}
	rcv, err := sendertest.NewReceiver(secret)
	if err != nil {
		return err
	}
	defer rcv.Close()
	// Each delivery is printed before it counts as arrived, so the story
	// waits for it: the next step's header never comes before it.
	arrived := make(chan struct{}, 64)
	rcv.OnDelivery(func(d sendertest.Delivery) {
		printDelivery(d)
		arrived <- struct{}{}
	})
	say("webhook receiver at %s", rcv.URL)

	ids, err := seed(ctx, si.Pool, rcv.URL, secret, keys)
	if err != nil {
		return err
	}

	say("starting the daemon; its log (JSON lines) goes to %s", logFile.Name())
	d, err := startDaemon(bin, daemonEnv(si, encKey), logFile)
	if err != nil {
		return err
	}
	defer d.stop()
	exited, daemonExited := d.exited, d.why

	if err := waitSubscribed(ctx, si, exited, daemonExited); err != nil {
		return err
	}
	say("daemon subscribed; driving workflow runs")

	want, got := 0, 0
	for _, step := range []struct {
		status, note string
		refuse       bool // the receiver answers the first delivery with 503
	}{
		{"succeeded", "a run that succeeds", false},
		{"failed", "a run that fails; the receiver is briefly down (503), so the alert is retried with the same webhook-id", true},
		{"paused", "a run that waits for manual intervention", false},
	} {
		say("%s", step.note)
		if step.refuse {
			rcv.ScriptSteps(sendertest.Step{Status: 503, Header: http.Header{"Retry-After": {"1"}}})
			want++
		}
		var runID string
		if err := si.Pool.QueryRow(ctx, `insert into workflow_runs (project_id, workflow_id, status) values ($1, $2, 'running') returning id`,
			ids.project, ids.workflowV2).Scan(&runID); err != nil {
			return err
		}
		// A moment of "running", as a real run has.
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		finished := "now()"
		if step.status == "paused" {
			finished = "null"
		}
		if _, err := si.Pool.Exec(ctx, `update workflow_runs set status = $1, finished_at = `+finished+` where id = $2`, step.status, runID); err != nil {
			return err
		}
		want++
		if err := waitArrivals(ctx, arrived, &got, want, exited, daemonExited); err != nil {
			return err
		}
	}

	latencies, err := waitRecorded(ctx, si.Pool, logFile.Name(), want)
	if err != nil {
		return err
	}
	say("alert_logs and alert_attempts (what an operator sees)")
	if err := printLogs(ctx, si.Pool, latencies); err != nil {
		return err
	}
	for _, d := range rcv.Deliveries() {
		if d.VerifyErr != nil {
			return errors.New("a delivery failed signature verification")
		}
	}
	say("done in %.1f s: %d signed deliveries (one of them a retry), every attempt logged", time.Since(start).Seconds(), len(rcv.Deliveries()))
	say("the daemon's log is kept at %s (jq . < it)", logFile.Name())
	return nil
}

// daemonEnv is the daemon's environment against the stand-in, sealing
// with encKey; extra entries are appended.
func daemonEnv(si *standin.StandIn, encKey []byte, extra ...string) []string {
	return append(append(os.Environ(),
		"MESHHOOK_ALERTS_SUPABASE_URL="+si.URL,
		"MESHHOOK_ALERTS_SUPABASE_SERVICE_ROLE_KEY="+si.ServiceRoleKey,
		"MESHHOOK_ALERTS_SENDER_ALLOW_INSECURE_HTTP=true",
		// The local receiver is a deliberate internal target: allowlisted,
		// not exempted from the SSRF guard in code.
		"MESHHOOK_ALERTS_SENDER_ALLOWED_NETWORKS=127.0.0.0/8",
		"MESHHOOK_ALERTS_SENDER_RETRY_INITIAL=1s",
		"MESHHOOK_ALERTS_SECRETS_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(encKey),
		"MESHHOOK_ALERTS_HTTP_LISTEN=127.0.0.1:0",
	), extra...)
}

// daemonProc is the daemon running as its own process.
type daemonProc struct {
	cmd     *exec.Cmd
	log     string
	exited  chan struct{} // closed when the daemon has exited, with err set
	err     error
	stopped sync.Once
}

// startDaemon starts the daemon binary with env, its output to logFile.
func startDaemon(bin string, env []string, logFile *os.File) (*daemonProc, error) {
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: a Ctrl-C at the terminal reaches the demo,
	// which stops the daemon itself, in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemonProc{cmd: cmd, log: logFile.Name(), exited: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.exited) }()
	return d, nil
}

// why says that the daemon exited; call it once exited is closed.
func (d *daemonProc) why() error {
	return fmt.Errorf("the daemon exited (%v); see %s", d.err, d.log)
}

// stop stops the daemon with SIGTERM (SIGKILL after 15 s) and waits for it.
func (d *daemonProc) stop() {
	d.stopped.Do(func() {
		select {
		case <-d.exited:
			return
		default:
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(15 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	})
}

// withProgress runs f, printing a line every 10 s while it lasts (a cold
// build compiles every dependency, which takes a minute or more).
func withProgress[T any](ctx context.Context, what string, f func() (T, error)) (T, error) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		begun := time.Now()
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				fmt.Printf("    … still %s (%.0f s)\n", what, time.Since(begun).Seconds())
			}
		}
	}()
	return f()
}

func printDelivery(d sendertest.Delivery) {
	var p struct {
		Type       string `json:"type"`
		OccurredAt string `json:"occurred_at"`
		Run        struct {
			ID string `json:"id"`
		} `json:"run"`
		Workflow struct {
			Slug string `json:"slug"`
		} `json:"workflow"`
	}
	_ = json.Unmarshal(d.Body, &p)
	verdict := "signature verified by the official Standard Webhooks verifier"
	if d.VerifyErr != nil {
		verdict = "SIGNATURE INVALID: " + d.VerifyErr.Error()
	}
	lag := ""
	if t, err := time.Parse(time.RFC3339Nano, p.OccurredAt); err == nil {
		lag = fmt.Sprintf(", %d ms after commit", d.ReceivedAt.Sub(t).Milliseconds())
	}
	fmt.Printf("    receiver ◀ %s for workflow %q run %s (webhook-id %s%s), answered %d\n      %s\n",
		p.Type, p.Workflow.Slug, short(p.Run.ID), d.ID, lag, d.Status, verdict)
}

// waitArrivals waits until n deliveries have been printed in all; *got
// counts those seen so far.
func waitArrivals(ctx context.Context, arrived <-chan struct{}, got *int, n int, exited <-chan struct{}, why func() error) error {
	deadline := time.After(30 * time.Second)
	for *got < n {
		select {
		case <-arrived:
			*got++
		case <-exited:
			return why()
		case <-deadline:
			return fmt.Errorf("only %d of %d deliveries arrived within 30 s", *got, n)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

type seeded struct{ project, workflowV2 string }

// seed creates what MeshHook would have: a project, a workflow with two
// versions, and an alert rule for the workflow (all versions) whose URL and
// signing secret are sealed, as `meshhook-alerts seal` does.
func seed(ctx context.Context, pool *pgxpool.Pool, receiverURL, secret string, keys *seal.Keyring) (seeded, error) {
	var s seeded
	err := pool.QueryRow(ctx, `insert into projects (owner, name) values (gen_random_uuid(), 'Demo project') returning id`).Scan(&s.project)
	if err != nil {
		return s, err
	}
	if _, err := pool.Exec(ctx, `insert into workflow_definitions (project_id, slug, version, definition, name)
		values ($1, 'billing-sync', 1, '{}', 'Billing sync')`, s.project); err != nil {
		return s, err
	}
	if err := pool.QueryRow(ctx, `insert into workflow_definitions (project_id, slug, version, definition, name)
		values ($1, 'billing-sync', 2, '{}', 'Billing sync') returning id`, s.project).Scan(&s.workflowV2); err != nil {
		return s, err
	}
	say("created an alert rule: workflow billing-sync (every version) → %s/alerts/{{.Workflow.Slug}}", receiverURL)
	sealedURL, err := keys.Seal(receiverURL + "/alerts/{{.Workflow.Slug}}")
	if err != nil {
		return s, err
	}
	sealedSecret, err := keys.Seal(secret)
	if err != nil {
		return s, err
	}
	say("its webhook_url and signing secret are stored sealed with key %s: %.40s…", keys.CurrentKeyID(), sealedURL)
	_, err = pool.Exec(ctx, `insert into alert_configs (project_id, workflow_slug, name, events, webhook_url, signing_secrets)
		values ($1, 'billing-sync', 'Billing sync alerts', '{succeeded,failed,canceled,paused}', $2, array[$3])`,
		s.project, sealedURL, sealedSecret)
	return s, err
}

func waitSubscribed(ctx context.Context, si *standin.StandIn, exited <-chan struct{}, why func() error) error {
	deadline := time.After(30 * time.Second)
	for {
		topics := si.Realtime.SubscribedTopics()
		if len(topics) >= 2 {
			return nil
		}
		select {
		case <-exited:
			return why()
		case <-deadline:
			return fmt.Errorf("the daemon did not subscribe within 30s (subscribed: %v)", topics)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// attemptKey names one attempt of one alert.
type attemptKey struct {
	webhookID string
	attempt   int
}

// waitRecorded waits until every one of the n attempts is recorded in
// alert_attempts, every alert is finished in alert_logs, and the daemon
// has logged every attempt; it returns each attempt's latency as the
// sender measured it (alert_attempts keeps whole milliseconds, and an
// attempt to a local receiver takes less than one).
func waitRecorded(ctx context.Context, pool *pgxpool.Pool, logPath string, n int) (map[attemptKey]float64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var attempts, open int
		err := pool.QueryRow(ctx, `select (select count(*) from alert_attempts),
			(select count(*) from alert_logs where status not in ('succeeded', 'failed'))`).Scan(&attempts, &open)
		if err != nil {
			return nil, err
		}
		latencies, err := attemptLatencies(logPath)
		if err != nil {
			return nil, err
		}
		if attempts >= n && open == 0 && len(latencies) >= attempts {
			return latencies, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("after 30 s, %d of %d attempts recorded, %d alerts unfinished, %d attempts logged",
				attempts, n, open, len(latencies))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// attemptLatencies reads the sender's attempt lines from the daemon's log:
// their latency_ms by webhook id and attempt.
func attemptLatencies(path string) (map[attemptKey]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[attemptKey]float64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct {
			Logger    string   `json:"logger"`
			WebhookID string   `json:"webhook_id"`
			Attempt   int      `json:"attempt"`
			LatencyMS *float64 `json:"latency_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Logger != "sender" || l.WebhookID == "" || l.LatencyMS == nil {
			continue
		}
		out[attemptKey{l.WebhookID, l.Attempt}] = *l.LatencyMS
	}
	return out, sc.Err()
}

func printLogs(ctx context.Context, pool *pgxpool.Pool, latencies map[attemptKey]float64) error {
	rows, err := pool.Query(ctx, `
		select l.event, l.status, l.attempts, l.webhook_id, a.attempt, coalesce(a.status_code, 0), coalesce(a.latency_ms, 0), a.outcome
		from alert_logs l join alert_attempts a on a.alert_id = l.id
		order by l.created_at, a.attempt`)
	if err != nil {
		return err
	}
	type row struct {
		event, status, webhookID, outcome string
		attempts, attempt, code, latency  int
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.event, &r.status, &r.attempts, &r.webhookID, &r.attempt, &r.code, &r.latency, &r.outcome); err != nil {
			return err
		}
		all = append(all, r)
	}
	if err := rows.Err(); err != nil {
		return err
	}

	fmt.Printf("    alert_logs: one row per alert\n")
	fmt.Printf("      %-10s %-10s %-8s %s\n", "event", "status", "attempts", "webhook_id")
	for i, r := range all {
		if i == 0 || all[i-1].webhookID != r.webhookID {
			fmt.Printf("      %-10s %-10s %-8d %s\n", r.event, r.status, r.attempts, r.webhookID)
		}
	}
	fmt.Printf("    alert_attempts: one row per attempt\n")
	fmt.Printf("      %-10s %-7s %-5s %-9s %-9s %s\n", "event", "attempt", "http", "latency", "outcome", "result")
	for i, r := range all {
		latency := fmt.Sprintf("%d ms", r.latency)
		if ms, ok := latencies[attemptKey{r.webhookID, r.attempt}]; ok {
			latency = fmt.Sprintf("%.2f ms", ms)
		}
		result := r.status // the alert's final status, for its last attempt
		switch {
		case r.outcome == "ok":
			result = "delivered"
		case i+1 < len(all) && all[i+1].webhookID == r.webhookID:
			result = "failed; retried"
		}
		fmt.Printf("      %-10s %-7d %-5d %-9s %-9s %s\n", r.event, r.attempt, r.code, latency, r.outcome, result)
	}
	return nil
}

func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8] + "…"
	}
	return id
}
