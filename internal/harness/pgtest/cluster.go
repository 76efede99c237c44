// Package pgtest runs throwaway PostgreSQL clusters for tests and the demo,
// prepared the way a Supabase project is: API roles, the auth schema, the
// supabase_realtime publication, MeshHook's core tables and meshhook-alerts'
// own migrations.
//
// The server refuses to run as root, so when the process is root the cluster
// is created and started as the "postgres" operating-system user.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running throwaway PostgreSQL cluster listening on loopback.
type Cluster struct {
	dir    string // data directory parent; removed by Stop
	port   int
	bin    string
	cred   *syscall.Credential
	owned  bool   // false when the cluster came from an existing URL
	admin  string // superuser URL to the postgres database
	logf   func(format string, args ...any)
	logDir string
	reaper *exec.Cmd // stops the cluster if this process ends without Stop
}

// StartOptions tunes Start. The zero value is valid.
type StartOptions struct {
	// Port to listen on; 0 picks a free one.
	Port int
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
	// StatStatements preloads pg_stat_statements (shared_preload_libraries),
	// so that a database can `create extension pg_stat_statements` and rank
	// its statements; benchmarks set it. Off by default: it costs every
	// statement a little.
	StatStatements bool
}

// Start initialises and starts a new cluster in a temporary directory with
// wal_level=logical (the Realtime stand-in decodes the WAL) and durability
// switched off (the data is disposable).
func Start(ctx context.Context, opts StartOptions) (*Cluster, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, port: opts.Port, logf: opts.Logf, owned: true}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root needs a 'postgres' OS user to run the server: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if c.port == 0 {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
	}
	c.dir, err = os.MkdirTemp("", "meshhook-pg-")
	if err != nil {
		return nil, err
	}
	c.logDir = c.dir
	if err := c.chown(c.dir); err != nil {
		c.cleanup()
		return nil, err
	}
	data := filepath.Join(c.dir, "data")
	c.logf("pgtest: initdb %s", data)
	if err := c.run(ctx, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-sync"); err != nil {
		c.cleanup()
		return nil, err
	}
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
max_connections = 300
fsync = off
full_page_writes = off
shared_buffers = 64MB
log_min_messages = warning
`, c.port, c.dir)
	if opts.StatStatements {
		conf += "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n"
	}
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.cleanup()
		return nil, err
	}
	_, werr := f.WriteString(conf)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		c.cleanup()
		return nil, werr
	}
	c.logf("pgtest: starting on 127.0.0.1:%d", c.port)
	if err := c.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		logTail, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		c.cleanup()
		return nil, fmt.Errorf("%w\nserver log:\n%s", err, logTail)
	}
	c.admin = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	if err := c.startReaper(data); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

// reaperScript waits for process $1 to end, then stops the cluster in $3
// with pg_ctl ($2) and removes $4. It looks at /proc, not kill -0: when the
// process is root, the reaper runs as the postgres user and may not signal
// it.
const reaperScript = `while [ -d "/proc/$1" ]; do sleep 1; done
"$2" -D "$3" -m immediate -w stop >/dev/null 2>&1
rm -rf "$4"`

// startReaper starts a small shell that stops the cluster and removes its
// files once this process has ended, if Stop has not done so first. pg_ctl
// puts the server in a session of its own, so neither Ctrl-C nor the end
// of this process reaches it: without the reaper, a test binary killed by
// an interrupt, a timeout or a closed output (`scripts/test.sh | head`),
// or a demo killed with SIGKILL, would leave the server running. The
// reaper has a session of its own too, for the same reason.
func (c *Cluster) startReaper(data string) error {
	if _, err := os.Stat("/proc/self"); err != nil {
		return nil // no /proc (not Linux): Stop is the only cleanup
	}
	cmd := exec.Command("/bin/sh", "-c", reaperScript, "pgtest-reaper", strconv.Itoa(os.Getpid()),
		filepath.Join(c.bin, "pg_ctl"), data, c.dir)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: c.cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start the cluster's reaper: %w", err)
	}
	c.reaper = cmd
	return nil
}

// Attach uses an already running cluster (superuser URL). Stop leaves it running.
func Attach(adminURL string) (*Cluster, error) {
	u, err := url.Parse(adminURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("pgtest: bad cluster URL %q", redactURL(adminURL))
	}
	return &Cluster{admin: adminURL, logf: func(string, ...any) {}}, nil
}

// AdminURL is a superuser URL to the cluster's postgres database.
func (c *Cluster) AdminURL() string { return c.admin }

// DatabaseURL is a superuser URL to the named database.
func (c *Cluster) DatabaseURL(name string) string {
	u, _ := url.Parse(c.admin)
	u.Path = "/" + name
	return u.String()
}

// Stop shuts the cluster down and removes its files (only for clusters Start made).
func (c *Cluster) Stop() error {
	if !c.owned {
		return nil
	}
	if c.reaper != nil {
		_ = c.reaper.Process.Kill()
		_ = c.reaper.Wait()
		c.reaper = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.run(ctx, "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
	c.cleanup()
	return err
}

func (c *Cluster) cleanup() {
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	return os.Chown(path, int(c.cred.Uid), int(c.cred.Gid))
}

func (c *Cluster) run(ctx context.Context, tool string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, tool), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: %s %s: %w\n%s", tool, strings.Join(args, " "), err, out)
	}
	return nil
}

// CreateDatabase creates a database prepared like a Supabase project. With
// meshHook set it also holds MeshHook's core tables; migrations are
// meshhook-alerts' own and are applied last. It returns the superuser URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string, meshHook bool, migrations []Migration) (string, error) {
	if err := c.Exec(ctx, "postgres", "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	dbURL := c.DatabaseURL(name)
	if err := Prepare(ctx, dbURL, meshHook, migrations); err != nil {
		return "", err
	}
	return dbURL, nil
}

// CloneDatabase creates name as a copy of template (which must have no connections).
func (c *Cluster) CloneDatabase(ctx context.Context, name, template string) (string, error) {
	err := c.Exec(ctx, "postgres", fmt.Sprintf("create database %s template %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize()))
	if err != nil {
		return "", err
	}
	return c.DatabaseURL(name), nil
}

// DropDatabase drops a database, terminating its connections.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	return c.Exec(ctx, "postgres", fmt.Sprintf("drop database if exists %s with (force)", pgx.Identifier{name}.Sanitize()))
}

// Exec runs SQL as superuser in the named database.
func (c *Cluster) Exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, c.DatabaseURL(db))
	if err != nil {
		return fmt.Errorf("pgtest: connect %s: %w", db, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgtest: %s: %w", firstLine(sql), err)
	}
	return nil
}

// Migration is one SQL file to apply.
type Migration struct {
	Name string
	SQL  string
}

// Prepare applies the Supabase bootstrap, optionally MeshHook's core tables,
// then the given migrations in order, each in its own transaction.
func Prepare(ctx context.Context, dbURL string, meshHook bool, migrations []Migration) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(context.Background())
	steps, err := baseSQL(meshHook)
	if err != nil {
		return err
	}
	steps = append(steps, migrations...)
	for _, m := range steps {
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, m.SQL)
			return err
		}); err != nil {
			return fmt.Errorf("pgtest: apply %s: %w", m.Name, err)
		}
	}
	return nil
}

func baseSQL(meshHook bool) ([]Migration, error) {
	entries, err := sqlFS.ReadDir("sql")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var out []Migration
	for _, n := range names {
		if !meshHook && strings.Contains(n, "meshhook") {
			continue
		}
		b, err := sqlFS.ReadFile("sql/" + n)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Name: n, SQL: string(b)})
	}
	return out, nil
}

func findBinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return "", errors.New("pgtest: PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; install postgresql")
	}
	sort.Strings(matches)
	return filepath.Dir(matches[len(matches)-1]), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable>"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}
