package standin

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// BuildDaemon builds the daemon binary from this source tree into dir (with
// `go build` at the module root) and returns its path, for the demo, the
// benchmarks and the chaos test, which run the daemon as its own process.
func BuildDaemon(ctx context.Context, dir string) (string, error) {
	root, err := pgtest.RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "meshhook-alerts")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}
