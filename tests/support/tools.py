"""Where the suite finds the executables it runs.

Commands the project installs into its venv (the `openstack` CLI, `quantum-controller`)
are taken from the venv of the running interpreter, never from the machine's PATH: a
machine that happens to have its own `openstack` must not decide whether the suite
passes (a fresh machine has none). System tools come from the Debian packages that
tools/test.sh installs. `missing_executables()` lists what is absent, so the session
stops at start with one clear message instead of a FileNotFoundError in a fixture.
"""
from __future__ import annotations

import glob
import os
import shutil
import sys

# sys.executable is .venv/bin/python (a symlink: do not resolve it, or the
# directory becomes /usr/bin).
VENV_BIN = os.path.dirname(sys.executable)

VENV_EXECUTABLES = ("openstack", "quantum-controller", "quantum-metadata-proxy", "keystone-manage")

# Debian package -> the executables of it that the tests and the lab run.
SYSTEM_EXECUTABLES = {
    "openvswitch-switch": ("ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ovsdb-server",
                           "ovsdb-tool", "ovsdb-client", "ovs-vswitchd"),
    "iproute2": ("ip",),
    "iputils-ping": ("ping",),
    "udhcpc": ("udhcpc",),
    "isc-dhcp-client": ("dhclient",),
    "busybox": ("busybox",),
    "tcpdump": ("tcpdump",),
    "dnsmasq": ("dnsmasq",),
    "socat": ("socat",),
    "openssl": ("openssl",),
    "ethtool": ("ethtool",),
    "systemd": ("systemd-analyze",),
    "curl": ("curl",),
    "chromium": ("chromium",),
    "chromium-driver": ("chromedriver",),
}
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def venv_bin(name: str) -> str:
    """The venv's own `name` (e.g. venv_bin("openstack")), as an absolute path."""
    return os.path.join(VENV_BIN, name)


def missing_executables() -> list[str]:
    """One line per executable the suite needs and cannot find."""
    missing = [f"{venv_bin(n)} (pip install -e '.[test]' into the venv: bash tools/venv.sh test)"
               for n in VENV_EXECUTABLES if not os.access(venv_bin(n), os.X_OK)]
    for package, names in SYSTEM_EXECUTABLES.items():
        missing += [f"{n} (apt-get install {package})" for n in names
                    if shutil.which(n, path=os.environ.get("PATH", "") + ":" + SYSTEM_PATH) is None]
    if not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        missing.append("/usr/lib/postgresql/*/bin/pg_ctl (apt-get install postgresql)")
    return missing
