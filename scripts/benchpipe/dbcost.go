package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meshhook/meshhook-alerts/internal/harness/benchstat"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
)

var flagIdle = flag.Duration("idle", 20*time.Second, "duration of the idle phase")

var flagStatements = flag.Int("statements", 8, "statements to rank by total time (pg_stat_statements) in the steady and burst phases; 0: none")

// appLoad is the application_name of the load generator's connections (the
// workload's UPDATEs of workflow_runs).
const appLoad = "benchpipe_load"

// openLoadPool opens the pool the load's UPDATEs go through, named appLoad
// so that PostgreSQL's CPU for them can be told apart.
func openLoadPool(ctx context.Context, dbURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = appLoad
	cfg.MaxConns = 2
	return pgxpool.NewWithConfig(ctx, cfg)
}

// dbCost measures what a phase costs the database per alert: PostgreSQL's
// CPU split by whose work it did, transactions, WAL and the statements
// that took the most time, and the daemon's CPU beside it.
type dbCost struct {
	db        *pgxpool.Pool
	rc        *restCounter
	paths0    map[string]int64
	pg        *benchstat.PostgresCPU
	daemonPID int
	daemon0   time.Duration
	before    benchstat.DBCounters
	err       error
}

// startDBCost starts measuring. Its errors surface in rows.
func startDBCost(ctx context.Context, db *pgxpool.Pool, d *daemon, rc *restCounter) *dbCost {
	c := &dbCost{db: db, rc: rc, paths0: rc.paths(), daemonPID: d.cmd.Process.Pid}
	if *flagStatements > 0 {
		if err := benchstat.ResetStatements(ctx, db); err != nil {
			say("pg_stat_statements: %v", err)
		}
	}
	if c.before, c.err = benchstat.ReadDBCounters(ctx, db); c.err != nil {
		return c
	}
	if c.pg, c.err = benchstat.NewPostgresCPU(ctx, db); c.err != nil {
		return c
	}
	c.daemon0, _ = benchstat.ProcessCPU(c.daemonPID)
	return c
}

// rows ends the measurement and reports it per unit (n units: alerts, or
// seconds of an idle phase), each row named after the phase. loadXacts is the transactions the load itself
// committed (its UPDATEs), to tell the pipeline's own apart.
func (c *dbCost) rows(ctx context.Context, phaseName, unit string, n, loadXacts int) []row {
	if c.err != nil {
		return []row{{phaseName + ", database cost per alert", "n/a: " + c.err.Error(), "", nil}}
	}
	// Backends publish their transaction and WAL counters once they go
	// idle (at most once a second): give them the second.
	time.Sleep(1100 * time.Millisecond)
	cpu := c.pg.SinceByApp()
	dm, _ := benchstat.ProcessCPU(c.daemonPID)
	after, err := benchstat.ReadDBCounters(ctx, c.db)
	if err != nil {
		return []row{{phaseName + ", database cost per alert", "n/a: " + err.Error(), "", nil}}
	}
	delta := after.Sub(c.before)
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(n, 1)) }

	load := cpu[benchstat.AppPrefix+appLoad]
	rt := cpu[benchstat.KindWALSender] + cpu[benchstat.AppPrefix+standin.AppRealtime]
	rest := cpu[benchstat.AppPrefix+standin.AppREST]
	bg := cpu[benchstat.KindAutovacuum] + cpu[benchstat.KindExited] + cpu[benchstat.KindOther]
	harness := benchstat.Total(cpu) - load - rt - rest - bg
	rows := []row{
		{phaseName + ", PostgreSQL CPU per " + unit + ": daemon's REST / Realtime decoding / load's UPDATE / background / harness",
			fmt.Sprintf("%.0f / %.0f / %.0f / %.0f / %.0f µs", per(rest), per(rt), per(load), per(bg), per(harness)), "", nil},
		{phaseName + ", PostgreSQL CPU per " + unit + ", all", fmt.Sprintf("%.0f µs", per(benchstat.Total(cpu))), "", nil},
		{phaseName + ", daemon CPU per " + unit, fmt.Sprintf("%.0f µs", per(dm-c.daemon0)), "", nil},
		{phaseName + ", transactions per " + unit + ": all / less the load's / that wrote",
			fmt.Sprintf("%.2f / %.2f / %.2f", float64(delta.Xacts)/float64(n), float64(delta.Xacts-int64(loadXacts))/float64(n),
				float64(delta.XIDs)/float64(n)), "", nil},
	}
	rows = append(rows, row{phaseName + ", REST calls per " + unit + " by method and path", c.restCalls(n), "", nil})
	wal, werr := benchstat.ReadWAL(ctx, c.db, c.before.LSN, after.LSN)
	walName := phaseName + ", WAL per " + unit + ": records / bytes (fsync=off, full_page_writes=off: no full-page images)"
	if werr != nil {
		rows = append(rows, row{walName, fmt.Sprintf("%.1f (pg_stat_wal) / %.0f B (%v)",
			float64(delta.WALRecords)/float64(n), float64(delta.LSN)/float64(n), werr), "", nil})
	} else {
		var kinds []string
		for _, k := range wal.ByKind {
			if len(kinds) == 6 {
				break
			}
			kinds = append(kinds, fmt.Sprintf("%s %.1f/%.0f B", k.Name, float64(k.Records)/float64(n), float64(k.Bytes)/float64(n)))
		}
		rows = append(rows,
			row{walName, fmt.Sprintf("%.1f / %.0f B", float64(wal.Records)/float64(n), float64(delta.LSN)/float64(n)), "", nil},
			row{phaseName + ", WAL per " + unit + " by kind: records/bytes", strings.Join(kinds, ", "), "", nil})
	}
	if *flagStatements > 0 {
		sts, err := benchstat.TopStatements(ctx, c.db, *flagStatements+4)
		if err != nil {
			rows = append(rows, row{phaseName + ", statements", "n/a: " + err.Error(), "", nil})
		}
		// The harness's own reads (this measurement, settling) are not the
		// pipeline's.
		sts = slices.DeleteFunc(sts, func(s benchstat.Statement) bool {
			return strings.Contains(s.Query, "pg_stat_") || strings.Contains(s.Query, "pg_get_wal_stats") ||
				strings.Contains(s.Query, "count(*) from alert_logs where status in")
		})
		for i, s := range sts[:min(len(sts), *flagStatements)] {
			lvl := "top"
			if !s.TopLevel {
				lvl = "nested"
			}
			rows = append(rows, row{fmt.Sprintf("%s, statement #%d by time (%s): µs, calls and WAL B per %s", phaseName, i+1, lvl, unit),
				fmt.Sprintf("%.1f, %.2f, %.0f: %s", s.TotalMs*1000/float64(n), float64(s.Calls)/float64(n), float64(s.WALBytes)/float64(n),
					benchstat.ShortQuery(s.Query, 90)), "", nil})
		}
	}
	return rows
}

// restCalls formats the REST requests made since the start per unit (n
// units), the most frequent first: "0.24 POST rpc/alert_report_deliveries,
// …".
func (c *dbCost) restCalls(n int) string {
	type pc struct {
		path string
		n    int64
	}
	var all []pc
	var total int64
	for p, k := range c.rc.paths() {
		if d := k - c.paths0[p]; d > 0 {
			all = append(all, pc{p, d})
			total += d
		}
	}
	slices.SortFunc(all, func(a, b pc) int {
		if a.n != b.n {
			return int(b.n - a.n)
		}
		return strings.Compare(a.path, b.path)
	})
	parts := []string{fmt.Sprintf("%.2f in all", float64(total)/float64(max(n, 1)))}
	for _, p := range all[:min(len(all), 6)] {
		parts = append(parts, fmt.Sprintf("%.2f %s", float64(p.n)/float64(max(n, 1)), p.path))
	}
	return strings.Join(parts, ", ")
}

// idlePhase measures what the daemon costs the database with nothing to
// deliver (reconciliation passes, lease polls, catch-up reads), per second.
func idlePhase(ctx context.Context, si *standin.StandIn, rcv *receiver, w workload, d *daemon, rc *restCounter) ([]row, error) {
	if err := quiesce(ctx, si.Pool, rcv, w); err != nil {
		return nil, err
	}
	say("idle: %s without changes", *flagIdle)
	cost := startDBCost(ctx, si.Pool, d, rc)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(*flagIdle):
	}
	return cost.rows(ctx, "idle", "second", max(int(flagIdle.Seconds()), 1), 0), nil
}
