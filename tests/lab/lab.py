"""The Lab: N hypervisors, the wires between them, and VMs (see __init__.py
for the API). Everything lives in namespaces named `<prefix>-...` and files
under /tmp/qlab/<prefix>; close() removes them, and the next Lab sweeps
what a killed run left behind."""
from __future__ import annotations

import json
import os
import secrets
import stat
import sys
from concurrent.futures import ThreadPoolExecutor

from tests.lab.hypervisor import Hypervisor
from tests.lab.proc import BASE_DIR, destroy_lab_dir, run, sweep_stale_labs
from tests.lab.vm import TCPXFER, VM
from tests.support.controller import free_port

UDHCPC_HOOK = """#!/bin/sh
# Private udhcpc hook: configure eth0 and record the lease for the test.
# (The system hook would rewrite the host's /etc/resolv.conf.)
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    env | grep -E '^(ip|mask|subnet|router|dns|domain|mtu|serverid|lease|staticroutes|hostname|broadcast)=' > "$LAB_LEASE_FILE"
    ;;
esac
exit 0
"""


class Lab:
    """Context manager: `with Lab(2, controller) as lab: ...`."""

    def __init__(self, hypervisors: int = 2, controller=None, *, controllers=None,
                 tunnel_type: str = "gre", physnets=("physnet1",), gateways=(),
                 datapath_type: str = "netdev", register: bool = True,
                 ovsdb_tcp: bool = False, tls=None):
        sweep_stale_labs()
        self.prefix = "ql" + secrets.token_hex(3)
        self.dir = os.path.join(BASE_DIR, self.prefix)
        self.wire_netns = f"{self.prefix}-wire"
        self.underlay_net = "172.31.0"           # tunnel IPs: 172.31.0.<hv index>
        self.controllers = list(controllers or ([controller] if controller else []))
        self.api_url = self.controllers[0].url if self.controllers else None
        self.register = register
        self.tunnel_type = tunnel_type
        self.datapath_type = datapath_type
        self.physnets = list(physnets)
        self.mappings = {pn: f"br-eth{i + 1}" for i, pn in enumerate(self.physnets)}
        self.nics = {br: f"eth{i + 1}" for i, br in enumerate(self.mappings.values())}
        self.gateways = set(gateways)              # hv indexes with role compute,gateway
        self.ovsdb_tcp = ovsdb_tcp or tls is not None
        self.tls = tls          # a tests.lab.pki.Pki: each node gets a certificate, ssl: channels
        self.hvs = [Hypervisor(self, i + 1) for i in range(hypervisors)]
        self.vms: list[VM] = []
        self.udhcpc_hook = os.path.join(self.dir, "udhcpc-hook.sh")

    def role_of(self, hv) -> str:
        return "compute,gateway" if hv.index in self.gateways else "compute"

    # --- lifecycle -----------------------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "owner"), "w") as f:
            f.write(str(os.getpid()))
        with open(self.udhcpc_hook, "w") as f:
            f.write(UDHCPC_HOOK)
        os.chmod(self.udhcpc_hook, stat.S_IRWXU)
        self._create_wire()
        # Hypervisors come up in parallel: most of the time is waiting on daemons.
        with ThreadPoolExecutor(max_workers=len(self.hvs) or 1) as pool:
            list(pool.map(self._start_hv, self.hvs))
            list(pool.map(lambda hv: hv.warm_tunnel_neighbours(self.hvs[hv.index:]), self.hvs))
        return self

    def _create_wire(self):
        """The "physical" network: one Linux bridge per wire in a namespace of
        our own; `underlay` carries tunnels, `pn<k>` is physnet k's VLAN trunk."""
        ns = self.wire_netns
        run("ip", "netns", "add", ns)
        for br in ["underlay"] + [f"pn{k}" for k in range(len(self.physnets))]:
            run("ip", "-n", ns, "link", "add", br, "type", "bridge")
            run("ip", "-n", ns, "link", "set", br, "up")

    def _start_hv(self, hv: Hypervisor):
        hv.create()
        if self.ovsdb_tcp:
            hv.ovsdb_tcp_port = free_port()
        if self.tls is not None:
            hv.tls = self.tls.issue(hv.hostname)
        hv.start_relays([c.ofp_port for c in self.controllers])
        hv.add_underlay_nic("eth0", self.wire_netns, f"h{hv.index}u", "underlay")
        for k, nic in enumerate(self.nics.values()):
            hv.add_underlay_nic(nic, self.wire_netns, f"h{hv.index}p{k}", f"pn{k}")
        hv.create_br_phy("eth0")
        hv.bootstrap()

    def close(self):
        """Remove everything; never raises (it runs after failed tests too)."""
        for vm in self.vms:
            try:
                vm.destroy()
            except Exception as e:       # keep cleaning
                print(f"lab: cleaning {vm.name}: {e}", file=sys.stderr)
        for hv in self.hvs:
            try:
                hv.destroy()
            except Exception as e:
                print(f"lab: cleaning {hv.name}: {e}", file=sys.stderr)
        destroy_lab_dir(self.prefix)

    # --- controllers -------------------------------------------------------------------

    def retarget(self, controllers):
        """Point the relays at other controller processes (e.g. new ports)."""
        self.controllers = list(controllers)
        for hv in self.hvs:
            hv.start_relays([c.ofp_port for c in self.controllers])

    # --- VMs ----------------------------------------------------------------------------

    def add_vm(self, hv: Hypervisor, port, name: str | None = None, *,
               mac: str | None = None, iface_id: bool = True,
               attached_mac: str | None = None) -> VM:
        """Create a VM on `hv` plugged for `port` (an API port dict with "id"
        and "mac_address", or a port id with mac=...)."""
        if isinstance(port, dict):
            port_id, mac = port["id"], mac or port["mac_address"]
        else:
            port_id = port
        if not mac:
            raise ValueError("a MAC address is needed")
        vm = VM(self, hv, name or f"vm{len(self.vms) + 1}", port_id, mac,
                iface_id=iface_id, attached_mac=attached_mac)
        self.vms.append(vm)
        vm.create()
        return vm

    def tcp_transfer(self, src: VM, dst: VM, dst_ip: str, nbytes: int = 10 * 2**20,
                     port: int = 5001, timeout: float = 120) -> tuple[dict, dict]:
        """Send nbytes from src to dst_ip (dst's address); returns (sent, received)
        summaries {"bytes", "sha256"}: equal when the transfer was complete."""
        server = dst.tcp_server(port)
        try:
            r = src.exec(sys.executable, TCPXFER, "client", dst_ip, port, nbytes,
                         check=False, timeout=timeout)
            if r.returncode != 0:
                return {"error": r.stderr[-2000:]}, {}
            out, _ = server.communicate(timeout=timeout)
            return json.loads(r.stdout), (json.loads(out) if out.strip() else {})
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
