#!/usr/bin/env bash
# Builds meshhook-alerts and installs it as a systemd service:
#   /usr/local/bin/meshhook-alerts
#   /etc/meshhook-alerts/config.yaml   (from config.example.yaml, kept if present)
#   /etc/meshhook-alerts/env           (secrets, mode 0600, kept if present)
#   /etc/systemd/system/meshhook-alerts.service
# Run as root from a clone of the repository. Set PREFIX to install elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
command -v go >/dev/null || { echo "install.sh: Go is not installed" >&2; exit 1; }
PREFIX=${PREFIX:-/usr/local}

version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
go build -trimpath -ldflags "-s -w -X github.com/meshhook/meshhook-alerts/config.version=$version" -o meshhook-alerts.bin .
install -D -m 0755 meshhook-alerts.bin "$PREFIX/bin/meshhook-alerts"
rm -f meshhook-alerts.bin

install -d -m 0755 /etc/meshhook-alerts
[ -e /etc/meshhook-alerts/config.yaml ] || install -m 0644 config.example.yaml /etc/meshhook-alerts/config.yaml
if [ ! -e /etc/meshhook-alerts/env ]; then
  umask 077
  cat > /etc/meshhook-alerts/env <<'ENV'
# Secrets for meshhook-alerts (read by systemd's EnvironmentFile=).
SUPABASE_URL=
SUPABASE_SERVICE_ROLE_KEY=
ENV
fi
sed "s#/usr/local/bin/meshhook-alerts#$PREFIX/bin/meshhook-alerts#" scripts/meshhook-alerts.service \
  > /etc/systemd/system/meshhook-alerts.service

if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "Installed. Fill in /etc/meshhook-alerts/env, then: systemctl enable --now meshhook-alerts"
else
  echo "Installed (systemd is not running here, so the unit was not loaded)."
fi
"$PREFIX/bin/meshhook-alerts" --config /etc/meshhook-alerts/config.yaml version
