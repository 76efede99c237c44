package daemon

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/meshhook/meshhook-alerts"

// deps lists the module's packages that pkg reaches through its non-test
// imports, transitively.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+"/"+pkg).Output()
	require.NoError(t, err, "go list -deps %s", pkg)
	var mine []string
	for _, p := range strings.Fields(string(out)) {
		if p != module+"/"+pkg && strings.HasPrefix(p, module) {
			mine = append(mine, strings.TrimPrefix(strings.TrimPrefix(p, module), "/"))
		}
	}
	return mine
}

// TestLayering keeps the domain apart from its adapters: the engine
// (alerts), the sender, the Realtime client and the REST store know
// nothing of each other's packages, of the configuration or of the API;
// the daemon package translates configuration into their options and
// wires them together.
func TestLayering(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	forbidden := map[string][]string{
		"alerts":   {"sender", "supabase", "config", "api"},
		"sender":   {"alerts", "supabase", "realtime", "config", "api"},
		"realtime": {"alerts", "sender", "supabase", "config", "api"},
		"supabase": {"alerts", "sender", "realtime", "api"},
	}
	for pkg, bad := range forbidden {
		for _, d := range deps(t, pkg) {
			for _, b := range bad {
				assert.False(t, d == b || strings.HasPrefix(d, b+"/"), "%s reaches %s", pkg, d)
			}
		}
	}
}

// harness are the test harness and the stand-ins: tools for tests, demos
// and benchmarks, never part of the product.
var harness = []string{
	"internal/harness", "realtime/realtimetest", "supabase/supabasetest", "sender/sendertest",
}

func TestProductReachesNoHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module).Output()
	require.NoError(t, err)
	// The daemon binary (the module root) and everything it reaches.
	for _, p := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p, module), "/")
		for _, h := range harness {
			assert.False(t, rel == h || strings.HasPrefix(rel, h+"/"), "the daemon binary reaches %s", p)
		}
	}
}
