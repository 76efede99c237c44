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

	"github.com/meshhook/meshhook-alerts/internal/harness/conformance"
	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// TestConformancePostgrestJS runs scripts/conformance/postgrest.mjs, which
// drives the REST stand-in with the official @supabase/postgrest-js client
// and checks that every answer is what Supabase gives. It needs Node.js and
// the conformance node_modules (scripts/test.sh installs them); without them
// the test fails rather than skips.
func TestConformancePostgrestJS(t *testing.T) {
	node, confDir := conformance.Node(t, "@supabase/postgrest-js")

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
