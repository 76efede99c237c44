#!/usr/bin/env bash
# Builds meshhook-alerts and installs it as a systemd service:
#   $PREFIX/bin/meshhook-alerts                  (mode 0755)
#   $SYSCONFDIR/meshhook-alerts/config.yaml      (0644, from config.example.yaml; kept if present)
#   $SYSCONFDIR/meshhook-alerts/env              (0600, secrets, from scripts/meshhook-alerts.env; kept if present)
#   $UNITDIR/meshhook-alerts.service             (0644, from scripts/meshhook-alerts.service)
#
# Usage: scripts/install.sh [--dry-run]
#   --dry-run   print what would be built and written, change nothing
# Environment:
#   PREFIX      where the binary goes (default /usr/local)
#   SYSCONFDIR  where the configuration goes (default /etc)
#   UNITDIR     where the unit goes (default /etc/systemd/system)
#   DESTDIR     a staging root every path above is written under (packaging,
#               CI); the unit still names the final paths. With DESTDIR the
#               script needs no root and does not touch systemd.
# Run as root from a clone of the repository when DESTDIR is not set.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^# Run as root/s/^# \{0,1\}//p' "$0"; }
dry=false
for arg in "$@"; do
  case $arg in
    --dry-run|-n) dry=true ;;
    --help|-h) usage; exit 0 ;;
    *) echo "install.sh: unknown argument $arg" >&2; usage >&2; exit 2 ;;
  esac
done

PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-/etc/systemd/system}
DESTDIR=${DESTDIR:-}
for v in PREFIX SYSCONFDIR UNITDIR; do
  case ${!v} in
    /*) ;;
    *) echo "install.sh: $v must be an absolute path, got '${!v}'" >&2; exit 2 ;;
  esac
done
case $DESTDIR in
  ''|/*) DESTDIR=${DESTDIR%/} ;;
  *) echo "install.sh: DESTDIR must be an absolute path, got '$DESTDIR'" >&2; exit 2 ;;
esac

# Directories (and DESTDIR's parents of them) are created 0755 whatever the
# caller's umask; every file gets its mode from install -m.
umask 022

bin=$PREFIX/bin/meshhook-alerts
confdir=$SYSCONFDIR/meshhook-alerts
unit=$UNITDIR/meshhook-alerts.service

if ! $dry; then
  [ -n "$DESTDIR" ] || [ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (or set DESTDIR to stage the files)" >&2; exit 1; }
  command -v go >/dev/null || { echo "install.sh: Go is not installed (need Go 1.26+)" >&2; exit 1; }
fi

# The build and the unit are prepared in a temporary directory, removed
# however the script ends. Ctrl-C and SIGTERM stop it (exit 130 and 143); a
# closed output pipe (`install.sh | head`) does not: the installation goes
# on to the end, its output dropped.
work=$(mktemp -d "${TMPDIR:-/tmp}/meshhook-install.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap '' PIPE
say() { printf '%s\n' "$*" 2>/dev/null || true; }

# run prints a step and, unless --dry-run, does it.
run() {
  if $dry; then say "would run: $*"; else "$@"; fi
}
# put installs file src as dst (under DESTDIR) with mode, creating its
# directory (0755). keep=keep leaves an existing dst alone.
put() {
  local src=$1 dst=$DESTDIR$2 mode=$3 keep=${4:-}
  if [ "$keep" = keep ] && [ -e "$dst" ]; then
    say "keeping $dst"
    if [ "$mode" = 0600 ] && [ -n "$(find "$dst" -maxdepth 0 -perm /077)" ]; then
      echo "install.sh: warning: $dst is readable by others; it holds secrets: chmod 0600 $dst" >&2
    fi
    return
  fi
  if $dry; then
    say "would install $dst (mode $mode)"
    return
  fi
  install -d -m 0755 "$(dirname "$dst")"
  install -m "$mode" "$src" "$dst"
  say "installed $dst (mode $mode)"
}

version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
if $dry; then
  say "would build meshhook-alerts $version"
else
  say "building meshhook-alerts $version"
  go build -trimpath -ldflags "-s -w -X github.com/meshhook/meshhook-alerts/config.version=$version" \
    -o "$work/meshhook-alerts" .
fi

# The unit names the final paths (not DESTDIR's).
esc() { printf '%s' "$1" | sed 's/[&#\\]/\\&/g'; }
sed -e "s#/usr/local/bin/meshhook-alerts#$(esc "$bin")#g" \
    -e "s#/etc/meshhook-alerts/#$(esc "$confdir")/#g" \
    scripts/meshhook-alerts.service > "$work/meshhook-alerts.service"

put "$work/meshhook-alerts" "$bin" 0755
put config.example.yaml "$confdir/config.yaml" 0644 keep
put scripts/meshhook-alerts.env "$confdir/env" 0600 keep
put "$work/meshhook-alerts.service" "$unit" 0644

if [ -n "$DESTDIR" ]; then
  say "Staged under $DESTDIR; systemd was not told."
elif command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  run systemctl daemon-reload
  say "Installed. Fill in $confdir/env, then: systemctl enable --now meshhook-alerts"
else
  say "Installed (systemd is not running here, so the unit was not loaded)."
fi
if ! $dry; then
  "$DESTDIR$bin" version
fi
