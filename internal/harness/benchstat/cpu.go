package benchstat

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clockTick is the unit of /proc/<pid>/stat CPU times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// SelfCPU is the CPU time (user and system) this process has used.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcessCPU is the CPU time (user and system) process pid has used, read
// from /proc; false if it cannot be read.
func ProcessCPU(pid int) (time.Duration, bool) {
	s, ok := procStat(pid)
	return time.Duration(s.ticks) * clockTick, ok
}

// PostgresCPU measures the CPU time a PostgreSQL server uses: its
// postmaster and every child process (backends, WAL senders, background
// workers), including children that exit meanwhile (autovacuum workers,
// closed connections), whose time the postmaster collects when it reaps
// them.
type PostgresCPU struct {
	master int
	db     *pgxpool.Pool // reads pg_stat_activity for SinceByApp
	before snapshot
}

// snapshot is the server's CPU clock ticks at one moment.
type snapshot struct {
	reaped int64 // the postmaster's cutime+cstime: every child it has reaped
	procs  map[int]pgProc
	apps   map[int]string // client backends' application_name, by pid
}

type pgProc struct {
	kind  string
	ticks int64
}

// Process kinds of SinceByKind.
const (
	KindBackend    = "backends"   // client connections
	KindWALSender  = "walsender"  // replication connections (logical decoding)
	KindAutovacuum = "autovacuum" // autovacuum launcher and workers
	KindExited     = "exited"     // children that exited during the measurement
	KindOther      = "other"      // postmaster, checkpointer, WAL writer, …
)

// NewPostgresCPU starts measuring the server db is connected to (which must
// run on this machine), from now.
func NewPostgresCPU(ctx context.Context, db *pgxpool.Pool) (*PostgresCPU, error) {
	var dataDir string
	if err := db.QueryRow(ctx, `select setting from pg_settings where name = 'data_directory'`).Scan(&dataDir); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return nil, err
	}
	master, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return nil, fmt.Errorf("postmaster.pid: %w", err)
	}
	p := &PostgresCPU{master: master, db: db}
	p.Reset()
	return p, nil
}

// Reset starts the measurement again from now.
func (p *PostgresCPU) Reset() { p.before = p.snapshot() }

// Since is the CPU time the server used since the last Reset.
func (p *PostgresCPU) Since() time.Duration { return Total(p.SinceByKind()) }

// Total is the sum of a SinceByKind result.
func Total(kinds map[string]time.Duration) time.Duration {
	var n time.Duration
	for _, d := range kinds {
		n += d
	}
	return n
}

// SinceByKind is Since split by process kind (KindBackend, …). A child
// that exited meanwhile counts under KindExited for its time since the
// Reset (or its whole life, if it started after it).
func (p *PostgresCPU) SinceByKind() map[string]time.Duration {
	return p.before.until(p.snapshot())
}

// AppPrefix starts the SinceByApp key of client backends:
// "backend:" + application_name.
const AppPrefix = "backend:"

// SinceByApp is SinceByKind with client backends split by the
// application_name pg_stat_activity gave them at the Reset or now
// (AppPrefix + name; "backend:" alone for none): which client's work the
// server did. A backend that connected and exited meanwhile counts under
// KindExited.
func (p *PostgresCPU) SinceByApp() map[string]time.Duration {
	return p.before.untilByApp(p.snapshot())
}

// untilByApp is until with client backends split by application_name.
func (s snapshot) untilByApp(now snapshot) map[string]time.Duration {
	return s.untilBy(now, func(pid int, pr pgProc) string {
		if pr.kind != KindBackend {
			return pr.kind
		}
		app, ok := now.apps[pid]
		if !ok {
			app = s.apps[pid]
		}
		return AppPrefix + app
	})
}

// until attributes the ticks between two snapshots to process kinds.
func (s snapshot) until(now snapshot) map[string]time.Duration {
	return s.untilBy(now, func(_ int, pr pgProc) string { return pr.kind })
}

// untilBy attributes the ticks between two snapshots to the labels of
// label, and reaped children's to KindExited.
func (s snapshot) untilBy(now snapshot, label func(pid int, pr pgProc) string) map[string]time.Duration {
	out := map[string]time.Duration{}
	for pid, pr := range now.procs {
		out[label(pid, pr)] += time.Duration(pr.ticks-s.procs[pid].ticks) * clockTick
	}
	// Reaped children: their whole lives, less what the earlier snapshot
	// had already seen of those alive then.
	exited := now.reaped - s.reaped
	for pid, pr := range s.procs {
		if _, alive := now.procs[pid]; !alive {
			exited -= pr.ticks
		}
	}
	if exited > 0 {
		out[KindExited] += time.Duration(exited) * clockTick
	}
	return out
}

// snapshot reads the ticks of the postmaster and each child.
func (p *PostgresCPU) snapshot() snapshot {
	snap := snapshot{procs: map[int]pgProc{}}
	if s, ok := procStat(p.master); ok {
		snap.reaped = s.childTicks
		snap.procs[p.master] = pgProc{kind: KindOther, ticks: s.ticks}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return snap
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, ok := procStat(pid); ok && s.ppid == p.master {
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			snap.procs[pid] = pgProc{kind: pgKind(string(cmd)), ticks: s.ticks}
		}
	}
	if p.db != nil {
		snap.apps = backendApps(p.db)
	}
	return snap
}

// backendApps maps the server's client backends to their application_name;
// nil if pg_stat_activity cannot be read.
func backendApps(db *pgxpool.Pool) map[int]string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := db.Query(ctx, `select pid, application_name from pg_stat_activity where backend_type = 'client backend'`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	apps := map[int]string{}
	for rows.Next() {
		var pid int
		var app string
		if rows.Scan(&pid, &app) == nil {
			apps[pid] = app
		}
	}
	return apps
}

// pgKind classifies a server child by its process title ("postgres:
// walsender …", "postgres: autovacuum worker …", "postgres: user db host
// state" for a backend).
func pgKind(title string) string {
	title = strings.TrimPrefix(strings.TrimRight(title, "\x00"), "postgres: ")
	switch {
	case strings.HasPrefix(title, "walsender"):
		return KindWALSender
	case strings.HasPrefix(title, "autovacuum"):
		return KindAutovacuum
	case strings.HasPrefix(title, "checkpointer"), strings.HasPrefix(title, "background writer"),
		strings.HasPrefix(title, "walwriter"), strings.HasPrefix(title, "logical replication launcher"),
		strings.HasPrefix(title, "logical replication worker"), strings.HasPrefix(title, "stats collector"),
		strings.HasPrefix(title, "archiver"), strings.HasPrefix(title, "startup"):
		return KindOther
	default:
		return KindBackend
	}
}

type stat struct {
	ppid       int
	ticks      int64 // user + system
	childTicks int64 // cutime + cstime: reaped children's user + system
}

func procStat(pid int) (stat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return stat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	cut, _ := strconv.ParseInt(f[13], 10, 64)
	cst, _ := strconv.ParseInt(f[14], 10, 64)
	return stat{ppid: ppid, ticks: ut + st, childTicks: cut + cst}, true
}

// PerUnitByKind formats a SinceByKind result per unit of work (n units), in
// microseconds: "backends 61, walsender 20, autovacuum 3, exited 2, other 1".
func PerUnitByKind(kinds map[string]time.Duration, n int) string {
	var parts []string
	for _, k := range []string{KindBackend, KindWALSender, KindAutovacuum, KindExited, KindOther} {
		if d, ok := kinds[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.1f", k, float64(d.Microseconds())/float64(max(n, 1))))
		}
	}
	return strings.Join(parts, ", ")
}
