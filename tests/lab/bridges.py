"""Many hypervisors on one machine: N br-int bridges on ONE userspace
ovs-vswitchd (own datapath-ids, datapath_type=netdev, fail_mode=secure,
OpenFlow 1.3) in a namespace of our own, all reaching the controller on
127.0.0.1 through one socat relay. Used by tests/e2e/test_reconciler.py (many
switches connecting at once), bench/bench_scale.py (100 hypervisors) and
bench/bench_ha_scale.py (the same across several controllers: given a list of
OpenFlow ports, every bridge gets one controller target per port, each through
its own relay, as node-bootstrap's repeated --controller does).

    with ManyBridges(60, controller.ofp_port) as mb:
        mb.dpids                  # {"br000": dpid, ...}
        mb.flow_count("br000"), mb.del_flows(), mb.vsctl(...), mb.rss_kb()
        mb.apply_max_backoff()    # once every bridge is connected (see below)

Two things make simultaneous (re)connects of many bridges slow, neither of
them the controller's:
- socat's listen backlog is 5 by default; a unix-socket connect() beyond it
  fails with EAGAIN, which OVS reports as "connection failed (Protocol
  error)" and answers with its reconnect backoff. The relay here listens
  with backlog=RELAY_BACKLOG.
- OVS before 3.3 (the lab has 3.1) creates a controller connection with an
  8 s maximum backoff whatever Controller.max_backoff says, and applies the
  configured value only when it reconfigures while that connection is up
  (fixed upstream by "connmgr: Fix ofconn configuration on vswitchd
  startup", v3.3.0). A real hypervisor gets there at its first port plug;
  apply_max_backoff() makes an equivalent harmless change.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile

from tests.lab.hypervisor import create_ovs, ovs_env
from tests.lab.proc import kill_pidfile, netns_delete, run, wait_until

RELAY_BACKLOG = 1024
MAX_BACKOFF_MS = 1000        # as node-bootstrap sets it


class ManyBridges:
    """ovsdb-server + one ovs-vswitchd in a netns with `n` bridges; close()
    (also on `with` exit) removes everything, even after a failure."""

    def __init__(self, n: int, ofp_port: int | list[int], dpid_base: int = 0x5C00_0000_0000):
        self.tag = "qs" + secrets.token_hex(3)
        self.dir = tempfile.mkdtemp(prefix=f"{self.tag}-", dir="/tmp")
        self.netns = self.tag
        self.env = ovs_env(self.dir)
        self.db = f"unix:{self.dir}/db.sock"
        self.n, self.ofp_port = n, ofp_port
        self.ofp_ports = list(ofp_port) if isinstance(ofp_port, (list, tuple)) else [ofp_port]
        self.relays: list[subprocess.Popen] = []
        self.dpids = {f"br{i:03d}": dpid_base + i for i in range(n)}

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()

    def _run(self, *argv, netns=None, timeout=120):
        return run(*argv, netns=netns, timeout=timeout, env=self.env).stdout

    def start(self) -> "ManyBridges":
        run("ip", "netns", "add", self.netns)
        run("ip", "-n", self.netns, "link", "set", "lo", "up")
        create_ovs(self.dir, self.netns)
        socks = []
        for k, port in enumerate(self.ofp_ports):
            # The first relay keeps its old name: ctl.sock.
            sock = f"{self.dir}/ctl.sock" if k == 0 else f"{self.dir}/ctl{k}.sock"
            self.relays.append(subprocess.Popen(
                ["socat", f"UNIX-LISTEN:{sock},fork,unlink-early,backlog={RELAY_BACKLOG}",
                 f"TCP:127.0.0.1:{port},nodelay"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            wait_until(lambda sock=sock: os.path.exists(sock), 10, what="socat relay")
            socks.append(sock)
        args = []
        for br, dpid in self.dpids.items():
            ids = [f"@c{br}x{k}" for k in range(len(socks))]
            args += ["--", "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev",
                     "fail_mode=secure", "protocols=OpenFlow13", f"other-config:datapath-id={dpid:016x}",
                     "other-config:disable-in-band=true", f"controller={','.join(ids)}"]
            for cid, sock in zip(ids, socks):
                args += ["--", f"--id={cid}", "create", "Controller", f"target=\"unix:{sock}\"",
                         f"max_backoff={MAX_BACKOFF_MS}"]
        self.vsctl("--timeout=120", *args)
        return self

    def vsctl(self, *args) -> str:
        return self._run("ovs-vsctl", f"--db={self.db}", *args)

    def connected(self) -> int:
        """Controller connections that are up (OVS's own view): with one
        controller port, the bridges connected; with k, up to n * k."""
        out = self.vsctl("--columns=is_connected", "--bare", "list", "Controller")
        return out.split().count("true")

    def apply_max_backoff(self) -> None:
        """Make OVS < 3.3 apply Controller.max_backoff (see the module
        docstring): any database change reconfigures the bridges, and every
        connection that is up then takes the configured backoff for good."""
        self.vsctl("set", "Open_vSwitch", ".", f"external_ids:many-bridges-touch={secrets.token_hex(2)}")

    def flow_count(self, br: str) -> int:
        out = self._run("ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate", f"unix:{self.dir}/{br}.mgmt")
        return int(out.split("flow_count=")[1].split()[0])

    def del_flows(self) -> None:
        for br in self.dpids:
            self._run("ovs-ofctl", "-O", "OpenFlow13", "del-flows", f"unix:{self.dir}/{br}.mgmt")

    def rss_kb(self) -> int:
        try:
            with open(f"{self.dir}/ovs-vswitchd.pid") as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/status") as f:
                return next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
        except (OSError, ValueError, StopIteration):
            return 0

    def close(self) -> None:
        for relay in self.relays:
            relay.kill()
            relay.wait()
        self.relays = []
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            kill_pidfile(f"{self.dir}/{daemon}.pid", daemon)
        netns_delete(self.netns)
        shutil.rmtree(self.dir, ignore_errors=True)
