"""DHCP answered by the controller, on the real-OVS lab: busybox udhcpc and
ISC dhclient in VM namespaces on two hypervisors (GRE and VLAN networks),
networks and ports made through the REST API, no dnsmasq anywhere.

Clients only ever use private hook scripts and lease files (never
/etc/udhcpc/default.script nor dhclient-script: they rewrite the host's
resolv.conf). Raw frames (rebind, flood, malformed packets) are sent from
inside a VM by a small stdlib helper (RAW_CLIENT) through an AF_PACKET socket.
"""
from __future__ import annotations

import itertools
import os
import random
import signal
import struct
import subprocess
import sys
import time

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tests.e2e.test_reconciler import ADMIN as ADMIN_HEADERS, Api
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.proc import wait_until

pytestmark = pytest.mark.lab

_seg = itertools.count(300)
_cidr = itertools.count(40)

UDHCPC_HOOK = """#!/bin/sh
# Private udhcpc hook: apply the lease to eth0 and append every event to $LOG.
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    ;;
esac
echo "$1 ip=$ip router=$router serverid=$serverid lease=$lease" >> "$LOG"
exit 0
"""

DHCLIENT_SCRIPT = """#!/bin/sh
# Private dhclient script: apply the lease to eth0 and record the options.
# (dhclient gives its script a clean environment: LEASE_OUT is filled in.)
LEASE_OUT=@LEASE_OUT@
case "$reason" in
  PREINIT) ip link set "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT)
    ip addr flush dev "$interface"
    ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
    [ -n "$new_interface_mtu" ] && ip link set "$interface" mtu "$new_interface_mtu"
    env | grep '^new_' | sort > "$LEASE_OUT.$reason"
    ;;
esac
echo "$reason" >> "$LEASE_OUT.log"
exit 0
"""

DHCLIENT_CONF = """option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers,
        interface-mtu, rfc3442-classless-static-routes;
timeout 15;
retry 1;
"""

# Runs inside a VM namespace with the stdlib only (fast to start).
#   exchange <hex frame> <seconds>   send, print the first DHCP reply (hex) with its xid
#   send-file <path>                 send every hex frame of the file, one per line
#   flood <hex frame> <seconds>      send as fast as possible, print the count
RAW_CLIENT = r"""
import select, socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("eth0", 0))
mode = sys.argv[1]
if mode == "exchange":
    frame = bytes.fromhex(sys.argv[2]); xid = frame[46:50]
    s.send(frame)
    end = time.time() + float(sys.argv[3])
    while time.time() < end:
        r, _, _ = select.select([s], [], [], max(0, end - time.time()))
        if not r:
            break
        d, addr = s.recvfrom(4096)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        if len(d) > 50 and d[12:14] == b"\x08\x00" and d[23] == 17 and d[34:38] == b"\x00\x43\x00\x44" and d[46:50] == xid:
            print(d.hex()); break
elif mode == "send-file":
    n = 0
    for line in open(sys.argv[2]):
        try:
            s.send(bytes.fromhex(line.strip())); n += 1
        except OSError:
            pass
    print(n)
elif mode == "flood":
    frame = bytes.fromhex(sys.argv[2]); end = time.time() + float(sys.argv[3]); n = 0
    while time.time() < end:
        for _ in range(200):
            try:
                s.send(frame); n += 1
            except OSError:
                time.sleep(0.0005)
    print(n)
"""


@pytest.fixture(params=["gre", "vlan"])
def mode(request):
    return request.param


@pytest.fixture
def env(mode, controller_factory, lab_factory, tmp_path):
    e = Env(mode, controller_factory, lab_factory, tmp_path)
    yield e
    e.stop_processes()


class Env:
    """A controller, a two-hypervisor lab, and helpers for networks and clients."""

    def __init__(self, mode, controller_factory, lab_factory, tmp_path, args=None):
        self.mode, self.dir = mode, str(tmp_path)
        self.c = controller_factory(args=args or [])
        self.lab = lab_factory(2, self.c, tunnel_type="gre")
        self.hv1, self.hv2 = self.lab.hvs
        self.api = Api(self.c.url)
        self.procs: list[subprocess.Popen] = []
        for name, text in [("udhcpc-hook", UDHCPC_HOOK),
                           ("dhclient.conf", DHCLIENT_CONF), ("raw_client.py", RAW_CLIENT)]:
            path = os.path.join(self.dir, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)

    def path(self, name):
        return os.path.join(self.dir, name)

    # --- model through the API --------------------------------------------------------

    @staticmethod
    def next_cidr() -> str:
        return f"10.{next(_cidr)}.0.0/24"

    def network(self, cidr=None, **subnet_attrs):
        seg = next(_seg)
        if self.mode == "gre":
            prov = {"provider:network_type": "gre", "provider:segmentation_id": seg}
        else:
            prov = {"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                    "provider:segmentation_id": seg}
        net = self.api.network(f"dhcp-{seg}", **prov)
        subnet = self.api.subnet(net, cidr or self.next_cidr(), **subnet_attrs)
        return net, subnet

    def dhcp_address(self, net):
        ports = self.api.get(f"/ports?network_id={net['id']}&device_owner=network:dhcp")["ports"]
        return ports[0]["fixed_ips"][0]["ip_address"] if ports else None

    def vm(self, net, hv, name=None):
        port = self.api.port(net)
        vm = self.lab.add_vm(hv, port, name=name)
        vm.ip = port["fixed_ips"][0]["ip_address"]
        wait_until(lambda: self.api.get(f"/ports/{port['id']}")["port"]["status"] == "ACTIVE",
                   30, what="port ACTIVE")
        return vm

    # --- clients ----------------------------------------------------------------------

    def udhcpc_lease(self, vm, tries=3):
        """One udhcpc run (the lab's private hook) -> the lease dict or None."""
        return vm.dhcp(timeout=2, tries=tries)

    def udhcpc_daemon(self, vm):
        """udhcpc kept running (renews on SIGUSR1); its events go to a log."""
        log = self.path(f"{vm.name}.udhcpc.log")
        p = vm.popen("env", f"LOG={log}", "udhcpc", "-i", "eth0", "-f", "-t", "5", "-T", "1",
                     "-O", "mtu", "-O", "staticroutes", "-s", self.path("udhcpc-hook"),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p, log

    def dhclient(self, vm, expect="BOUND", timeout=20):
        """ISC dhclient in the foreground with private conf, script and lease
        file; returns the recorded new_* variables for the reason `expect`."""
        out = self.path(f"{vm.name}.dhclient")
        if os.path.exists(f"{out}.{expect}"):
            os.unlink(f"{out}.{expect}")
        script, leases = out + ".script", self.path(f"{vm.name}.leases")
        with open(script, "w") as f:
            f.write(DHCLIENT_SCRIPT.replace("@LEASE_OUT@", out))
        os.chmod(script, 0o755)
        p = vm.popen("dhclient", "-d", "-1", "-v",
                     "-cf", self.path("dhclient.conf"), "-sf", script,
                     "-lf", leases, "-pf", self.path(f"{vm.name}.dhclient.pid"),
                     "eth0", stdout=subprocess.DEVNULL, stderr=open(out + ".stderr", "ab"))
        self.procs.append(p)

        def reached(reason, within):
            wait_until(lambda: os.path.exists(f"{out}.{reason}") or p.poll() is not None,
                       within, what=f"dhclient {reason}")
            return os.path.exists(f"{out}.{reason}")

        try:
            ok = reached(expect, timeout)
            # dhclient writes its lease file after running the script; a later
            # run starts from it (INIT-REBOOT).
            wait_until(lambda: os.path.exists(leases) and "fixed-address" in open(leases).read(),
                       10, what="dhclient lease file")
        finally:
            _stop(p)
        if not ok:
            return None
        with open(f"{out}.{expect}") as f:
            return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)

    def raw(self, vm, *args, timeout=60):
        r = vm.exec(sys.executable, self.path("raw_client.py"), *args, check=False, timeout=timeout)
        return r.stdout.strip()

    def exchange(self, vm, frame: bytes, timeout=3.0):
        """Send one client frame from the VM; the reply frame (parsed by scapy) or None."""
        out = self.raw(vm, "exchange", frame.hex(), timeout)
        return Ether(bytes.fromhex(out)) if out else None

    def stop_processes(self):
        for p in self.procs:
            _stop(p)


def _stop(p: subprocess.Popen):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def client_frame(vm, msg_type, xid, *, ciaddr="0.0.0.0", src="0.0.0.0", dst="255.255.255.255",
                 eth_dst="ff:ff:ff:ff:ff:ff", options=()):
    chaddr = bytes.fromhex(vm.mac.replace(":", "")) + bytes(10)
    return bytes(Ether(src=vm.mac, dst=eth_dst) / IP(src=src, dst=dst) / UDP(sport=68, dport=67)
                 / BOOTP(xid=xid, ciaddr=ciaddr, chaddr=chaddr)
                 / DHCP(options=[("message-type", msg_type), *options, "end"]))


def dhcp_options(p) -> dict:
    return {o[0]: o[1] for o in p[DHCP].options if isinstance(o, tuple) and len(o) == 2}


def events(log: str) -> list[str]:
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [line.split()[0] for line in f if line.strip()]


def last_event(log: str, name: str) -> dict:
    with open(log) as f:
        lines = [line.split() for line in f if line.startswith(name + " ")]
    return dict(kv.split("=", 1) for kv in lines[-1][1:] if "=" in kv)


# --- tests ----------------------------------------------------------------------------

def test_udhcpc_and_dhclient_get_address_router_dns_mtu_routes_and_ping(env):
    cidr = env.next_cidr()
    nexthop = cidr.replace(".0/24", ".254")
    net, subnet = env.network(cidr, dns_nameservers=["192.0.2.53", "192.0.2.54"],
                              host_routes=[{"destination": "192.168.77.0/24", "nexthop": nexthop}])
    gw = subnet["gateway_ip"]
    server = env.dhcp_address(net)
    a, b = env.vm(net, env.hv1), env.vm(net, env.hv2)

    lease = env.udhcpc_lease(a)
    assert lease is not None, env.c.log_tail()
    assert lease["ip"] == a.ip
    assert lease["mask"] == "24"
    assert lease["router"] == gw
    assert lease["dns"].split() == ["192.0.2.53", "192.0.2.54"]
    assert lease["domain"] == "openstacklocal"
    assert lease["mtu"] == str(net["mtu"])
    assert lease["serverid"] == server
    assert lease["lease"] == "86400"
    routes = lease["staticroutes"].split()
    routes = dict(zip(routes[::2], routes[1::2]))
    assert routes.pop("0.0.0.0/0") == gw                  # RFC 3442: 121 carries the default
    assert routes.pop("192.168.77.0/24") == nexthop
    assert routes in ({}, {"169.254.169.254/32": server})  # metadata route when no router

    got = env.dhclient(b)
    assert got is not None, env.c.log_tail()
    assert got["new_ip_address"] == b.ip
    assert got["new_routers"] == gw
    assert got["new_domain_name_servers"].split() == ["192.0.2.53", "192.0.2.54"]
    assert got["new_interface_mtu"] == str(net["mtu"])
    assert got["new_dhcp_server_identifier"] == server
    assert " ".join(got["new_rfc3442_classless_static_routes"].split()).startswith(
        " ".join(["0", *gw.split("."), "24", "192", "168", "77", *nexthop.split(".")]))

    # The addresses work: each other, and the DHCP address answers ping (in flows).
    assert a.ping(b.ip, count=3, timeout=2)
    assert b.ping(a.ip, count=1, timeout=2)
    assert a.ping(server, count=2, timeout=2)
    assert b.ping(server, count=2, timeout=2)
    assert server in a.exec("ip", "neigh", "show").stdout         # ARP answered too


def test_renew_rebind_and_init_reboot(env):
    net, _subnet = env.network()
    server = env.dhcp_address(net)
    a, b = env.vm(net, env.hv1), env.vm(net, env.hv2)

    # udhcpc renews (unicast to the server) when told to with SIGUSR1.
    p, log = env.udhcpc_daemon(a)
    wait_until(lambda: "bound" in events(log), 20, what="udhcpc bound")
    assert last_event(log, "bound")["ip"] == a.ip
    p.send_signal(signal.SIGUSR1)
    wait_until(lambda: "renew" in events(log), 20, what="udhcpc renew")
    assert last_event(log, "renew")["ip"] == a.ip
    assert "nak" not in events(log)

    # Rebinding: the same request broadcast (ciaddr set, no server id).
    reply = env.exchange(a, client_frame(a, "request", 0x5151, ciaddr=a.ip, src=a.ip))
    assert reply is not None
    assert dhcp_options(reply)["message-type"] == 5
    assert reply[BOOTP].yiaddr == a.ip and reply[IP].dst == a.ip and reply.dst == a.mac
    # Renewing by hand too: unicast to the server's address and MAC.
    arp = a.exec("ip", "neigh", "show", server).stdout.split()
    server_mac = arp[arp.index("lladdr") + 1]
    reply = env.exchange(a, client_frame(a, "request", 0x5152, ciaddr=a.ip, src=a.ip, dst=server,
                                         eth_dst=server_mac))
    assert reply is not None and dhcp_options(reply)["message-type"] == 5

    # dhclient: bound first, then INIT-REBOOT from its lease file.
    assert env.dhclient(b)["new_ip_address"] == b.ip
    b.exec("ip", "addr", "flush", "dev", "eth0")
    rebooted = env.dhclient(b, expect="REBOOT")
    assert rebooted is not None and rebooted["new_ip_address"] == b.ip
    # The controller told the four REQUEST states apart (RFC 2131 4.3.2).
    m = metric_lines(env.c.url)
    for state in ("selecting", "renewing", "rebinding", "init_reboot"):
        assert m.get(f'quantum_dhcp_events_total{{event="request_{state}"}}', 0) >= 1, state


def test_nak_after_the_ports_fixed_ip_is_changed_through_the_api(env):
    net, subnet = env.network()
    a = env.vm(net, env.hv1)
    p, log = env.udhcpc_daemon(a)
    wait_until(lambda: "bound" in events(log), 20, what="udhcpc bound")
    old = a.ip
    new = old.rsplit(".", 1)[0] + ".200"
    env.api.put(f"/ports/{a.port_id}", {"port": {"fixed_ips": [
        {"subnet_id": subnet["id"], "ip_address": new}]}})
    # The renewal of the old address (unicast, from the old address) is refused;
    # udhcpc starts over and gets the new one.
    p.send_signal(signal.SIGUSR1)
    wait_until(lambda: "nak" in events(log), 20, what="DHCPNAK")
    wait_until(lambda: events(log)[-1] == "bound", 20, what="bound again")
    assert last_event(log, "bound")["ip"] == new
    # A client asking for the old address outright (INIT-REBOOT) is refused too.
    reply = env.exchange(a, client_frame(a, "request", 0x7777, options=[("requested_addr", old)]))
    assert reply is not None and dhcp_options(reply)["message-type"] == 6
    assert reply.dst == "ff:ff:ff:ff:ff:ff"


def test_no_answer_with_enable_dhcp_false_until_enabled(env):
    net, subnet = env.network(enable_dhcp=False)
    a = env.vm(net, env.hv1)
    assert env.udhcpc_lease(a, tries=2) is None
    assert env.exchange(a, client_frame(a, "discover", 0x99), timeout=2) is None
    env.api.put(f"/subnets/{subnet['id']}", {"subnet": {"enable_dhcp": True}})
    lease = None
    for _ in range(5):          # the punt flows are being pushed right now
        lease = env.udhcpc_lease(a, tries=2)
        if lease:
            break
    assert lease is not None and lease["ip"] == a.ip


def test_changes_through_the_api_are_served_on_the_next_request(env):
    net, subnet = env.network(dns_nameservers=["192.0.2.1"])
    a = env.vm(net, env.hv1)
    assert env.udhcpc_lease(a)["dns"] == "192.0.2.1"
    nexthop = subnet["gateway_ip"].rsplit(".", 1)[0] + ".254"
    env.api.put(f"/subnets/{subnet['id']}", {"subnet": {
        "dns_nameservers": ["198.51.100.9"],
        "host_routes": [{"destination": "172.20.0.0/16", "nexthop": nexthop}]}})
    reply = env.exchange(a, client_frame(a, "discover", 0x4242, options=[("param_req_list", [1, 3, 6, 121])]))
    o = dhcp_options(reply)
    assert o["name_server"] == "198.51.100.9"
    assert f"172.20.0.0/16:{nexthop}" in o["classless_static_routes"]


def test_a_flooding_vm_does_not_stop_another_from_getting_its_lease(env):
    net, _subnet = env.network()
    flooder, victim = env.vm(net, env.hv1, "flooder"), env.vm(net, env.hv1, "victim")
    frame = client_frame(flooder, "discover", 0x1)
    flood = flooder.popen(sys.executable, env.path("raw_client.py"), "flood", frame.hex(), 20,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    env.procs.append(flood)
    try:
        time.sleep(1)                                  # the flood is on
        lease = env.udhcpc_lease(victim)
        assert flood.poll() is None, "the flood ended before the lease was tried"
        assert lease is not None and lease["ip"] == victim.ip
    finally:
        _stop(flood)
    # The switch's meter dropped the excess before it reached the controller.
    stats = env.hv1.ofctl("meter-stats", "br-int")
    dropped = [int(x.split(":")[1]) for x in stats.replace(",", " ").split()
               if x.startswith("packet_count:")]
    assert sum(dropped) > 0, stats
    assert env.c.proc.poll() is None


@pytest.fixture
def fast_env(controller_factory, lab_factory, tmp_path):
    """A high punt rate, so most of a burst really reaches the handler."""
    e = Env("gre", controller_factory, lab_factory, tmp_path, args=["--packet-in-rate", "5000"])
    yield e
    e.stop_processes()


def test_malformed_dhcp_packets_are_survived(fast_env):
    env = fast_env
    net, _subnet = env.network()
    a, b = env.vm(net, env.hv1), env.vm(net, env.hv2)
    rng = random.Random(1)
    good = [client_frame(a, t, 0x100 + i, options=[("requested_addr", a.ip), ("server_id", "10.0.0.2"),
                                                   ("param_req_list", [1, 3, 6, 121])])
            for i, t in enumerate(["discover", "request", "inform", "release", "decline"])]
    frames = []
    for i in range(3000):
        f = bytearray(rng.choice(good))
        start = 14 + 20 + 8                      # keep Ethernet/IP/UDP so the punt flow matches
        if i % 3 == 0:
            for _ in range(rng.randint(1, 10)):
                f[rng.randrange(start, len(f))] = rng.randrange(256)
        elif i % 3 == 1:
            f = f[:rng.randrange(start, len(f))]
        else:
            f = f[:start + 240] + bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
        if i % 50 == 0:                          # lies in the IP and UDP length fields
            struct.pack_into("!H", f, 16, rng.randrange(65536))
            struct.pack_into("!H", f, 38, rng.randrange(65536))
        frames.append(bytes(f).hex())
    path = env.path("garbage.hex")
    with open(path, "w") as fh:
        fh.write("\n".join(frames) + "\n")
    assert int(env.raw(a, "send-file", path)) == len(frames)
    assert env.c.proc.poll() is None
    lease = env.udhcpc_lease(a)
    assert lease is not None and lease["ip"] == a.ip
    lease = env.udhcpc_lease(b)
    assert lease is not None and lease["ip"] == b.ip
    assert "Traceback" not in env.c.log_text()
    # The garbage did reach the handler, and was counted, not crashed on.
    metrics = metric_lines(env.c.url)
    dropped = sum(v for k, v in metrics.items()
                  if k.startswith('quantum_dhcp_events_total{event="dropped_'))
    assert dropped > 100, metrics
    assert not [k for k in metrics if k.startswith("quantum_handler_errors_total") and "Dhcp" in k]


def metric_lines(url: str) -> dict[str, float]:
    import urllib.request
    req = urllib.request.Request(url + "/metrics", headers=ADMIN_HEADERS)
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out
