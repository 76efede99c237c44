// Command demo runs meshhook-alerts end to end on this machine: a throwaway
// PostgreSQL cluster, the local Supabase stand-in, a webhook receiver that
// verifies signatures with the official Standard Webhooks verifier, and the
// real daemon binary. It drives a few workflow runs and shows the alerts
// arriving and the alert_logs rows. Run it with scripts/demo.sh.
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
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/internal/standin"
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
	flag.Parse()
	opts.MeshHook = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(ctx context.Context, opts standin.Options) error {
	tmp, err := os.MkdirTemp("", "meshhook-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	say("building meshhook-alerts")
	bin, err := standin.BuildDaemon(ctx, tmp)
	if err != nil {
		return err
	}

	say("starting PostgreSQL and the local Supabase stand-in (REST + Realtime)")
	si, err := standin.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer si.Close()
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
	rcv.OnDelivery(func(d sendertest.Delivery) {
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
	})
	say("webhook receiver at %s", rcv.URL)

	ids, err := seed(ctx, si.Pool, rcv.URL, secret, keys)
	if err != nil {
		return err
	}

	say("starting the daemon")
	daemon := exec.Command(bin)
	daemon.Env = append(os.Environ(),
		"MESHHOOK_ALERTS_SUPABASE_URL="+si.URL,
		"MESHHOOK_ALERTS_SUPABASE_SERVICE_ROLE_KEY="+si.ServiceRoleKey,
		"MESHHOOK_ALERTS_SENDER_ALLOW_INSECURE_HTTP=true",
		// The local receiver is a deliberate internal target: allowlisted,
		// not exempted from the SSRF guard in code.
		"MESHHOOK_ALERTS_SENDER_ALLOWED_NETWORKS=127.0.0.0/8",
		"MESHHOOK_ALERTS_SENDER_RETRY_INITIAL=1s",
		"MESHHOOK_ALERTS_SECRETS_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(encKey),
		"MESHHOOK_ALERTS_HTTP_LISTEN=127.0.0.1:0",
		"MESHHOOK_ALERTS_LOG_FORMAT=console",
	)
	logs, err := daemon.StderrPipe()
	if err != nil {
		return err
	}
	daemon.Stdout = os.Stdout
	if err := daemon.Start(); err != nil {
		return err
	}
	logDone := make(chan struct{})
	go func() { defer close(logDone); prefix(logs, "    daemon | ") }()
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	defer func() {
		if daemon.ProcessState == nil {
			_ = daemon.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = daemon.Process.Kill()
			}
			<-logDone
		}
	}()

	if err := waitSubscribed(ctx, si, exited); err != nil {
		return err
	}
	say("daemon subscribed; driving workflow runs")

	want := 0
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
		time.Sleep(300 * time.Millisecond)
		finished := "now()"
		if step.status == "paused" {
			finished = "null"
		}
		if _, err := si.Pool.Exec(ctx, `update workflow_runs set status = $1, finished_at = `+finished+` where id = $2`, step.status, runID); err != nil {
			return err
		}
		want++
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := rcv.Wait(wctx, want)
		cancel()
		if err != nil {
			return err
		}
	}

	time.Sleep(500 * time.Millisecond) // let the last attempt be written
	say("alert_logs and alert_attempts (what an operator sees)")
	if err := printLogs(ctx, si.Pool); err != nil {
		return err
	}
	for _, d := range rcv.Deliveries() {
		if d.VerifyErr != nil {
			return errors.New("a delivery failed signature verification")
		}
	}
	say("done: %d signed deliveries (one of them a retry), every attempt logged", len(rcv.Deliveries()))
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

func waitSubscribed(ctx context.Context, si *standin.StandIn, exited <-chan error) error {
	deadline := time.After(30 * time.Second)
	for {
		topics := si.Realtime.SubscribedTopics()
		if len(topics) >= 2 {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the daemon exited before subscribing: %v", err)
		case <-deadline:
			return fmt.Errorf("the daemon did not subscribe within 30s (subscribed: %v)", topics)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func printLogs(ctx context.Context, pool *pgxpool.Pool) error {
	rows, err := pool.Query(ctx, `
		select l.event, l.status, l.attempts, l.webhook_id, coalesce(a.status_code, 0), coalesce(a.latency_ms, 0), a.outcome
		from alert_logs l join alert_attempts a on a.alert_id = l.id
		order by l.created_at, a.attempt`)
	if err != nil {
		return err
	}
	defer rows.Close()
	fmt.Printf("    %-10s %-10s %-8s %-36s %-6s %-8s %s\n", "event", "status", "attempts", "webhook_id", "http", "latency", "outcome")
	for rows.Next() {
		var event, status, wid, outcome string
		var attempts, code, latency int
		if err := rows.Scan(&event, &status, &attempts, &wid, &code, &latency, &outcome); err != nil {
			return err
		}
		fmt.Printf("    %-10s %-10s %-8d %-36s %-6d %-8s %s\n", event, status, attempts, wid, code, fmt.Sprintf("%dms", latency), outcome)
	}
	return rows.Err()
}

func prefix(r io.Reader, p string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Println(p + sc.Text())
	}
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
