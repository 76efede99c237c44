package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL names the environment variable holding the superuser URL of an
// already running cluster (wal_level=logical) that tests should use instead of
// starting their own. scripts/test.sh sets it so all packages share one.
const EnvURL = "MESHHOOK_TEST_PG_URL"

var (
	sharedOnce    sync.Once
	shared        *Cluster
	sharedErr     error
	templateOnce  sync.Once
	templateName  string
	templateErr   error
	dbSeq         atomic.Int64
	templateMutex sync.Mutex
)

// Main runs the tests of a package that uses Shared and stops the cluster afterwards.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		if templateName != "" {
			_ = shared.DropDatabase(context.Background(), templateName)
		}
		_ = shared.Stop()
	}
	os.Exit(code)
}

// Shared returns the process-wide test cluster, starting it on first use.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	sharedOnce.Do(func() {
		if u := os.Getenv(EnvURL); u != "" {
			shared, sharedErr = Attach(u)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared, sharedErr = Start(ctx, StartOptions{})
	})
	if sharedErr != nil {
		tb.Fatalf("pgtest: no PostgreSQL cluster: %v", sharedErr)
	}
	return shared
}

// DB is a fresh database in the shared cluster.
type DB struct {
	Name string
	URL  string // superuser URL
	Pool *pgxpool.Pool
}

// NewDatabase returns a new database prepared like a Supabase project with
// MeshHook's core tables and meshhook-alerts' migrations. It is dropped when
// the test ends.
func (c *Cluster) NewDatabase(tb testing.TB) *DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	templateOnce.Do(func() {
		migs, err := RepoMigrations()
		if err != nil {
			templateErr = err
			return
		}
		name := fmt.Sprintf("mh_template_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
		if _, err := c.CreateDatabase(ctx, name, true, migs); err != nil {
			templateErr = err
			return
		}
		templateName = name
	})
	if templateErr != nil {
		tb.Fatalf("pgtest: preparing template database: %v", templateErr)
	}
	name := fmt.Sprintf("mh_test_%d_%d", os.Getpid(), dbSeq.Add(1))
	// CREATE DATABASE ... TEMPLATE fails if another session is copying the
	// same template at that moment, so clones are made one at a time.
	templateMutex.Lock()
	dbURL, err := c.CloneDatabase(ctx, name, templateName)
	templateMutex.Unlock()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return c.open(tb, name, dbURL)
}

// NewBareDatabase returns a new database with only the Supabase bootstrap and
// the given migrations (no MeshHook tables): a plain Supabase project.
func (c *Cluster) NewBareDatabase(tb testing.TB, migrations []Migration) *DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := fmt.Sprintf("mh_bare_%d_%d", os.Getpid(), dbSeq.Add(1))
	dbURL, err := c.CreateDatabase(ctx, name, false, migrations)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return c.open(tb, name, dbURL)
}

func (c *Cluster) open(tb testing.TB, name, dbURL string) *DB {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		tb.Fatalf("pgtest: open %s: %v", name, err)
	}
	tb.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.DropDatabase(ctx, name); err != nil {
			tb.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	return &DB{Name: name, URL: dbURL, Pool: pool}
}

// RepoMigrations reads meshhook-alerts' migrations from supabase/migrations
// in the source tree, in file-name (timestamp) order.
func RepoMigrations() ([]Migration, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(root, "supabase", "migrations", "*.sql"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	out := make([]Migration, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Name: filepath.Base(f), SQL: string(b)})
	}
	return out, nil
}

// RepoRoot finds the meshhook-alerts source tree: upwards from the working
// directory, else from this file's location.
func RepoRoot() (string, error) {
	isRoot := func(dir string) bool {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		return err == nil && strings.Contains(string(b), "module github.com/meshhook/meshhook-alerts")
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			if isRoot(d) {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", fmt.Errorf("pgtest: cannot find the meshhook-alerts source tree (go.mod) from %v", starts)
}
