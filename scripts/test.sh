#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests on a real
# PostgreSQL (each test package starts a throwaway cluster), and the
# conformance tests that drive the local Supabase stand-in with the official
# Supabase JS clients. Everything runs with the race detector.
#
# Usage: scripts/test.sh [extra go test flags, e.g. -run TestName]
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "scripts/test.sh: $*" >&2; exit 1; }

command -v go >/dev/null || fail "Go is not installed (need Go 1.26+)"
command -v node >/dev/null || fail "Node.js is not installed (need Node 20+ for the conformance tests)"
command -v npm >/dev/null || fail "npm is not installed"
if ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  fail "PostgreSQL server binaries not found; install them (Debian: apt-get install postgresql)"
fi

# The official JS clients, pinned by package-lock.json.
if [ ! -d scripts/conformance/node_modules ] || [ scripts/conformance/package-lock.json -nt scripts/conformance/node_modules ]; then
  (cd scripts/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi

# Ctrl-C reaches go test and the test binaries (which stop; the clusters
# they started are stopped by pgtest's reaper): exit 130. SIGTERM sent to
# this script alone is acted on once go test has finished: 143. A closed
# output (`scripts/test.sh | head`) ends go test with SIGPIPE: status 0, as
# nobody is reading.
interrupted=
trap 'interrupted=130' INT
trap 'interrupted=143' TERM
go test -race -count=1 -timeout 15m "$@" ./... && status=0 || status=$?
[ -z "$interrupted" ] || exit "$interrupted"
[ "$status" -ne $((128 + 13)) ] || exit 0
exit "$status"
