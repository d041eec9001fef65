#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine (as root): installs the
# Debian packages and Python packages it needs, then runs pytest.
# Extra arguments go to pytest, e.g.  bash tools/test.sh tests/api -x
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES="openvswitch-switch udhcpc isc-dhcp-client ethtool iproute2 iputils-ping tcpdump
  dnsmasq postgresql socat openssl curl busybox systemd chromium chromium-driver python3-venv"
missing=$(for p in $APT_PACKAGES; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "installing Debian packages:" $missing
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
bash tools/venv.sh test
exec .venv/bin/python -m pytest "$@"
