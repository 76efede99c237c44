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
// workers).
type PostgresCPU struct {
	master int
	before map[int]int64
}

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
	p := &PostgresCPU{master: master}
	p.Reset()
	return p, nil
}

// Reset starts the measurement again from now.
func (p *PostgresCPU) Reset() { p.before = p.ticks() }

// Since is the CPU time the server used since the last Reset, counting the
// whole time of processes started since then (new connections).
func (p *PostgresCPU) Since() time.Duration {
	var n int64
	for pid, t := range p.ticks() {
		n += t - p.before[pid]
	}
	return time.Duration(n) * clockTick
}

// ticks returns the CPU clock ticks of the postmaster and each child, by pid.
func (p *PostgresCPU) ticks() map[int]int64 {
	out := map[int]int64{}
	if s, ok := procStat(p.master); ok {
		out[p.master] = s.ticks
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, ok := procStat(pid); ok && s.ppid == p.master {
			out[pid] = s.ticks
		}
	}
	return out
}

type stat struct {
	ppid  int
	ticks int64 // user + system
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
	if len(f) < 13 {
		return stat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return stat{ppid: ppid, ticks: ut + st}, true
}
