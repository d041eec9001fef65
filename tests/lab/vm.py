"""A lab VM: a network namespace whose eth0 is one end of a veth; the other
end, `tap<port id[:11]>`, is plugged into br-int of a hypervisor exactly as
Nova's OVS VIF driver does it (docs/LAB.md section 3)."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.lab.proc import kill_netns_processes, netns_delete, run

HERE = os.path.dirname(os.path.abspath(__file__))
TCPXFER = os.path.join(HERE, "tcpxfer.py")


class VM:
    def __init__(self, lab, hv, name: str, port_id: str, mac: str,
                 iface_id: bool = True, attached_mac: str | None = None):
        self.lab = lab
        self.hv = hv
        self.name = name
        self.netns = f"{lab.prefix}-{name}"
        self.port_id = port_id
        self.mac = mac
        self.tap = "tap" + port_id[:11]
        self.iface_id = iface_id                 # False: rely on the tap-name convention
        self.attached_mac = attached_mac or mac
        self.plugged = False
        self._addr: tuple | None = None          # (cidr, gateway, mtu) re-applied on a move

    # --- plumbing --------------------------------------------------------------------

    def create(self):
        run("ip", "netns", "add", self.netns)
        run("ip", "-n", self.netns, "link", "set", "lo", "up")
        self._make_nic()
        self.plug()

    def _make_nic(self):
        run("ip", "link", "add", self.tap, "netns", self.hv.netns, "type", "veth",
            "peer", "name", "eth0", "netns", self.netns)
        run("ip", "-n", self.netns, "link", "set", "eth0", "address", self.mac)
        run("ip", "-n", self.netns, "link", "set", "eth0", "up")
        # Without this, TCP/UDP leave the VM with bad checksums (docs/LAB.md section 3).
        run("ethtool", "-K", "eth0", "tx", "off", netns=self.netns)
        run("ip", "-n", self.hv.netns, "link", "set", self.tap, "up")

    def plug(self):
        """What Nova does: add-port with iface-id, attached-mac, iface-status."""
        ids = [f"external_ids:attached-mac={self.attached_mac}", "external_ids:iface-status=active"]
        if self.iface_id:
            ids.insert(0, f"external_ids:iface-id={self.port_id}")
        self.hv.vsctl("--may-exist", "add-port", "br-int", self.tap, "--",
                      "set", "Interface", self.tap, *ids)
        self.plugged = True

    def unplug(self):
        """Nova's unplug: the port leaves br-int (the veth stays for a replug)."""
        self.hv.vsctl("--if-exists", "del-port", "br-int", self.tap)
        self.plugged = False

    def replug(self, hv=None):
        """Plug again, on `hv` if given (a move: the NIC is re-created there)."""
        if hv is not None and hv is not self.hv:
            self.unplug()
            run("ip", "-n", self.hv.netns, "link", "del", self.tap)
            self.hv = hv
            self._make_nic()
            if self._addr:
                self.set_ip(*self._addr)
        self.plug()

    def ofport(self) -> int:
        return self.hv.ofport(self.tap)

    def destroy(self):
        kill_netns_processes(self.netns)
        netns_delete(self.netns)

    # --- inside the VM -------------------------------------------------------------------

    def exec(self, *argv, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return run(*argv, netns=self.netns, check=check, timeout=timeout)

    def popen(self, *argv, **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.netns, *map(str, argv)], **kw)

    def set_ip(self, cidr: str, gateway: str | None = None, mtu: int | None = None):
        self._addr = (cidr, gateway, mtu)
        self.exec("ip", "addr", "flush", "dev", "eth0")
        self.exec("ip", "addr", "add", cidr, "dev", "eth0")
        if mtu:
            self.exec("ip", "link", "set", "eth0", "mtu", mtu)
        if gateway:
            self.exec("ip", "route", "replace", "default", "via", gateway)

    def ping(self, ip: str, count: int = 1, timeout: float = 2, size: int | None = None,
             dont_fragment: bool = False, interval: float = 0.2) -> bool:
        """True when at least one reply came back (all of them when count > 1)."""
        argv = ["ping", "-n", "-c", count, "-W", max(1, int(timeout)), "-i", interval]
        if size is not None:
            argv += ["-s", size]
        if dont_fragment:
            argv += ["-M", "do"]
        r = self.exec(*argv, ip, check=False, timeout=timeout * count + 10)
        return r.returncode == 0 and f"{count} received" in r.stdout

    def dhcp(self, timeout: int = 3, tries: int = 3) -> dict | None:
        """Run busybox udhcpc once with a private hook script (never the system
        one: it rewrites the host's resolv.conf). Returns the lease's variables
        (ip, mask, router, mtu, dns, serverid, lease, ...) or None."""
        lease_file = os.path.join(self.lab.dir, f"{self.name}.lease")
        if os.path.exists(lease_file):
            os.unlink(lease_file)
        r = self.exec("env", f"LAB_LEASE_FILE={lease_file}", "udhcpc", "-i", "eth0", "-f", "-q",
                      "-n", "-t", tries, "-T", timeout, "-O", "mtu", "-O", "staticroutes",
                      "-s", self.lab.udhcpc_hook, check=False, timeout=tries * timeout + 10)
        if r.returncode != 0 or not os.path.exists(lease_file):
            return None
        lease = {}
        with open(lease_file) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("=")
                lease[key] = value
        return lease

    def tcp_server(self, port: int = 5001) -> subprocess.Popen:
        """Start a one-shot receiver; returns once it listens. `.communicate()`
        gives its JSON summary {"bytes", "sha256"}."""
        p = self.popen(sys.executable, TCPXFER, "server", port,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        if line.strip() != "listening":
            p.kill()
            raise RuntimeError(f"tcp server in {self.name} did not start: {line}{p.stderr.read()}")
        return p
