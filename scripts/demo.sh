#!/usr/bin/env bash
# Runs meshhook-alerts end to end against a local Supabase stand-in: a
# throwaway PostgreSQL cluster, the stand-in's REST and Realtime servers, a
# webhook receiver that verifies signatures, and the real daemon. Nothing is
# left running or written outside a temporary directory, except the
# daemon's log file, whose path it prints.
#
# Usage: scripts/demo.sh [flags of scripts/demo, e.g. -realtime-max-events-per-second 5; -h lists them]
#        scripts/demo.sh --keep   # the daemon with its web UI, seeded and busy, until Ctrl-C
#
# Ctrl-C stops it (exit status 130; SIGTERM: 143), and so does a closed
# output (`scripts/demo.sh | head`, exit status 0); either way the daemon,
# the stand-in and PostgreSQL are stopped and the temporary files removed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || { echo "scripts/demo.sh: Go is not installed (need Go 1.26+)" >&2; exit 1; }
if ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  echo "scripts/demo.sh: PostgreSQL server binaries not found; install them (Debian: apt-get install postgresql)" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/meshhook-demo-build.XXXXXX")
# go build's own work directories go in it too: an interrupted build leaves
# them behind.
export GOTMPDIR=$tmp
child= ticker=
cleanup() {
  [ -z "$ticker" ] || kill "$ticker" 2>/dev/null || true
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# While the demo runs, a signal is passed on to it: it stops the daemon, the
# stand-in and PostgreSQL itself, and its exit status is the script's.
stop() {
  local sig=$1 code=$2
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -"$sig" "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null && code=0 || code=$?
    child=
  fi
  exit "$code"
}
trap 'stop INT 130' INT
trap 'stop TERM 143' TERM
trap 'stop PIPE 0' PIPE
say() { printf '%s\n' "$*" 2>/dev/null || true; }

# A first run downloads the modules and compiles every dependency (a minute
# or more): say so, and show that it is still going. The build runs in the
# foreground, where Ctrl-C reaches it (a background job would ignore it).
say "==> building the demo (the first run downloads modules and compiles everything once; later runs take seconds)"
(
  trap - INT TERM PIPE
  n=0
  while sleep 1; do
    n=$((n + 1))
    [ $((n % 10)) -ne 0 ] || say "    … still building the demo (${n} s)"
  done
) &
ticker=$!
if ! go build -o "$tmp/demo" ./scripts/demo; then
  echo "scripts/demo.sh: building the demo failed" >&2
  exit 1
fi
kill "$ticker" 2>/dev/null || true
ticker=

# The demo runs in the background so that a signal sent to this script
# alone (SIGTERM) reaches it at once, passed on by stop.
"$tmp/demo" "$@" &
child=$!
wait "$child" && status=0 || status=$?
child=
exit "$status"
