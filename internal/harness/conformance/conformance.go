// Package conformance locates Node.js and the official JavaScript clients in
// scripts/conformance for the tests that check our stand-in and our
// signatures against them. A missing prerequisite fails the test (it is
// never skipped) with instructions to install it.
package conformance

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// Node returns the node binary and the scripts/conformance directory, after
// checking that the npm package pkg (e.g. "@supabase/realtime-js") is
// installed there.
func Node(tb testing.TB, pkg string) (node, dir string) {
	tb.Helper()
	root, err := pgtest.RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		tb.Fatalf("node (>= 20) is required for the %s conformance test and was not found in PATH: %v; "+
			"install Node.js and run scripts/test.sh (it runs `npm ci` in scripts/conformance)", pkg, err)
	}
	dir = filepath.Join(root, "scripts", "conformance")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", filepath.FromSlash(pkg), "package.json")); err != nil {
		tb.Fatalf("scripts/conformance/node_modules is missing %s (%v); run scripts/test.sh or `npm ci` in scripts/conformance", pkg, err)
	}
	return node, dir
}
