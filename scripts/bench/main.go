// Command bench measures webhook delivery on this machine:
//
//  1. the loopback floor: plain net/http POSTs of the same body to the same
//     local receiver, one at a time (latency) and from many goroutines
//     (requests per second);
//  2. the sender's added latency: alerts delivered one at a time, the
//     attempt latency (signing, SSRF-checked dial, POST, response) against
//     the floor;
//  3. throughput at saturation with outcomes recorded in an in-memory store
//     (the sender's own cost);
//  4. throughput at saturation with durable logging through the PostgREST
//     stand-in into a real PostgreSQL, on both paths: alerts claimed in
//     batches and handed to the sender already leased (new alerts), and
//     alerts leased from alert_logs (retries, restarts); outcomes are written
//     in batches on both.
//
// CPU per delivery is this process's user+system time divided by
// deliveries: in modes 2 and 3 the sender's and the receiver's; in mode 4
// the daemon's side alone (sender, claims, store client), with the child
// process running the REST stand-in and the receiver, and the PostgreSQL
// server, reported apart.
//
// Run it with: go run ./scripts/bench [-n 20000] [-mode all|floor|fake|rest]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/daemon"
	"github.com/meshhook/meshhook-alerts/internal/harness/benchstat"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
)

var (
	flagN         = flag.Int("n", 20000, "alerts per throughput run")
	flagMode      = flag.String("mode", "all", "floor, fake, rest or all")
	flagWorkers   = flag.Int("workers", 64, "sender.workers (and per-host concurrency: one receiver)")
	flagQueue     = flag.Int("queue", 4096, "sender.queue_size")
	flagSamples   = flag.Int("samples", 2000, "sequential deliveries for the latency comparison")
	flagFloorDur  = flag.Duration("floor-duration", 3*time.Second, "duration of the loopback throughput floor")
	flagServe     = flag.Bool("serve", false, "internal: run the stand-in and a receiver for the durable runs until stdin closes")
	flagProfile   = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flagMemProf   = flag.String("memprofile", "", "write an allocation profile of the whole run to this file")
	flagRestPaths = flag.String("rest-paths", "handoff,lease", "durable paths measured in mode rest: handoff (claimed and handed over), lease (leased from alert_logs)")
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var payload = []byte(`{"type":"workflow_run.failed","event":"failed","occurred_at":"2026-01-02T03:05:35Z",` +
	`"run":{"id":"00000000-0000-4000-8000-000000000001","status":"failed"},"workflow":{"slug":"billing","version":3},` +
	`"rule":{"id":"00000000-0000-4000-8000-0000000000cc","name":"bench"}}`)

func main() {
	flag.Parse()
	if *flagServe {
		if err := serveChild(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "bench -serve:", err)
			os.Exit(1)
		}
		return
	}
	if *flagProfile != "" {
		f, err := os.Create(*flagProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	if *flagMemProf != "" {
		if err := writeAllocProfile(*flagMemProf); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
}

// writeAllocProfile writes the allocations of the whole run (pprof's
// allocs profile: go tool pprof -sample_index=alloc_space).
func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func run(ctx context.Context) error {
	rcv, err := newReceiver()
	if err != nil {
		return err
	}
	defer rcv.Close()
	fmt.Printf("machine: %d CPUs; body %d bytes; receiver %s (in-process, answers 204)\n\n", numCPU(), len(payload), rcv.url)

	mode := *flagMode
	if mode == "all" || mode == "floor" || mode == "fake" {
		floor := latencyFloor(rcv.url, *flagSamples)
		fmt.Printf("loopback floor, sequential plain POST:  p50 %s  p99 %s  (n=%d)\n", us(benchstat.Percentile(floor, 50)), us(benchstat.Percentile(floor, 99)), len(floor))
		rps, cpu := throughputFloor(rcv.url, *flagWorkers, *flagFloorDur)
		fmt.Printf("loopback floor, %d goroutines:          %.0f POSTs/s; CPU %.1f µs/POST (client + receiver)\n\n",
			*flagWorkers, rps, float64(cpu.Nanoseconds())/1e3)
		if mode != "floor" {
			c0 := rcv.conns.Load()
			lat, err := senderLatency(ctx, rcv.url, *flagSamples)
			if err != nil {
				return err
			}
			fmt.Printf("(sender latency run opened %d connections)\n", rcv.conns.Load()-c0)
			fmt.Printf("sender, one worker, signed attempts:    p50 %s  p99 %s  → added p50 %s  p99 %s\n\n",
				us(benchstat.Percentile(lat, 50)), us(benchstat.Percentile(lat, 99)), us(benchstat.Percentile(lat, 50)-benchstat.Percentile(floor, 50)), us(benchstat.Percentile(lat, 99)-benchstat.Percentile(floor, 99)))
		}
	}
	if mode == "all" || mode == "fake" {
		res, err := saturate(ctx, rcv, newFastStore(), *flagN)
		if err != nil {
			return err
		}
		res.print("saturation, in-memory store")
	}
	if mode == "all" || mode == "rest" {
		for _, path := range strings.Split(*flagRestPaths, ",") {
			if err := restRun(ctx, *flagN, path); err != nil {
				return err
			}
		}
	}
	return nil
}

// receiver is a minimal local webhook endpoint.
type receiver struct {
	url   string
	srv   *http.Server
	hits  atomic.Int64
	conns atomic.Int64 // connections accepted
}

func newReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String() + "/hook"}
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/hits" {
			fmt.Fprint(w, r.hits.Load())
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		r.hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	r.srv.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			r.conns.Add(1)
		}
	}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) Close() { _ = r.srv.Close() }

func plainClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns}, Timeout: 10 * time.Second}
}

func post(c *http.Client, url string) error {
	resp, err := c.Post(url, "application/json", bytes.NewReader(payload))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

// latencyFloor times n sequential plain POSTs over one kept-alive connection.
func latencyFloor(url string, n int) []time.Duration {
	c := plainClient(1)
	_ = post(c, url)
	out := make([]time.Duration, 0, n)
	for range n {
		t := time.Now()
		if post(c, url) == nil {
			out = append(out, time.Since(t))
		}
	}
	return out
}

// throughputFloor runs plain POSTs from conns goroutines for d and returns
// the rate and the CPU time per POST.
func throughputFloor(url string, conns int, d time.Duration) (float64, time.Duration) {
	c := plainClient(conns)
	var n atomic.Int64
	start, cpu0 := time.Now(), benchstat.SelfCPU()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if post(c, url) == nil {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), benchstat.SelfCPU()-cpu0
	return float64(n.Load()) / elapsed.Seconds(), cpu / time.Duration(max(n.Load(), 1))
}

func benchOptions(workers, queue int) sender.Options {
	return sender.Options{
		Workers: workers, PerHostConcurrency: workers, QueueSize: queue, RequestTimeout: 10 * time.Second,
		PollInterval: 50 * time.Millisecond, AllowInsecureHTTP: true, AllowedNetworks: []string{"127.0.0.0/8"},
		ResponseExcerptBytes: 256, DrainTimeout: 10 * time.Second,
	}
}

func benchAlert(id, url string) sender.Alert {
	return sender.Alert{ID: id, ConfigID: "rule", WebhookID: "msg_" + id, RunID: "run", Event: "failed",
		Payload: payload, TargetURL: url, Secrets: []string{secret}, CreatedAt: time.Now()}
}

// senderLatency delivers n alerts with one worker, back to back, and
// returns each attempt's latency as the sender records it: URL and secret
// checks, signing, the POST through the SSRF-guarded transport, and reading
// the response.
func senderLatency(ctx context.Context, url string, n int) ([]time.Duration, error) {
	store := newFastStore()
	for i := range n + 1 {
		store.add(benchAlert(fmt.Sprintf("lat%06d", i), url))
	}
	s, err := sender.New(benchOptions(1, 64), store, zap.NewNop())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for store.finished() < n+1 {
		store.waitChange(time.Second)
	}
	cancel()
	if err := <-done; err != nil {
		return nil, err
	}
	lat := store.latencies()
	return lat[1:], nil // the first attempt opens the connection
}

type result struct {
	n        int
	elapsed  time.Duration
	cpu      time.Duration
	pgCPU    time.Duration
	pgKinds  map[string]time.Duration
	batches  uint64
	attempts map[string]uint64
	hasPGCPU bool
	// srvCPU is the child's (REST stand-in and receiver) in durable runs.
	srvCPU    time.Duration
	hasSrvCPU bool
	extraNote string
}

func (r result) print(title string) {
	perDelivery := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(r.n) }
	fmt.Printf("%s: %d deliveries in %s → %.0f deliveries/s; CPU %.1f µs/delivery (this process)",
		title, r.n, r.elapsed.Round(time.Millisecond), float64(r.n)/r.elapsed.Seconds(), perDelivery(r.cpu))
	if r.hasSrvCPU {
		fmt.Printf(" + %.1f µs/delivery (REST stand-in and receiver)", perDelivery(r.srvCPU))
	}
	if r.hasPGCPU {
		fmt.Printf(" + %.1f µs/delivery (PostgreSQL: %s)", float64(r.pgCPU.Microseconds())/float64(r.n), benchstat.PerUnitByKind(r.pgKinds, r.n))
	}
	fmt.Printf("; %d outcome batches (%.0f outcomes per write)", r.batches, float64(r.n)/float64(max(r.batches, 1)))
	if r.extraNote != "" {
		fmt.Print("; ", r.extraNote)
	}
	fmt.Printf("\n  attempts by outcome: %v\n\n", r.attempts)
}

// saturate preloads n due alerts and times the sender until all are
// delivered and recorded.
func saturate(ctx context.Context, rcv *receiver, store *fastStore, n int) (result, error) {
	for i := range n {
		store.add(benchAlert(fmt.Sprintf("sat%07d", i), rcv.url))
	}
	s, err := sender.New(benchOptions(*flagWorkers, *flagQueue), store, zap.NewNop())
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cpu0 := benchstat.SelfCPU()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for store.finished() < n {
		store.waitChange(time.Second)
	}
	elapsed := time.Since(start)
	cpu := benchstat.SelfCPU() - cpu0
	cancel()
	if err := <-done; err != nil {
		return result{}, err
	}
	st := s.Stats()
	return result{n: n, elapsed: elapsed, cpu: cpu, batches: st.WriteBatches, attempts: st.Attempts}, nil
}

// restRun measures saturation against the PostgREST stand-in and a real
// PostgreSQL: n pending alerts are inserted, then leased and recorded by
// the sender through REST (alert_lease_due, alert_report_deliveries).
func restRun(ctx context.Context, n int, path string) error {
	srv, err := startServers(ctx)
	if err != nil {
		return err
	}
	defer srv.Close()
	db := srv.pool
	var project, rule string
	if err := db.QueryRow(ctx, `insert into projects (owner, name) values (gen_random_uuid(), 'bench') returning id`).Scan(&project); err != nil {
		return err
	}
	if err := db.QueryRow(ctx, `insert into alert_configs (project_id, name, events, webhook_url, signing_secrets)
		values ($1, 'bench', '{failed}', $2, array[$3]) returning id`, project, srv.ReceiverURL, secret).Scan(&rule); err != nil {
		return err
	}
	if path == "lease" {
		if _, err := db.Exec(ctx, `insert into alert_logs (config_id, project_id, run_id, event, webhook_id, status, next_attempt_at,
			payload, target_url, occurred_at)
			select $1, $2, 'run-' || g, 'failed', 'msg_bench_' || g, 'pending', now() - interval '1 second', $3, $4, now()
			from generate_series(1, $5) g`, rule, project, string(payload), srv.ReceiverURL, n); err != nil {
			return err
		}
	}
	if _, err := db.Exec(ctx, `vacuum analyze alert_logs`); err != nil {
		return err
	}
	store, err := supabase.New(supabase.Options{URL: srv.SupabaseURL, ServiceKey: srv.ServiceKey, MaxIdleConnsPerHost: 16})
	if err != nil {
		return err
	}
	defer store.Close()
	rules := alerts.NewRuleSet()
	spec := alerts.RuleSpec{ID: rule, ProjectID: project, Name: "bench", Enabled: true, Events: []string{"failed"},
		WebhookURL: srv.ReceiverURL, Secrets: []string{secret}}
	if err := rules.Put(spec); err != nil {
		return err
	}
	r, _ := rules.Get(rule)
	pg, pgErr := benchstat.NewPostgresCPU(ctx, db)

	deliveries := &daemon.Deliveries{Store: store, Rules: rules}
	s, err := sender.New(benchOptions(*flagWorkers, *flagQueue), deliveries, zap.NewNop())
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hits0, err := srv.hits()
	if err != nil {
		return err
	}
	cpu0, srv0 := benchstat.SelfCPU(), srv.cpu()
	if pg != nil {
		pg.Reset()
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	feedErr := make(chan error, 1)
	if path == "handoff" {
		go func() {
			feedErr <- feedClaims(rctx, daemon.NewSupabaseStore(store, alerts.MeshHookMapping()), deliveries.Submitter(s), r, n)
		}()
	} else {
		feedErr <- nil
	}
	// The sender counts an alert finished once its outcome is durable; the
	// database is checked after the clock stops (a count there every few
	// milliseconds would cost PostgreSQL more than the deliveries do).
	deadline := time.Now().Add(10 * time.Minute)
	for {
		st := s.Stats()
		if finished := st.Delivered + st.Failed; finished >= uint64(n) {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d alerts finished in 10 minutes", finished, n)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	cpu, srvUsed := benchstat.SelfCPU()-cpu0, srv.cpu()-srv0
	var pgUsed time.Duration
	var pgKinds map[string]time.Duration
	if pg != nil {
		pgKinds = pg.SinceByKind()
		pgUsed = benchstat.Total(pgKinds)
	}
	cancel()
	if err := <-done; err != nil {
		return err
	}
	if err := <-feedErr; err != nil {
		return err
	}
	var attempts, succeeded int
	if err := db.QueryRow(ctx, `select (select count(*) from alert_attempts), (select count(*) from alert_logs where status = 'succeeded')`).
		Scan(&attempts, &succeeded); err != nil {
		return err
	}
	hits, err := srv.hits()
	if err != nil {
		return err
	}
	st := s.Stats()
	res := result{n: n, elapsed: elapsed, cpu: cpu, pgCPU: pgUsed, pgKinds: pgKinds, hasPGCPU: pgErr == nil, batches: st.WriteBatches, attempts: st.Attempts,
		srvCPU: srvUsed, hasSrvCPU: true,
		extraNote: fmt.Sprintf("%d attempts and %d succeeded rows in the database, %d POSTs received", attempts, succeeded, hits-hits0)}
	if pgErr != nil {
		res.extraNote += "; PostgreSQL CPU unavailable: " + pgErr.Error()
	}
	if path == "handoff" {
		res.print("saturation, durable, claimed and handed over (the engine's path for new alerts)")
	} else {
		res.print("saturation, durable, leased from alert_logs (the path for retries and restarts)")
	}
	return nil
}

// feedClaims claims n alerts of r in the engine's batches, leased to the
// sender while it has room and handed over, the rest left pending for the
// sender to lease: what the engine does with a burst of changes.
func feedClaims(ctx context.Context, st *daemon.SupabaseStore, sub alerts.Submitter, r *alerts.Rule, n int) error {
	leaser := sub.(alerts.Leaser)
	const batch = 500
	now := time.Now()
	for i := 0; i < n; i += batch {
		claims := make([]alerts.Claim, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			run := fmt.Sprintf("run-%d", j)
			claims = append(claims, alerts.Claim{ConfigID: r.ID(), ProjectID: r.ProjectID(), RunID: run, Event: alerts.EventFailed,
				WebhookID: alerts.WebhookID(r.ID(), run, alerts.EventFailed), Payload: payload, TargetURL: r.Spec().WebhookURL,
				OccurredAt: now})
		}
		k, until := leaser.Reserve(len(claims))
		for j := range k {
			claims[j].LeaseUntil = until
		}
		res, err := st.Claim(ctx, claims)
		if err != nil {
			return err
		}
		for j, c := range claims {
			if res[j].Err != nil || res[j].ID == "" {
				return fmt.Errorf("claim %s: not claimed (%v)", c.RunID, res[j].Err)
			}
			sub.Submit(alerts.Claimed{ID: res[j].ID, Rule: r, Claim: c, Lease: res[j].Lease})
		}
		if k == 0 {
			time.Sleep(time.Millisecond) // the sender is full: let it drain
		}
	}
	return nil
}

// fastStore is an in-memory Store with lease semantics, O(1) per alert.
type fastStore struct {
	mu      sync.Mutex
	due     []sender.Alert
	leased  map[string]time.Time
	done    int
	lat     []time.Duration
	changed chan struct{}
}

func newFastStore() *fastStore {
	return &fastStore{leased: map[string]time.Time{}, changed: make(chan struct{}, 1)}
}

func (f *fastStore) add(a sender.Alert) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.due = append(f.due, a)
}

func (f *fastStore) LeaseDue(_ context.Context, _, until time.Time, limit int) ([]sender.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := min(limit, len(f.due))
	out := slices.Clone(f.due[:k])
	f.due = f.due[k:]
	for i := range out {
		out[i].Lease = until
		f.leased[out[i].ID] = until
	}
	return out, nil
}

func (f *fastStore) Report(_ context.Context, reports []sender.Report) (map[string]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	applied := make(map[string]bool, len(reports))
	for _, r := range reports {
		if l, ok := f.leased[r.AlertID]; !ok || !l.Equal(r.Lease) {
			continue
		}
		delete(f.leased, r.AlertID)
		applied[r.AlertID] = true
		if r.Attempt != nil {
			f.lat = append(f.lat, r.Attempt.Latency)
		}
		if r.Update.Status == sender.StatusPending {
			return nil, errors.New("bench: an alert was rescheduled; the receiver should accept everything")
		}
		f.done++
	}
	select {
	case f.changed <- struct{}{}:
	default:
	}
	return applied, nil
}

func (f *fastStore) DisableConfig(context.Context, string, string) error { return nil }

func (f *fastStore) finished() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done
}

func (f *fastStore) latencies() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lat)
}

func (f *fastStore) waitChange(d time.Duration) {
	select {
	case <-f.changed:
	case <-time.After(d):
	}
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d.Nanoseconds())/1e3) }

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "processor\t:")
}
