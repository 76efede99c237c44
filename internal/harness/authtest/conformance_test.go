package authtest_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/authtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/conformance"
)

// TestConformanceSupabaseJSAuth runs scripts/conformance/auth.mjs: the
// official @supabase/supabase-js signs the seeded user in with a password,
// reads the user, refreshes and signs out against the stand-in's Auth
// behind its gateway, with the publishable key, as the web UI does.
func TestConformanceSupabaseJSAuth(t *testing.T) {
	node, dir := conformance.Node(t, "@supabase/supabase-js")
	p := newProject(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "auth.mjs"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"SUPABASE_URL="+p.srv.URL,
		"PUBLISHABLE_KEY="+authtest.DefaultPublishableKey,
		"USER_ID="+userID,
		"EMAIL=Ada@example.com",
		"PASSWORD=correct horse",
	)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "auth.mjs:\n%s", out)
	require.Contains(t, string(out), "DONE 2 checks, 0 failed", "auth.mjs:\n%s", out)
	require.NotContains(t, string(out), "FAIL", "auth.mjs:\n%s", out)
	require.True(t, strings.HasSuffix(strings.TrimSpace(string(out)), "0 failed"), "%s", out)
}
