#!/usr/bin/env bash
# Start the controller on a fresh Debian machine (as root) with its embedded
# default: SQLite in /var/lib/quantum-controller, the API on :9696, OpenFlow on
# :6653. Installs what it needs first. Extra arguments go to quantum-controller
# (see `quantum-controller --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "ok installed"; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
fi
bash tools/venv.sh
exec .venv/bin/quantum-controller "$@"
