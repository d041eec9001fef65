"""The external network of a lab: a wire `ext` in the lab's wire namespace,
a gateway hypervisor whose br-ex (node-bootstrap mapping `public:br-ex`)
holds a NIC on that wire, and hosts on the wire playing the outside world
(e.g. the upstream router 192.168.0.1).

    ext = ExternalWire(lab, physnet="public")
    ext.attach_gateway(hv2)                      # re-runs node-bootstrap with public:br-ex
    host = ext.add_host("ext", "192.168.0.1/24") # a VM-like namespace on the wire
    host.ping("192.168.0.20"); srv = host.whoami_server(7000)
    vm.exec(*whoami_client("192.168.0.1", 7000)).stdout  -> the address the host saw

Everything is named `<lab prefix>-...`, so Lab.close() removes it.
"""
from __future__ import annotations

import subprocess
import sys

from tests.lab.proc import run
from tests.lab.vm import VM

WIRE = "ext"
NIC = "ethx"

WHOAMI_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
print("listening", flush=True)
while True:
    c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()
"""

WHOAMI_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
print(s.recv(64).decode())
"""


def whoami_client(host: str, port: int) -> list:
    """argv that prints the source address `host`'s whoami server saw."""
    return [sys.executable, "-c", WHOAMI_CLIENT, host, port]


class ExternalWire:
    def __init__(self, lab, physnet: str = "public", bridge: str = "br-ex"):
        self.lab, self.physnet, self.bridge = lab, physnet, bridge
        run("ip", "-n", lab.wire_netns, "link", "add", WIRE, "type", "bridge")
        run("ip", "-n", lab.wire_netns, "link", "set", WIRE, "up")

    def attach_gateway(self, hv):
        """Give `hv` a NIC on the external wire and re-run node-bootstrap with
        the external mapping added (the lab's own mappings kept)."""
        hv.add_underlay_nic(NIC, self.lab.wire_netns, f"h{hv.index}x", WIRE)
        mappings = dict(self.lab.mappings, **{self.physnet: self.bridge})
        nics = dict(self.lab.nics, **{self.bridge: NIC})
        hv.bootstrap("--role", "compute,gateway",
                     "--bridge-mappings", ",".join(f"{p}:{b}" for p, b in mappings.items()),
                     "--bridge-ports", ",".join(f"{b}:{n}" for b, n in nics.items()))

    def add_host(self, name: str, cidr: str, gateway: str | None = None) -> "ExternalHost":
        host = ExternalHost(self.lab, name)
        self.lab.vms.append(host)            # destroyed with the lab
        host.create()
        host.set_ip(cidr, gateway)
        return host


class ExternalHost(VM):
    """A namespace on the external wire (not an OpenStack port): VM's exec,
    ping, set_ip and tcp_server work as for VMs."""

    def __init__(self, lab, name: str):
        super().__init__(lab, None, name, port_id="external", mac="")

    def create(self):
        run("ip", "netns", "add", self.netns)
        run("ip", "-n", self.netns, "link", "set", "lo", "up")
        run("ip", "link", "add", "eth0", "netns", self.netns, "type", "veth",
            "peer", "name", f"{self.name[:8]}w", "netns", self.lab.wire_netns)
        run("ip", "-n", self.lab.wire_netns, "link", "set", f"{self.name[:8]}w", "master", WIRE, "up")
        run("ip", "-n", self.netns, "link", "set", "eth0", "up")
        run("ethtool", "-K", "eth0", "tx", "off", netns=self.netns)
        self.mac = run("cat", "/sys/class/net/eth0/address", netns=self.netns).stdout.strip()

    def plug(self):
        raise NotImplementedError("an external host is not an OpenStack port")

    unplug = replug = plug

    def whoami_server(self, port: int) -> subprocess.Popen:
        """A TCP server answering each connection with the peer's address."""
        p = self.popen(sys.executable, "-c", WHOAMI_SERVER, port,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "listening":
            p.kill()
            raise RuntimeError(f"whoami server in {self.name} did not start: {p.stderr.read()}")
        return p
