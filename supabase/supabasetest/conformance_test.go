package supabasetest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/pgtest"
)

// TestConformancePostgrestJS runs scripts/conformance/postgrest.mjs, which
// drives the REST stand-in with the official @supabase/postgrest-js client
// and checks that every answer is what Supabase gives. It needs Node.js and
// the conformance node_modules (scripts/test.sh installs them); without them
// the test fails rather than skips.
func TestConformancePostgrestJS(t *testing.T) {
	root, err := pgtest.RepoRoot()
	require.NoError(t, err)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node (>= 20) is required for the postgrest-js conformance test and was not found in PATH: %v; "+
			"install Node.js and run scripts/test.sh (it runs `npm ci` in scripts/conformance)", err)
	}
	confDir := filepath.Join(root, "scripts", "conformance")
	if _, err := os.Stat(filepath.Join(confDir, "node_modules", "@supabase", "postgrest-js", "package.json")); err != nil {
		t.Fatalf("scripts/conformance/node_modules is missing @supabase/postgrest-js (%v); "+
			"run scripts/test.sh or `npm ci` in scripts/conformance", err)
	}

	e := newEnv(t)
	seedItems(e)
	seedProjects(e)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(confDir, "postgrest.mjs"))
	cmd.Dir = confDir
	cmd.Env = append(os.Environ(),
		"POSTGREST_URL="+e.base,
		"SERVICE_KEY="+pgtest.ServiceRoleKey(),
		"ANON_KEY="+pgtest.AnonKey(),
		"USER_TOKEN="+pgtest.UserToken(userA, time.Hour),
		"EXPIRED_TOKEN="+pgtest.UserToken(userA, -time.Hour),
		"FOREIGN_TOKEN="+signWith("another-project-secret", jwt.MapClaims{"role": "authenticated", "sub": userA}),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	out := strings.TrimSpace(stdout.String())
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "FAIL ") {
			t.Error(line)
		}
	}
	if runErr != nil || !strings.Contains(out, ", 0 failed") {
		t.Fatalf("postgrest.mjs failed: %v\nstdout:\n%s\nstderr:\n%s", runErr, out, stderr.String())
	}
	t.Log(out[strings.LastIndex(out, "\n")+1:])
}
