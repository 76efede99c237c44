package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/meshhook/meshhook-alerts/internal/harness/authtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
	"github.com/meshhook/meshhook-alerts/internal/seal"
)

// keepOptions configures the demo's --keep mode.
type keepOptions struct {
	listen   string        // the daemon's HTTP address (API and UI)
	interval time.Duration // how often new runs start
}

// Demo user of --keep mode: the stand-in's Auth signs them in with email and
// password; they own the demo's projects.
const (
	keepEmail    = "demo@example.com"
	keepPassword = "meshhook-demo"
)

// keepWorkflow is one seeded workflow.
type keepWorkflow struct {
	project, id, slug string
	flaky             bool // its alerts go to the receiver that fails sometimes
}

// runKeep runs the stack for the web UI until ctx is done: the stand-in,
// the daemon with its API and UI, seeded projects, workflows and rules, two
// local receivers (one always answers 204, one fails sometimes), and a few
// workflow runs every few seconds.
func runKeep(ctx context.Context, opts standin.Options, ko keepOptions) error {
	st, err := startStack(ctx, opts, "REST, Realtime and Auth")
	if err != nil {
		return err
	}
	defer st.close()
	logFile, bin, si := st.log, st.bin, st.si

	secret, err := newSecret()
	if err != nil {
		return err
	}
	encKey := make([]byte, seal.KeySize)
	if _, err := crand.Read(encKey); err != nil {
		return err
	}
	keys, err := seal.NewKeyring(encKey)
	if err != nil {
		return err
	}
	good, err := startKeepReceiver(secret, 0)
	if err != nil {
		return err
	}
	defer good.Close()
	flaky, err := startKeepReceiver(secret, 0.3)
	if err != nil {
		return err
	}
	defer flaky.Close()

	user := authtest.User{ID: newUUID(), Email: keepEmail, Password: keepPassword}
	si.Auth.AddUser(user)
	wfs, err := seedKeep(ctx, si.Pool, user.ID, good.URL, flaky.URL, secret, keys)
	if err != nil {
		return err
	}
	operatorToken := "demo-" + randomHex(16)

	d, err := startDaemon(bin, daemonEnv(si, encKey,
		"MESHHOOK_ALERTS_HTTP_LISTEN="+ko.listen,
		"MESHHOOK_ALERTS_API_ENABLED=true",
		"MESHHOOK_ALERTS_API_OPERATOR_TOKEN="+operatorToken,
		"MESHHOOK_ALERTS_UI_SUPABASE_PUBLISHABLE_KEY="+si.PublishableKey,
		"MESHHOOK_ALERTS_SENDER_MAX_ATTEMPTS=3",
	), logFile)
	if err != nil {
		return err
	}
	defer d.stop()
	if err := waitSubscribed(ctx, si, d.exited, d.why); err != nil {
		return err
	}
	addr, err := listenAddr(ctx, logFile.Name(), d)
	if err != nil {
		return err
	}

	fmt.Printf(`==> the web UI is at http://%s/ui/
    sign in with email %s and password %s (a Supabase user: sees the demo's projects),
    or open "Sign in with a token" and paste the operator token %s (every project)
==> the daemon's log (JSON lines): %s
==> the database, for psql: %s
==> a few workflow runs start every %s; Ctrl-C stops everything
`, addr, keepEmail, keepPassword, operatorToken, logFile.Name(), si.DatabaseURL, ko.interval)

	return driveRuns(ctx, si.Pool, wfs, ko.interval, d, good, flaky)
}

// seedKeep creates two projects owned by the demo user, their workflows,
// and three rules: two whose receiver always answers, one whose receiver
// fails sometimes.
func seedKeep(ctx context.Context, pool *pgxpool.Pool, owner, goodURL, flakyURL, secret string, keys *seal.Keyring) ([]keepWorkflow, error) {
	var wfs []keepWorkflow
	projects := []struct {
		name      string
		workflows [][2]string // slug, name
		flaky     bool
	}{
		{"Acme payments", [][2]string{{"billing-sync", "Billing sync"}, {"nightly-report", "Nightly report"}, {"invoice-export", "Invoice export"}}, false},
		{"Acme internal tools", [][2]string{{"backup-rotation", "Backup rotation"}, {"crm-import", "CRM import"}}, true},
	}
	ids := make([]string, len(projects))
	for i, p := range projects {
		if err := pool.QueryRow(ctx, `insert into projects (owner, name) values ($1, $2) returning id`, owner, p.name).Scan(&ids[i]); err != nil {
			return nil, err
		}
		for _, w := range p.workflows {
			var id string
			if err := pool.QueryRow(ctx, `insert into workflow_definitions (project_id, slug, version, definition, name, status)
				values ($1, $2, 1, '{}', $3, 'published') returning id`, ids[i], w[0], w[1]).Scan(&id); err != nil {
				return nil, err
			}
			wfs = append(wfs, keepWorkflow{project: ids[i], id: id, slug: w[0], flaky: p.flaky})
		}
	}
	sealedSecret, err := keys.Seal(secret)
	if err != nil {
		return nil, err
	}
	for _, r := range []struct {
		project     string
		slug        any
		name        string
		events, url string
	}{
		{ids[0], "billing-sync", "Billing sync: every outcome", "{succeeded,failed,canceled,paused}", goodURL + "/alerts/{{.Workflow.Slug}}"},
		{ids[0], nil, "Payments: failures", "{failed,canceled}", goodURL + "/payments"},
		{ids[1], nil, "Internal tools → a flaky endpoint", "{succeeded,failed,canceled,paused}", flakyURL + "/tools/{{.Workflow.Slug}}"},
	} {
		sealedURL, err := keys.Seal(r.url)
		if err != nil {
			return nil, err
		}
		if _, err := pool.Exec(ctx, `insert into alert_configs (project_id, workflow_slug, name, events, webhook_url, signing_secrets)
			values ($1, $2, $3, $4, $5, array[$6])`, r.project, r.slug, r.name, r.events, sealedURL, sealedSecret); err != nil {
			return nil, err
		}
	}
	say("seeded 2 projects, 5 workflows and 3 rules (one of them sends to an endpoint that fails sometimes)")
	return wfs, nil
}

// driveRuns starts a run or two every interval and finishes each a moment
// later, mostly succeeded, sometimes failed, canceled or paused, until ctx
// is done; every minute it says how many runs and deliveries there were.
func driveRuns(ctx context.Context, pool *pgxpool.Pool, wfs []keepWorkflow, interval time.Duration, d *daemonProc, good, flaky *keepReceiver) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	report := time.NewTicker(time.Minute)
	defer report.Stop()
	var running []string // runs started at the last tick
	runs := 0
	for {
		// Finish the runs started at the last tick.
		for _, id := range running {
			status, finished := "succeeded", "now()"
			switch p := rand.Float64(); {
			case p < 0.2:
				status = "failed"
			case p < 0.25:
				status = "canceled"
			case p < 0.3:
				status, finished = "paused", "null"
			}
			if _, err := pool.Exec(ctx, `update workflow_runs set status = $1, finished_at = `+finished+` where id = $2`, status, id); err != nil {
				return unlessStopping(ctx, err)
			}
		}
		running = running[:0]
		for range 1 + rand.IntN(2) {
			wf := wfs[rand.IntN(len(wfs))]
			var id string
			if err := pool.QueryRow(ctx, `insert into workflow_runs (project_id, workflow_id, status) values ($1, $2, 'running') returning id`,
				wf.project, wf.id).Scan(&id); err != nil {
				return unlessStopping(ctx, err)
			}
			running = append(running, id)
			runs++
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.exited:
			return d.why()
		case <-report.C:
			fmt.Printf("    … %d runs so far; the receivers answered %d deliveries (%d of them with an error)\n",
				runs, good.count.Load()+flaky.count.Load(), flaky.failed.Load())
		case <-tick.C:
		}
	}
}

// unlessStopping is nil when ctx is done (the demo is stopping: a database
// call cut short by it is no error), else err.
func unlessStopping(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// listenRE finds the daemon's HTTP address in its log.
var listenRE = regexp.MustCompile(`"msg":"operational endpoints listening","addr":"([^"]+)"`)

// listenAddr waits for the daemon to log the address it listens on.
func listenAddr(ctx context.Context, logPath string, d *daemonProc) (string, error) {
	deadline := time.After(30 * time.Second)
	for {
		b, err := os.ReadFile(logPath)
		if err != nil {
			return "", err
		}
		if m := listenRE.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-d.exited:
			return "", d.why()
		case <-deadline:
			return "", fmt.Errorf("the daemon did not say where it listens within 30 s; see %s", logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// keepReceiver is a webhook receiver that verifies signatures and counts
// deliveries, keeping none of them; it fails a share of them, half with a
// 503 (the sender retries) and half with a 422 (it gives up).
type keepReceiver struct {
	URL    string
	srv    *http.Server
	wh     *standardwebhooks.Webhook
	fail   float64
	count  atomic.Int64
	failed atomic.Int64
}

func startKeepReceiver(secret string, fail float64) (*keepReceiver, error) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &keepReceiver{URL: "http://" + ln.Addr().String(), wh: wh, fail: fail}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *keepReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	r.count.Add(1)
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.failed.Add(1)
		http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
		return
	}
	// A little latency, as a real endpoint has.
	time.Sleep(time.Duration(5+rand.IntN(60)) * time.Millisecond)
	switch p := rand.Float64(); {
	case p < r.fail/2:
		r.failed.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy, try again", http.StatusServiceUnavailable)
	case p < r.fail:
		r.failed.Add(1)
		http.Error(w, "this endpoint refuses the payload", http.StatusUnprocessableEntity)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// Close stops the receiver.
func (r *keepReceiver) Close() error { return r.srv.Close() }

func newUUID() string {
	b := make([]byte, 16)
	_, _ = crand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
