// Command benchpipe measures the whole alert pipeline on this machine: a
// throwaway PostgreSQL cluster, the local Supabase stand-in (REST and
// Realtime fed by logical decoding), the real daemon binary as its own
// process, and local webhook receivers. It drives workflow runs through
// PostgreSQL and prints one table:
//
//   - idle: what the daemon costs PostgreSQL with nothing to deliver, per
//     second (as for steady and burst below);
//   - steady: changes committed one at a time at a fixed rate; commit →
//     receipt percentiles (commit time is this process's clock when
//     PostgreSQL acknowledged the autocommit UPDATE; receipt is the
//     receiver's clock in this same process), and the daemon's own share
//     (change frame in → first byte of the request out) from its /metrics
//     histogram; and what each alert costs the database: PostgreSQL's CPU
//     split by whose work it did (the daemon's REST calls, Realtime's
//     decoding, the load's own UPDATE, background processes; backends are
//     told apart by application_name), transactions, WAL records and bytes
//     (pg_walinspect; the cluster runs with fsync and full_page_writes off,
//     so no full-page images), the daemon's CPU, and the statements that
//     took the most time (pg_stat_statements, -statements);
//   - burst: many run updates in one transaction; time from its commit until
//     every alert is received, and until every alert_logs row says
//     succeeded; and the database's cost per alert, as for steady;
//   - saturation: updates committed in batches as fast as PostgreSQL takes
//     them; alerts received, and logged succeeded, per second over the
//     middle 80 % of the run;
//   - isolation: healthy-endpoint p99 at the steady rate, once with every
//     endpoint healthy and once while a blackholed endpoint (accepts
//     connections, never answers) on another host takes 10 % of alerts;
//   - reconcile: what continuous reconciliation costs while Realtime works,
//     at 20 and 500 changes/s: the reconciler's REST calls per change,
//     counted at the stand-in, and the daemon's and PostgreSQL's CPU per
//     change, as the difference between the same load with reconciliation
//     at its default interval and effectively off (the daemon restarted
//     with an interval of an hour);
//   - quota: a second stand-in whose Realtime has Pro's event quota
//     (500/s), pushed over it; then a burst in one transaction, which
//     Realtime skips: commit → every alert received, all found by
//     reconciliation;
//   - memory: the daemon's resident set idle, after 100,000 rules were
//     inserted while it ran, and after a restart with them.
//
// The stand-in's Realtime polls for changes as hosted Realtime does (every
// 100 ms, 500 ms when idle), so commit → receipt includes that wait; the
// -realtime-* flags change it (-realtime-poll-interval=-1ms: no polling, to
// see the pipeline's own latency).
//
// Run it with: go run ./scripts/benchpipe [-quick] [-phases ...]
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meshhook/meshhook-alerts/internal/harness/benchstat"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/realtime/realtimetest"
)

var (
	flagQuick       = flag.Bool("quick", false, "short phases (well under a minute of load) for a smoke run")
	flagSteadyRate  = flag.Int("rate", 20, "changes per second in the steady and isolation phases")
	flagSteadyDur   = flag.Duration("steady", 60*time.Second, "duration of the steady phase")
	flagBurst       = flag.Int("burst", 10000, "run updates committed in one transaction")
	flagSat         = flag.Int("saturation", 50000, "run updates in the saturation phase")
	flagSatBatch    = flag.Int("saturation-batch", 1000, "updates per transaction in the saturation phase")
	flagRules       = flag.Int("rules", 100000, "cached rules for the memory phase")
	flagLiveWait    = flag.Duration("live-rules-wait", 3*time.Minute, "how long to wait for rules inserted while the daemon runs to be cached")
	flagIsoDur      = flag.Duration("isolation", 60*time.Second, "duration of the isolation phase")
	flagKeep        = flag.Bool("v", false, "show the daemon's log")
	flagProfile     = flag.String("cpuprofile", "", "write a CPU profile of the daemon during the saturation phase to this file")
	flagStandinProf = flag.String("standin-cpuprofile", "", "write a CPU profile of this process (the stand-in and the receivers) during the saturation phase to this file")
	flagHeapProf    = flag.String("heapprofile", "", "write a heap profile of the daemon, restarted with the memory phase's rules, to this file")
	flagPhases      = flag.String("phases", "idle,steady,burst,saturation,isolation,reconcile,quota,memory", "the phases to run, comma-separated")

	flagReconcileDur   = flag.Duration("reconcile", 20*time.Second, "duration of each load of the reconcile phase (each rate, reconciliation off and on)")
	flagReconcileRates = flag.String("reconcile-rates", "20,500", "changes per second of the reconcile phase's loads, comma-separated")
	flagQuota          = flag.Int("quota", 500, "the quota phase's Realtime max_events_per_second (hosted Pro 500, Free 100)")
	flagQuotaTick      = flag.Duration("quota-rate-tick", realtimetest.DefaultRateTick, "the quota phase's Realtime rate counter tick")
	flagQuotaTicks     = flag.Int("quota-rate-window-ticks", realtimetest.DefaultRateWindowTicks, "ticks the quota phase's Realtime averages its event rate over")

	// rtOpts are the main stand-in's Realtime limits (-realtime-* flags).
	rtOpts realtimetest.Options
)

// phase reports whether the named phase was asked for.
func phase(name string) bool { return slices.Contains(strings.Split(*flagPhases, ","), name) }

func main() {
	if err := standin.RealtimeLimitFlags(flag.CommandLine, &rtOpts); err != nil {
		fmt.Fprintln(os.Stderr, "benchpipe:", err)
		os.Exit(2)
	}
	flag.Parse()
	if *flagQuick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{"steady": "5s", "idle": "5s", "isolation": "5s", "burst": "1000", "saturation": "3000", "rules": "5000",
			"reconcile": "5s", "quota-rate-tick": "1s", "quota-rate-window-ticks": "6"} {
			if !set[name] {
				_ = flag.Set(name, v)
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "benchpipe:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchpipe: "+format+"\n", args...)
}

// row is one line of the result table.
type row struct {
	name, value, target string
	pass                *bool
}

func check(ok bool) *bool { return &ok }

func run(ctx context.Context) error {
	tmp, err := os.MkdirTemp("", "meshhook-benchpipe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	say("building the daemon")
	bin, err := standin.BuildDaemon(ctx, tmp)
	if err != nil {
		return err
	}
	say("starting PostgreSQL and the Supabase stand-in")
	rc := &restCounter{}
	// Hosted PostgREST keeps its schema cache until the schema changes: so
	// does the stand-in's here, rather than reading the catalog every
	// second, which would count as the daemon's cost.
	si, err := standin.Start(ctx, standin.Options{MeshHook: true, Realtime: rtOpts, Wrap: rc.wrap, Diagnostics: true,
		SchemaCacheTTL: time.Hour})
	if err != nil {
		return err
	}
	defer si.Close()

	secret, key, keys, err := newKeys()
	if err != nil {
		return err
	}
	rcv, err := newReceiver("127.0.0.1:0", secret)
	if err != nil {
		return err
	}
	defer rcv.Close()
	hole, err := newBlackhole("127.0.0.2:0")
	if err != nil {
		return err
	}
	defer hole.Close()
	w, err := seed(ctx, si.Pool, keys, secret, rcv.url, hole.url)
	if err != nil {
		return err
	}
	if w.load, err = openLoadPool(ctx, si.DatabaseURL); err != nil {
		return err
	}
	defer w.load.Close()

	env := daemonEnv(si, key)
	d, err := startDaemon(ctx, bin, env)
	if err != nil {
		return err
	}
	defer d.stop()
	if err := d.waitMetric(ctx, "meshhook_alerts_engine_rules_cached", func(v float64) bool { return v >= 2 }, 60*time.Second); err != nil {
		return err
	}
	if err := waitSubscribed(ctx, si); err != nil {
		return err
	}
	if err := quiesce(ctx, si.Pool, rcv, w); err != nil {
		return err
	}
	var rows []row
	idleRSS, err := d.settledRSS(ctx)
	if err != nil {
		return err
	}

	if phase("idle") {
		rs, err := idlePhase(ctx, si, rcv, w, d, rc)
		if err != nil {
			return err
		}
		rows = append(rows, rs...)
	}

	if phase("steady") {
		// Steady.
		say("steady: %d changes/s for %s", *flagSteadyRate, *flagSteadyDur)
		const daemonShare = "meshhook_alerts_dispatch_daemon_seconds"
		before, beforeErr := d.histogram(ctx, daemonShare)
		var cost *dbCost
		steady, err := driveFrom(ctx, si.Pool, rcv, w, *flagSteadyRate, *flagSteadyDur, 0, func() { cost = startDBCost(ctx, si.Pool, d, rc) })
		if err != nil {
			return err
		}
		after, afterErr := d.histogram(ctx, daemonShare)
		if err := settle(ctx, si.Pool); err != nil {
			return err
		}
		n := *flagSteadyRate * int(*flagSteadyDur/time.Second)
		costRows := cost.rows(ctx, fmt.Sprintf("steady %d/s", *flagSteadyRate), "alert", n, n)
		p50, p99, pmax := benchstat.Percentile(steady, 50), benchstat.Percentile(steady, 99), benchstat.Percentile(steady, 100)
		// With polling, a change waits up to the idle poll before the
		// daemon sees it: the target allows for it.
		target, limit := "≤ 20 ms", 20*time.Millisecond
		if wait := maxPollWait(rtOpts); wait > 0 {
			target, limit = fmt.Sprintf("≤ 20 ms + %s poll", wait), limit+wait
		}
		rows = append(rows,
			row{fmt.Sprintf("steady %d/s, commit → receipt p50%s", *flagSteadyRate, pollSuffix()), ms(p50), "", nil},
			row{fmt.Sprintf("steady %d/s, commit → receipt p99%s", *flagSteadyRate, pollSuffix()), ms(p99), target, check(p99 <= limit)},
			row{fmt.Sprintf("steady %d/s, commit → receipt max%s", *flagSteadyRate, pollSuffix()), ms(pmax), "", nil})
		delta := after.minus(before)
		switch {
		case beforeErr != nil || afterErr != nil:
			say("daemon's share: %v", errors.Join(beforeErr, afterErr))
			rows = append(rows, row{"daemon's share (frame in → request out) p50 / p99", "n/a (metric missing)", "", nil})
		case delta.count == 0:
			rows = append(rows, row{"daemon's share (frame in → request out) p50 / p99", "n/a (no samples)", "", nil})
		default:
			share99 := seconds(delta.quantileSeconds(0.99))
			rows = append(rows, row{"daemon's share (frame in → request out) p50 / p99",
				ms(seconds(delta.quantileSeconds(0.50))) + " / " + ms(share99), "p99 ≤ 20 ms", check(share99 <= 20*time.Millisecond)})
		}
		rows = append(rows, costRows...)
	}

	if phase("burst") {
		// Burst.
		say("burst: %d run updates in one transaction", *flagBurst)
		var cpu *cpuUse
		var cost *dbCost
		all, logged, err := burst(ctx, si.Pool, rcv, w, *flagBurst, func() { cpu, cost = startCPU(ctx, si.Pool, d), startDBCost(ctx, si.Pool, d, rc) })
		if err != nil {
			return err
		}
		costRows := cost.rows(ctx, "burst", "alert", *flagBurst, 1)
		rows = append(rows,
			row{fmt.Sprintf("burst of %d in one transaction: all received", *flagBurst), secs(all), "≤ 2 s", check(all <= 2*time.Second)},
			row{fmt.Sprintf("burst of %d: all logged succeeded", *flagBurst), secs(logged), "", nil},
			row{"burst, CPU per alert: daemon / stand-in, receivers, load / PostgreSQL", cpu.perAlert(*flagBurst), "", nil},
			row{"burst, PostgreSQL CPU per alert by process, µs", cpu.pgPerAlert(*flagBurst), "", nil},
			row{"daemon peak RSS so far (VmHWM), after the burst", peakMiB(d), "", nil})
		rows = append(rows, costRows...)
	}

	if phase("saturation") {
		// Saturation.
		say("saturation: %d updates, %d per transaction", *flagSat, *flagSatBatch)
		profiled := make(chan error, 1)
		if *flagProfile != "" {
			go func() { profiled <- d.profile(ctx, *flagProfile, 10*time.Second) }()
		} else {
			profiled <- nil
		}
		if *flagStandinProf != "" {
			f, err := os.Create(*flagStandinProf)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
		}
		var cpu *cpuUse
		rate, logRate, err := saturate(ctx, si.Pool, rcv, w, *flagSat, *flagSatBatch, func() { cpu = startCPU(ctx, si.Pool, d) })
		if *flagStandinProf != "" {
			pprof.StopCPUProfile()
		}
		if err != nil {
			return err
		}
		if err := <-profiled; err != nil {
			return err
		}
		rows = append(rows,
			row{fmt.Sprintf("saturation (%d in tx of %d), alerts received/s", *flagSat, *flagSatBatch), fmt.Sprintf("%.0f/s", rate), "≥ 10,000/s", check(rate >= 10000)},
			row{"saturation, alerts logged succeeded/s", fmt.Sprintf("%.0f/s", logRate), "≥ 10,000/s", check(logRate >= 10000)},
			row{"saturation, CPU per alert: daemon / stand-in, receivers, load / PostgreSQL", cpu.perAlert(*flagSat), "", nil},
			row{"saturation, PostgreSQL CPU per alert by process, µs", cpu.pgPerAlert(*flagSat), "", nil})
	}

	if phase("isolation") {
		// Isolation.
		if err := quiesce(ctx, si.Pool, rcv, w); err != nil {
			return err
		}
		say("isolation: %d changes/s for %s, all endpoints healthy", *flagSteadyRate, *flagIsoDur)
		base, err := drive(ctx, si.Pool, rcv, w, *flagSteadyRate, *flagIsoDur, 0)
		if err != nil {
			return err
		}
		say("isolation: %d changes/s for %s, 10%% to a blackholed endpoint", *flagSteadyRate, *flagIsoDur)
		iso, err := drive(ctx, si.Pool, rcv, w, *flagSteadyRate, *flagIsoDur, 10)
		if err != nil {
			return err
		}
		if err := abandonBlackhole(ctx, si.Pool); err != nil {
			return err
		}
		baseP99, isoP99 := benchstat.Percentile(base, 99), benchstat.Percentile(iso, 99)
		ratio := float64(isoP99) / float64(max(baseP99, time.Microsecond))
		rows = append(rows,
			row{fmt.Sprintf("isolation %d/s, healthy p99, all endpoints healthy%s", *flagSteadyRate, pollSuffix()), ms(baseP99), "", nil},
			row{"isolation, healthy p99, blackhole taking 10 % of alerts" + pollSuffix(), ms(isoP99), "", nil},
			row{"isolation, ratio with / without the blackhole", fmt.Sprintf("%.2f×", ratio), "≤ 1.5×", check(ratio <= 1.5)},
			row{"isolation, connections the blackhole accepted", strconv.Itoa(int(hole.accepted())), "", nil})
	}

	if phase("reconcile") {
		if err := quiesce(ctx, si.Pool, rcv, w); err != nil {
			return err
		}
		nd, rs, err := reconcilePhase(ctx, bin, env, si, d, rc, rcv, w)
		if nd != nil && nd != d {
			d = nd
			defer nd.stop()
		}
		if err != nil {
			return err
		}
		rows = append(rows, rs...)
	}

	if phase("quota") {
		rs, err := quotaPhase(ctx, bin, key, keys, secret, rcv, hole, rtOpts)
		if err != nil {
			return err
		}
		rows = append(rows, rs...)
	}

	rows = append(rows, row{"daemon RSS idle (2 rules)", mib(idleRSS), "", nil})
	if phase("memory") {
		// Memory.
		total := *flagRules + 2
		rulesLoaded := func(v float64) bool { return v >= float64(total) }
		say("memory: inserting %d rules while the daemon runs", *flagRules)
		loadStart := time.Now()
		if err := addRules(ctx, si.Pool, keys, secret, w.project, *flagRules); err != nil {
			return err
		}
		liveName := fmt.Sprintf("daemon RSS, %d rules loaded live", total)
		if err := d.waitMetric(ctx, "meshhook_alerts_engine_rules_cached", rulesLoaded, *flagLiveWait); err != nil {
			say("memory: %v", err)
			rows = append(rows, row{liveName, fmt.Sprintf("n/a (not cached within %s)", *flagLiveWait), "", nil})
		} else {
			say("memory: %d rules cached %s after the first insert", total, time.Since(loadStart).Round(100*time.Millisecond))
			if err := d.waitQuiet(ctx, busyCounters, 5*time.Second, 3*time.Minute); err != nil {
				return err
			}
			liveRSS, err := d.settledRSS(ctx)
			if err != nil {
				return err
			}
			rows = append(rows, row{liveName, mib(liveRSS), "≤ 100 MiB", check(liveRSS <= 100<<20)})
			if *flagHeapProf != "" {
				if err := d.heapReport(ctx, "live", *flagHeapProf+".live"); err != nil {
					return err
				}
			}
		}
		say("memory: restarting the daemon with %d rules", total)
		d.stop()
		d, err = startDaemon(ctx, bin, env)
		if err != nil {
			return err
		}
		defer d.stop()
		if err := d.waitMetric(ctx, "meshhook_alerts_engine_rules_cached", rulesLoaded, 5*time.Minute); err != nil {
			return err
		}
		if err := waitSubscribed(ctx, si); err != nil {
			return err
		}
		// Start-up loads the rules, then again once Realtime confirms the
		// subscription to alert_configs: measure after both.
		if err := d.waitMetric(ctx, "meshhook_alerts_engine_rule_loads_total", func(v float64) bool { return v >= 2 }, time.Minute); err != nil {
			return err
		}
		if err := d.waitQuiet(ctx, busyCounters, 5*time.Second, 3*time.Minute); err != nil {
			return err
		}
		restartRSS, err := d.settledRSS(ctx)
		if err != nil {
			return err
		}
		rows = append(rows, row{fmt.Sprintf("daemon RSS, restarted with %d rules", total), mib(restartRSS), "≤ 100 MiB", check(restartRSS <= 100<<20)})
		if *flagHeapProf != "" {
			if err := d.heapReport(ctx, "restarted", *flagHeapProf); err != nil {
				return err
			}
		}
	}

	if bad := rcv.badSignatures(); bad > 0 {
		return fmt.Errorf("%d sampled deliveries failed signature verification", bad)
	}
	printTable(rows)
	return nil
}

func printTable(rows []row) {
	fmt.Printf("machine: %d CPUs (%s), %s, load average %s at the end; daemon: one process, default configuration, log level warn\n",
		runtime.NumCPU(), cpuModel(), runtime.Version(), loadAverage())
	fmt.Printf("stand-in Realtime: %s\n\n", describeRealtime(rtOpts))
	wName, wVal, wTarget := len("measure"), len("value"), len("target")
	for _, r := range rows {
		wName, wVal, wTarget = max(wName, len([]rune(r.name))), max(wVal, len([]rune(r.value))), max(wTarget, len([]rune(r.target)))
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len([]rune(s))) }
	fmt.Printf("| %s | %s | %s | %s |\n", pad("measure", wName), pad("value", wVal), pad("target", wTarget), "met ")
	fmt.Printf("|%s|%s|%s|%s|\n", strings.Repeat("-", wName+2), strings.Repeat("-", wVal+2), strings.Repeat("-", wTarget+2), "------")
	for _, r := range rows {
		met := "    "
		if r.pass != nil {
			met = map[bool]string{true: "yes ", false: "no  "}[*r.pass]
		}
		fmt.Printf("| %s | %s | %s | %s |\n", pad(r.name, wName), pad(r.value, wVal), pad(r.target, wTarget), met)
	}
}

// loadAverage is the 1, 5 and 15 minute load averages: the machine may be
// shared, and other work moves the numbers.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}

func newKeys() (secret, key string, keys *seal.Keyring, err error) {
	raw := make([]byte, 24)
	if _, err = rand.Read(raw); err != nil {
		return "", "", nil, err
	}
	secret = "whsec_" + base64.StdEncoding.EncodeToString(raw)
	k := make([]byte, seal.KeySize)
	if _, err = rand.Read(k); err != nil {
		return "", "", nil, err
	}
	keys, err = seal.NewKeyring(k)
	return secret, base64.StdEncoding.EncodeToString(k), keys, err
}

// workload is what seed created.
type workload struct {
	project string
	// healthy and blackholed are workflow_definitions ids whose rules alert
	// the healthy receiver and the blackhole.
	healthy, blackholed string
	// load is the pool the workload's UPDATEs go through (appLoad).
	load *pgxpool.Pool
}

// loader is the pool for the workload's UPDATEs: w.load, or pool where
// there is none.
func (w workload) loader(pool *pgxpool.Pool) *pgxpool.Pool {
	if w.load != nil {
		return w.load
	}
	return pool
}

func seed(ctx context.Context, pool *pgxpool.Pool, keys *seal.Keyring, secret, healthyURL, holeURL string) (workload, error) {
	var w workload
	if err := pool.QueryRow(ctx, `insert into projects (owner, name) values (gen_random_uuid(), 'bench') returning id`).Scan(&w.project); err != nil {
		return w, err
	}
	for _, wf := range []struct {
		slug, url string
		id        *string
	}{{"healthy", healthyURL, &w.healthy}, {"blackholed", holeURL, &w.blackholed}} {
		if err := pool.QueryRow(ctx, `insert into workflow_definitions (project_id, slug, version, definition, name)
			values ($1, $2, 1, '{}', $2) returning id`, w.project, wf.slug).Scan(wf.id); err != nil {
			return w, err
		}
		u, err := keys.Seal(wf.url)
		if err != nil {
			return w, err
		}
		s, err := keys.Seal(secret)
		if err != nil {
			return w, err
		}
		if _, err := pool.Exec(ctx, `insert into alert_configs (project_id, workflow_slug, name, events, webhook_url, signing_secrets)
			values ($1, $2, $2, '{failed}', $3, array[$4])`, w.project, wf.slug, u, s); err != nil {
			return w, err
		}
	}
	return w, nil
}

// addRules inserts n more rules, sealed like real ones, for workflows of
// other projects (so they are cached but never match the benchmark's runs).
func addRules(ctx context.Context, pool *pgxpool.Pool, keys *seal.Keyring, secret, project string, n int) error {
	const per = 5000
	for i := 0; i < n; i += per {
		k := min(per, n-i)
		urls, secrets := make([]string, k), make([]string, k)
		for j := range k {
			u, err := keys.Seal(fmt.Sprintf("https://hooks.example.com/rule/%d/{{.RunID}}", i+j))
			if err != nil {
				return err
			}
			s, err := keys.Seal(secret)
			if err != nil {
				return err
			}
			urls[j], secrets[j] = u, s
		}
		if _, err := pool.Exec(ctx, `insert into alert_configs (project_id, workflow_slug, name, events, webhook_url, signing_secrets)
			select $1, 'other-' || (($2::int + g) % 997), 'rule ' || ($2::int + g), '{failed}', u, array[s]
			from unnest($3::text[], $4::text[]) with ordinality as t(u, s, g)`, project, i, urls, secrets); err != nil {
			return err
		}
	}
	return nil
}

func daemonEnv(si *standin.StandIn, key string) []string {
	return append(os.Environ(),
		"MESHHOOK_ALERTS_SUPABASE_URL="+si.URL,
		"MESHHOOK_ALERTS_SUPABASE_SERVICE_ROLE_KEY="+si.ServiceRoleKey,
		"MESHHOOK_ALERTS_SENDER_ALLOW_INSECURE_HTTP=true",
		"MESHHOOK_ALERTS_SENDER_ALLOWED_NETWORKS=127.0.0.0/8",
		"MESHHOOK_ALERTS_SECRETS_ENCRYPTION_KEY="+key,
		"MESHHOOK_ALERTS_LOG_LEVEL=warn",
		"MESHHOOK_ALERTS_HTTP_PPROF="+strconv.FormatBool(*flagProfile != "" || *flagHeapProf != ""),
	)
}

// profile writes a CPU profile of the daemon over d to path.
func (d *daemon) profile(ctx context.Context, path string, dur time.Duration) error {
	return d.fetchProfile(ctx, path, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(dur.Seconds())))
}

// fetchProfile writes the daemon's pprof endpoint at ref (a path and query)
// to path.
func (d *daemon) fetchProfile(ctx context.Context, path, ref string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.addr+ref, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", ref, res.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// daemon is the daemon process.
type daemon struct {
	cmd    *exec.Cmd
	addr   string // operational listener
	key    string // service-role key: the profiling endpoints want it
	exited chan error
	once   sync.Once
}

func startDaemon(ctx context.Context, bin string, env []string) (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	d := &daemon{addr: "127.0.0.1:" + strconv.Itoa(port), exited: make(chan error, 1)}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "MESHHOOK_ALERTS_SUPABASE_SERVICE_ROLE_KEY="); ok {
			d.key = v
		}
	}
	d.cmd = exec.Command(bin)
	d.cmd.Env = append(env, "MESHHOOK_ALERTS_HTTP_LISTEN="+d.addr)
	logs, err := d.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(logs)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if *flagKeep {
				fmt.Fprintln(os.Stderr, "  daemon | "+sc.Text())
			}
		}
	}()
	go func() { d.exited <- d.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := d.metrics(ctx); err == nil {
			return d, nil
		}
		select {
		case err := <-d.exited:
			return nil, fmt.Errorf("daemon exited: %v (run with -v to see its log)", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, errors.New("daemon's operational endpoints did not come up")
		}
	}
}

func (d *daemon) stop() {
	d.once.Do(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	})
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (d *daemon) metrics(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.addr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/metrics answered %d", res.StatusCode)
	}
	return string(b), nil
}

// waitMetric waits until the gauge or counter name satisfies ok.
func (d *daemon) waitMetric(ctx context.Context, name string, ok func(float64) bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		text, err := d.metrics(ctx)
		if err == nil {
			if v, found := metricValue(text, name); found && ok(v) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", name)
		}
		select {
		case err := <-d.exited:
			return fmt.Errorf("daemon exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (d *daemon) histogram(ctx context.Context, name string) (histogram, error) {
	text, err := d.metrics(ctx)
	if err != nil {
		return histogram{}, err
	}
	return parseHistogram(text, name)
}

// cpuUse measures the CPU each side of the pipeline uses during a phase:
// the daemon, this process (the stand-in, the receivers and the load
// generator) and PostgreSQL.
type cpuUse struct {
	daemonPID      int
	daemon0, self0 time.Duration
	pg             *benchstat.PostgresCPU
}

func startCPU(ctx context.Context, pool *pgxpool.Pool, d *daemon) *cpuUse {
	c := &cpuUse{daemonPID: d.cmd.Process.Pid, self0: benchstat.SelfCPU()}
	c.daemon0, _ = benchstat.ProcessCPU(c.daemonPID)
	if pg, err := benchstat.NewPostgresCPU(ctx, pool); err == nil {
		c.pg = pg
	} else {
		say("PostgreSQL CPU unavailable: %v", err)
	}
	return c
}

// perAlert formats the CPU used since start per alert, for n alerts.
func (c *cpuUse) perAlert(n int) string {
	dm, _ := benchstat.ProcessCPU(c.daemonPID)
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d.Microseconds())/float64(n)) }
	pg := "n/a"
	if c.pg != nil {
		pg = us(c.pg.Since())
	}
	return us(dm-c.daemon0) + " / " + us(benchstat.SelfCPU()-c.self0) + " / " + pg + " µs"
}

// since is the CPU the daemon and PostgreSQL used since start (PostgreSQL:
// 0 when it could not be measured).
func (c *cpuUse) since() (daemon, pg time.Duration) {
	dm, _ := benchstat.ProcessCPU(c.daemonPID)
	if c.pg != nil {
		pg = c.pg.Since()
	}
	return dm - c.daemon0, pg
}

// peakMiB formats the daemon's peak RSS.
func peakMiB(d *daemon) string {
	b, err := d.peakRSS()
	if err != nil {
		return "n/a: " + err.Error()
	}
	return mib(b)
}

// pgPerAlert formats PostgreSQL's CPU since start per alert by process
// kind, for n alerts.
func (c *cpuUse) pgPerAlert(n int) string {
	if c.pg == nil {
		return "n/a"
	}
	return benchstat.PerUnitByKind(c.pg.SinceByKind(), n)
}

// waitQuiet waits until none of the named counters has moved for quiet (at
// most timeout): the daemon has read every change sent to it and is not in
// the middle of a reload.
func (d *daemon) waitQuiet(ctx context.Context, names []string, quiet, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last []float64
	since := time.Now()
	for {
		text, err := d.metrics(ctx)
		if err != nil {
			return err
		}
		cur := make([]float64, len(names))
		for i, n := range names {
			cur[i], _ = metricValue(text, n)
		}
		if !slices.Equal(cur, last) {
			last, since = cur, time.Now()
		} else if time.Since(since) >= quiet {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still moving after %s", strings.Join(names, ", "), timeout)
		}
		select {
		case err := <-d.exited:
			return fmt.Errorf("daemon exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// busyCounters move while the daemon reads changes, catches up, reloads
// its rules or delivers.
var busyCounters = []string{"meshhook_alerts_realtime_frames_received_total", "meshhook_alerts_engine_rule_loads_total",
	"meshhook_alerts_engine_changes_total", "meshhook_alerts_engine_catchups_total", "meshhook_alerts_sender_write_rows_total"}

// heapReport writes the daemon's heap profile to path and prints its heap
// figures, labelled with when they were taken.
func (d *daemon) heapReport(ctx context.Context, when, path string) error {
	if err := d.fetchProfile(ctx, path, "/debug/pprof/heap"); err != nil {
		return err
	}
	text, err := d.metrics(ctx)
	if err != nil {
		return err
	}
	var figures []string
	for _, m := range []string{"heap_alloc", "heap_inuse", "heap_idle", "heap_released", "stack_inuse", "sys"} {
		v, _ := metricValue(text, "go_memstats_"+m+"_bytes")
		figures = append(figures, m+" "+mib(int64(v)))
	}
	say("memory, %s: %s (heap profile in %s)", when, strings.Join(figures, ", "), path)
	return nil
}

// settledRSS is the daemon's resident set once it has settled: sampled
// every second until three samples in a row are within 2 % of each other
// (start-up reloads its rules once Realtime confirms the subscription, and
// frees what that load left), at most for a minute.
func (d *daemon) settledRSS(ctx context.Context) (int64, error) {
	var last []int64
	deadline := time.Now().Add(time.Minute)
	for {
		v, err := d.rss()
		if err != nil {
			return 0, err
		}
		last = append(last, v)
		if n := len(last); n >= 3 {
			lo, hi := min(last[n-1], last[n-2], last[n-3]), max(last[n-1], last[n-2], last[n-3])
			if float64(hi-lo) <= 0.02*float64(hi) || time.Now().After(deadline) {
				return v, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// rss is the daemon's resident set size in bytes.
func (d *daemon) rss() (int64, error) { return d.status("VmRSS") }

// peakRSS is the daemon's highest resident set size so far, in bytes.
func (d *daemon) peakRSS() (int64, error) { return d.status("VmHWM") }

// status reads a size field (in kB) of the daemon's /proc status, in bytes.
func (d *daemon) status(field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("%s not found", field)
}

func waitSubscribed(ctx context.Context, si *standin.StandIn) error {
	deadline := time.Now().Add(60 * time.Second)
	for len(si.Realtime.SubscribedTopics()) < 2 {
		if time.Now().After(deadline) {
			return errors.New("the daemon did not subscribe to Realtime")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// newRuns inserts n running runs of workflow wf and returns their ids.
func newRuns(ctx context.Context, pool *pgxpool.Pool, project, wf string, n int) ([]string, error) {
	rows, err := pool.Query(ctx, `insert into workflow_runs (project_id, workflow_id, status, started_at)
		select $1, $2, 'running', now() from generate_series(1, $3) returning id::text`, project, wf, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make([]string, 0, n)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// drive fails runs one transaction each at rate per second for d; every
// holeEvery-th run (0: none) belongs to the blackholed workflow. It returns
// the commit → receipt latencies of the healthy alerts, where commit is this
// process's clock as soon as PostgreSQL acknowledged the COMMIT.
func drive(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, w workload, rate int, d time.Duration, holeEvery int) ([]time.Duration, error) {
	return driveFrom(ctx, pool, rcv, w, rate, d, holeEvery, nil)
}

// driveFrom is drive that calls started (unless nil) just before the first
// update, once the runs exist.
func driveFrom(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, w workload, rate int, d time.Duration, holeEvery int, started func()) ([]time.Duration, error) {
	n := rate * int(d/time.Second)
	healthy, err := newRuns(ctx, pool, w.project, w.healthy, n)
	if err != nil {
		return nil, err
	}
	var holed []string
	if holeEvery > 0 {
		if holed, err = newRuns(ctx, pool, w.project, w.blackholed, n/holeEvery+1); err != nil {
			return nil, err
		}
	}
	time.Sleep(500 * time.Millisecond) // the inserts' changes are handled before the clock starts
	if started != nil {
		started()
	}
	want := map[string]bool{}
	committed := make(map[string]time.Time, n)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	hi, ho := 0, 0
	for i := range n {
		id, hole := "", holeEvery > 0 && i%holeEvery == holeEvery-1
		if hole {
			id, ho = holed[ho], ho+1
		} else {
			id, hi = healthy[hi], hi+1
		}
		if _, err := w.loader(pool).Exec(ctx, `update workflow_runs set status = 'failed', finished_at = now() where id = $1`, id); err != nil {
			return nil, err
		}
		if !hole {
			committed[id], want[id] = time.Now(), true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	got, err := rcv.waitRuns(ctx, want, 60*time.Second)
	if err != nil {
		return nil, err
	}
	lat := make([]time.Duration, 0, len(got))
	for id, g := range got {
		lat = append(lat, max(g.receivedAt.Sub(committed[id]), 0))
	}
	return lat, nil
}

// quiesce waits until the pipeline is idle: no alert pending or being
// delivered, and three probe runs in a row alerted within 50 ms of their
// commit, plus the longest the stand-in's Realtime waits for an idle poll
// (so the stand-in's logical decoding and the daemon have worked off any
// backlog of the previous phase).
func quiesce(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, w workload) error {
	if err := settle(ctx, pool); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for fast := 0; fast < 3; {
		if time.Now().After(deadline) {
			return errors.New("the pipeline did not become idle within 2 minutes")
		}
		lat, err := drive(ctx, pool, rcv, w, 1, time.Second, 0)
		if err != nil {
			return err
		}
		if len(lat) == 1 && lat[0] <= 50*time.Millisecond+maxPollWait(rtOpts) {
			fast++
		} else {
			fast = 0
		}
	}
	return nil
}

// settle waits until no alert is pending or being delivered: every alert
// of a phase has its final row, and the next phase starts from a quiet
// daemon.
func settle(ctx context.Context, pool *pgxpool.Pool) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var open int
		if err := pool.QueryRow(ctx, `select count(*) from alert_logs where status in ('pending', 'delivering')`).Scan(&open); err != nil {
			return err
		}
		if open == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d alerts still pending or delivering after 2 minutes", open)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// burst fails n runs in one transaction and returns the time from its
// commit (acknowledged to this process) until every alert was received and
// until every alert was logged succeeded. Logging times are the rows'
// updated_at (the start of the transaction that marked them succeeded),
// read once at the end: polling alert_logs while the burst runs would take
// CPU from the pipeline it measures. started is called just before the
// update, after the runs were created and the pipeline went quiet.
func burst(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, w workload, n int, started func()) (received, logged time.Duration, err error) {
	ids, err := newRuns(ctx, pool, w.project, w.healthy, n)
	if err != nil {
		return 0, 0, err
	}
	if err := quiesce(ctx, pool, rcv, w); err != nil {
		return 0, 0, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	started()
	if _, err := w.loader(pool).Exec(ctx, `update workflow_runs set status = 'failed', finished_at = now() where id = any($1::uuid[])`, ids); err != nil {
		return 0, 0, err
	}
	commit := time.Now()
	got, err := rcv.waitRuns(ctx, want, 2*time.Minute)
	if err != nil {
		return 0, 0, err
	}
	last := commit
	for _, g := range got {
		if g.receivedAt.After(last) {
			last = g.receivedAt
		}
	}
	if err := settle(ctx, pool); err != nil {
		return 0, 0, err
	}
	var done int
	var lastLogged time.Time
	if err := pool.QueryRow(ctx, `select count(*), coalesce(max(updated_at), now()) from alert_logs
		where status = 'succeeded' and run_id = any($1::text[])`, ids).Scan(&done, &lastLogged); err != nil {
		return 0, 0, err
	}
	if done != n {
		return 0, 0, fmt.Errorf("burst: %d of %d alerts logged succeeded", done, n)
	}
	return last.Sub(commit), lastLogged.Sub(commit), nil
}

// saturate fails n runs in transactions of batch as fast as PostgreSQL
// takes them and returns alerts received, and logged succeeded, per second
// over the middle 80 % of each. Logging times are the rows' updated_at (set
// by a trigger to the start of the transaction that marked them succeeded),
// read once at the end so that polling does not compete with the daemon.
func saturate(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, w workload, n, batch int, started func()) (received, logged float64, err error) {
	ids, err := newRuns(ctx, pool, w.project, w.healthy, n)
	if err != nil {
		return 0, 0, err
	}
	if err := quiesce(ctx, pool, rcv, w); err != nil {
		return 0, 0, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	started()
	for i := 0; i < n; i += batch {
		if _, err := pool.Exec(ctx, `update workflow_runs set status = 'failed', finished_at = now() where id = any($1::uuid[])`,
			ids[i:min(i+batch, n)]); err != nil {
			return 0, 0, err
		}
	}
	got, err := rcv.waitRuns(ctx, want, 5*time.Minute)
	if err != nil {
		return 0, 0, err
	}
	times := make([]time.Time, 0, len(got))
	for _, g := range got {
		times = append(times, g.receivedAt)
	}
	if err := settle(ctx, pool); err != nil {
		return 0, 0, err
	}
	rows, err := pool.Query(ctx, `select updated_at from alert_logs where status = 'succeeded' and run_id = any($1::text[])`, ids)
	if err != nil {
		return 0, 0, err
	}
	var done []time.Time
	for rows.Next() {
		var t time.Time
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return 0, 0, err
		}
		done = append(done, t)
	}
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	if len(done) != n {
		return 0, 0, fmt.Errorf("saturation: %d of %d alerts logged succeeded", len(done), n)
	}
	return middleRate(times), middleRate(done), nil
}

// middleRate is the arrival rate over the middle 80 % of times.
func middleRate(times []time.Time) float64 {
	if len(times) < 10 {
		return 0
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	lo, hi := len(times)/10, len(times)*9/10
	span := times[hi].Sub(times[lo])
	if span <= 0 {
		return 0
	}
	return float64(hi-lo) / span.Seconds()
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func ms(d time.Duration) string   { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1e3) }
func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
func mib(b int64) string          { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
