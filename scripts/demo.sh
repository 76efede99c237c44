#!/usr/bin/env bash
# Runs meshhook-alerts end to end against a local Supabase stand-in: a
# throwaway PostgreSQL cluster, the stand-in's REST and Realtime servers, a
# webhook receiver that verifies signatures, and the real daemon. Nothing is
# left running or written outside a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || { echo "scripts/demo.sh: Go is not installed (need Go 1.26+)" >&2; exit 1; }
if ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  echo "scripts/demo.sh: PostgreSQL server binaries not found; install them (Debian: apt-get install postgresql)" >&2
  exit 1
fi
exec go run ./scripts/demo "$@"
