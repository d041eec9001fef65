"""DHCP answered by the controller, on the real-OVS lab: busybox udhcpc and
ISC dhclient in VM namespaces on two hypervisors (GRE and VLAN networks),
networks and ports made through the REST API, no dnsmasq anywhere.

Clients only ever use private hook scripts and lease files (never
/etc/udhcpc/default.script nor dhclient-script: they rewrite the host's
resolv.conf). Raw frames (INFORM, RELEASE, DECLINE, flood, malformed packets)
are sent from inside a VM by a small stdlib helper (RAW_CLIENT) through an
AF_PACKET socket. Renewals and rebinds are the real clients' own, seen in a
tcpdump capture inside the VM; unicast renewals are blocked in the VM with tc
(clsact egress, u32 match, mirred to a dead-end veth: this kernel has no gact).
"""
from __future__ import annotations

import itertools
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
import types

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tests.e2e.test_reconciler import ADMIN as ADMIN_HEADERS, Api
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.proc import run, wait_until

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
echo "$1 ip=$ip mask=$mask router=$router serverid=$serverid lease=$lease dns=$(echo $dns | tr ' ' ,)" >> "$LOG"
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
initial-interval 1;
backoff-cutoff 2;
"""

# Runs inside a VM namespace with the stdlib only (fast to start); the NIC is
# $IFACE (default eth0).
#   exchange <hex frame> <seconds>   send, print the first DHCP reply (hex) with its xid
#   send-file <path>                 send every hex frame of the file, one per line
#   flood <hex frame> <seconds>      send as fast as possible, print the count
RAW_CLIENT = r"""
import os, select, socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((os.environ.get("IFACE", "eth0"), 0))
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

    def dhcp_port(self, net) -> dict | None:
        ports = self.api.get(f"/ports?network_id={net['id']}&device_owner=network:dhcp")["ports"]
        return ports[0] if ports else None

    def dhcp_address(self, net, subnet=None):
        """The DHCP port's address (on `subnet` if given): the server identifier."""
        port = self.dhcp_port(net)
        ips = [f["ip_address"] for f in (port or {}).get("fixed_ips", ())
               if subnet is None or f["subnet_id"] == subnet["id"]]
        return ips[0] if ips else None

    def router(self, subnet) -> dict:
        """A router with an interface on `subnet` (it takes the gateway address)."""
        r = self.api.post("/routers", {"router": {"name": f"r-{subnet['id'][:8]}"}})["router"]
        self.api.put(f"/routers/{r['id']}/add_router_interface", {"subnet_id": subnet["id"]})
        return r

    def vm(self, net, hv, name=None):
        port = self.api.port(net)
        vm = self.lab.add_vm(hv, port, name=name)
        vm.ip = port["fixed_ips"][0]["ip_address"]
        self.wait_active(port)
        return vm

    def wait_active(self, port):
        wait_until(lambda: self.api.get(f"/ports/{port['id']}")["port"]["status"] == "ACTIVE",
                   30, what="port ACTIVE")

    def add_nic(self, vm, port, ifname):
        """A second NIC in `vm` for another port, plugged as Nova plugs one."""
        tap = "tap" + port["id"][:11]
        run("ip", "link", "add", tap, "netns", vm.hv.netns, "type", "veth",
            "peer", "name", ifname, "netns", vm.netns)
        run("ip", "-n", vm.netns, "link", "set", ifname, "address", port["mac_address"])
        run("ip", "-n", vm.netns, "link", "set", ifname, "up")
        run("ethtool", "-K", ifname, "tx", "off", netns=vm.netns)
        run("ip", "-n", vm.hv.netns, "link", "set", tap, "up")
        vm.hv.vsctl("--may-exist", "add-port", "br-int", tap, "--", "set", "Interface", tap,
                    f"external_ids:iface-id={port['id']}",
                    f"external_ids:attached-mac={port['mac_address']}",
                    "external_ids:iface-status=active")
        self.wait_active(port)

    # --- clients ----------------------------------------------------------------------

    def udhcpc_lease(self, vm, tries=3):
        """One udhcpc run (the lab's private hook) -> the lease dict or None."""
        return vm.dhcp(timeout=2, tries=tries)

    def udhcpc_daemon(self, vm, iface="eth0"):
        """udhcpc kept running (renews on SIGUSR1); its events go to a log."""
        log = self.path(f"{vm.name}.{iface}.udhcpc.log")
        p = vm.popen("env", f"LOG={log}", "udhcpc", "-i", iface, "-f", "-t", "5", "-T", "1",
                     "-O", "mtu", "-O", "staticroutes", "-s", self.path("udhcpc-hook"),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p, log

    def udhcpc_once(self, vm, iface) -> dict | None:
        """One udhcpc run on `iface` with the private hook -> its last event's variables."""
        log = self.path(f"{vm.name}.{iface}.udhcpc.log")
        r = vm.exec("env", f"LOG={log}", "udhcpc", "-i", iface, "-f", "-q", "-n", "-t", "3",
                    "-T", "2", "-s", self.path("udhcpc-hook"), check=False, timeout=30)
        return last_event(log, "bound") if r.returncode == 0 else None

    def dhclient_daemon(self, vm):
        """ISC dhclient kept running; -> (process, reasons()) where reasons()
        lists the script's reasons so far (PREINIT, BOUND, RENEW, REBIND...)."""
        out = self.path(f"{vm.name}.dhclient")
        script = out + ".script"
        with open(script, "w") as f:
            f.write(DHCLIENT_SCRIPT.replace("@LEASE_OUT@", out))
        os.chmod(script, 0o755)
        p = vm.popen("dhclient", "-d", "-v", "-cf", self.path("dhclient.conf"), "-sf", script,
                     "-lf", self.path(f"{vm.name}.leases"),
                     "-pf", self.path(f"{vm.name}.dhclient.pid"),
                     "eth0", stdout=subprocess.DEVNULL, stderr=open(out + ".stderr", "ab"))
        self.procs.append(p)
        return p, lambda: events(out + ".log")

    def capture(self, vm) -> "Capture":
        c = Capture(vm, self.path(f"{vm.name}-{time.time_ns()}.pcap"))
        self.procs.append(c.proc)
        return c

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

    def raw(self, vm, *args, timeout=60, iface="eth0"):
        r = vm.exec("env", f"IFACE={iface}", sys.executable, self.path("raw_client.py"), *args,
                    check=False, timeout=timeout)
        return r.stdout.strip()

    def exchange(self, vm, frame: bytes, timeout=3.0, iface="eth0"):
        """Send one client frame from the VM; the reply frame (parsed by scapy) or None."""
        out = self.raw(vm, "exchange", frame.hex(), timeout, iface=iface)
        return Ether(bytes.fromhex(out)) if out else None

    def stop_processes(self):
        for p in self.procs:
            _stop(p)


class Capture:
    """tcpdump of DHCP on a VM's eth0 (pcap in the test's temp dir)."""

    def __init__(self, vm, pcap: str):
        self.pcap, log = pcap, pcap + ".log"
        self.proc = vm.popen("tcpdump", "-i", "eth0", "-n", "-U", "--immediate-mode", "-w", pcap,
                             "udp port 67 or udp port 68",
                             stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        wait_until(lambda: "listening" in open(log).read() or self.proc.poll() is not None, 10,
                   what="tcpdump listening")
        if self.proc.poll() is not None:
            raise RuntimeError(f"tcpdump in {vm.name} did not start: {open(log).read()}")

    def packets(self) -> list:
        """Stop the capture; the DHCP packets seen."""
        from scapy.utils import rdpcap
        time.sleep(0.5)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(10)
        return [p for p in rdpcap(self.pcap) if DHCP in p]


def answered(packets, request) -> bool:
    """An ACK for `request` (same xid) follows it, for the address it asks for."""
    xid = request[BOOTP].xid
    return any(dhcp_options(p).get("message-type") == 5 and p[BOOTP].xid == xid
               and p[BOOTP].op == 2 and p[BOOTP].yiaddr == request[BOOTP].ciaddr
               for p in packets if p.time >= request.time)


def requests(packets, *, ip_dst=None) -> list:
    """Client REQUESTs with ciaddr set (renewing/rebinding), optionally to ip_dst."""
    return [p for p in packets if p[BOOTP].op == 1 and dhcp_options(p).get("message-type") == 3
            and p[BOOTP].ciaddr != "0.0.0.0" and (ip_dst is None or p[IP].dst == ip_dst)]


def block_unicast_to(vm, server_ip: str) -> None:
    """Drop the VM's unicast DHCP to the server, as a lost renewal: on eth0's
    egress, redirect it to a veth whose peer is down (the packet dies there)."""
    vm.exec("ip", "link", "add", "sink0", "type", "veth", "peer", "name", "sink1")
    vm.exec("ip", "link", "set", "sink0", "up")
    vm.exec("tc", "qdisc", "add", "dev", "eth0", "clsact")
    vm.exec("tc", "filter", "add", "dev", "eth0", "egress", "protocol", "ip", "u32",
            "match", "ip", "dst", f"{server_ip}/32", "match", "ip", "dport", "67", "0xffff",
            "action", "mirred", "egress", "redirect", "dev", "sink0")


def blocked_packets(vm) -> int:
    """How many packets the block_unicast_to filter took."""
    out = vm.exec("tc", "-s", "filter", "show", "dev", "eth0", "egress").stdout
    return sum(int(x) for x in re.findall(r"Sent \d+ bytes (\d+) pkt", out))


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
    router = env.router(subnet)
    gw_port = env.api.get(f"/ports?device_id={router['id']}")["ports"][0]
    assert gw_port["fixed_ips"][0]["ip_address"] == gw          # the router has the gateway
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
    assert lease["broadcast"] == cidr.replace(".0/24", ".255")
    routes = lease["staticroutes"].split()
    routes = dict(zip(routes[::2], routes[1::2]))
    assert routes.pop("0.0.0.0/0") == gw                  # RFC 3442: 121 carries the default
    assert routes.pop("192.168.77.0/24") == nexthop
    assert routes == {}             # routed subnet: no metadata route via the DHCP port

    got = env.dhclient(b)
    assert got is not None, env.c.log_tail()
    assert got["new_ip_address"] == b.ip
    assert got["new_routers"] == gw
    assert got["new_domain_name_servers"].split() == ["192.0.2.53", "192.0.2.54"]
    assert got["new_interface_mtu"] == str(net["mtu"])
    assert got["new_dhcp_server_identifier"] == server
    assert (got["new_dhcp_lease_time"], got["new_dhcp_renewal_time"], got["new_dhcp_rebinding_time"]) \
        == ("86400", "43200", "75600")                            # T1 = 1/2, T2 = 7/8
    assert got["new_broadcast_address"] == cidr.replace(".0/24", ".255")
    assert " ".join(got["new_rfc3442_classless_static_routes"].split()) == " ".join(
        ["0", *gw.split("."), "24", "192", "168", "77", *nexthop.split(".")])

    # The leased addresses work: the router's gateway address (on both
    # hypervisors: the router is distributed), each other, and the DHCP
    # address (ARP and ping answered by flows).
    assert reaches(a, gw) and reaches(b, gw), env.c.log_tail()
    assert a.ping(gw, count=2, timeout=2) and b.ping(gw, count=2, timeout=2)
    assert a.ping(b.ip, count=3, timeout=2)
    assert b.ping(a.ip, count=1, timeout=2)
    assert a.ping(server, count=2, timeout=2)
    assert b.ping(server, count=2, timeout=2)
    assert server in a.exec("ip", "neigh", "show").stdout         # ARP answered too


def reaches(vm, ip, tries=20) -> bool:
    """vm can ping ip (retries cover flows being pushed right now)."""
    return any(vm.ping(ip, count=1, timeout=1) for _ in range(tries))


def test_renew_by_unicast_and_init_reboot(env):
    net, _subnet = env.network()
    dhcp_port = env.dhcp_port(net)
    server, server_mac = dhcp_port["fixed_ips"][0]["ip_address"], dhcp_port["mac_address"]
    a, b = env.vm(net, env.hv1), env.vm(net, env.hv2)

    # udhcpc renews when told to with SIGUSR1: a unicast REQUEST to the
    # server's address and MAC (its ARP answered by flows), answered by the
    # controller through the punt flow.
    p, log = env.udhcpc_daemon(a)
    wait_until(lambda: "bound" in events(log), 20, what="udhcpc bound")
    assert last_event(log, "bound")["ip"] == a.ip
    cap = env.capture(a)
    p.send_signal(signal.SIGUSR1)
    wait_until(lambda: "renew" in events(log), 20, what="udhcpc renew")
    assert last_event(log, "renew")["ip"] == a.ip
    assert "nak" not in events(log) and events(log).count("deconfig") == 1    # only at start
    packets = cap.packets()
    renewals = requests(packets, ip_dst=server)
    # To the server's MAC: the VM's ARP for the server address was answered (by flows).
    assert renewals and renewals[0].dst == server_mac, [
        (p.summary(), p[BOOTP].ciaddr, dhcp_options(p).get("message-type")) for p in packets]
    assert any(answered(packets, r) for r in renewals)

    # dhclient: bound first, then INIT-REBOOT from its lease file.
    assert env.dhclient(b)["new_ip_address"] == b.ip
    b.exec("ip", "addr", "flush", "dev", "eth0")
    rebooted = env.dhclient(b, expect="REBOOT")
    assert rebooted is not None and rebooted["new_ip_address"] == b.ip
    m = metric_lines(env.c.url)
    for state in ("selecting", "renewing", "init_reboot"):
        assert m.get(f'quantum_dhcp_events_total{{event="request_{state}"}}', 0) >= 1, state


SHORT_LEASE = 16         # s: T1 8 s, T2 14 s


@pytest.fixture
def short_lease_env(controller_factory, lab_factory, tmp_path):
    e = Env("gre", controller_factory, lab_factory, tmp_path,
            args=["--lease-duration", str(SHORT_LEASE)])
    yield e
    e.stop_processes()


def test_real_clients_renew_at_t1_and_rebind_by_broadcast_when_renewals_are_lost(short_lease_env):
    """dhclient renews by unicast at T1; once its unicasts are dropped it
    rebinds by broadcast after T2. busybox udhcpc renews a lease this short by
    broadcast only (it unicasts when a minute or more is left). Every
    rebinding request (ciaddr set, broadcast) gets an ACK from the controller
    and the leases stay."""
    env = short_lease_env
    net, _subnet = env.network()
    server = env.dhcp_address(net)
    a, b = env.vm(net, env.hv1), env.vm(net, env.hv2)
    cap_a, cap_b = env.capture(a), env.capture(b)

    block_unicast_to(a, server)
    pa, log = env.udhcpc_daemon(a)
    pb, reasons = env.dhclient_daemon(b)
    wait_until(lambda: "bound" in events(log), 20, what="udhcpc bound")
    wait_until(lambda: "BOUND" in reasons(), 20, what="dhclient BOUND")
    assert last_event(log, "bound")["lease"] == str(SHORT_LEASE)
    # dhclient's T1 renewal: unicast, through flow ARP and the punt flow.
    wait_until(lambda: "RENEW" in reasons(), 2 * SHORT_LEASE, what="dhclient RENEW")
    block_unicast_to(b, server)
    # dhclient keeps reporting RENEW (its state stays RENEWING after T2).
    wait_until(lambda: reasons().count("RENEW") >= 2, 2 * SHORT_LEASE, what="dhclient rebound")
    wait_until(lambda: "renew" in events(log), 2 * SHORT_LEASE, what="udhcpc rebound")

    seen = {a.name: cap_a.packets(), b.name: cap_b.packets()}
    for vm in (a, b):
        packets = seen[vm.name]
        rebinds = [r for r in requests(packets, ip_dst="255.255.255.255")
                   if r[BOOTP].ciaddr == vm.ip and r.dst == "ff:ff:ff:ff:ff:ff"]
        assert rebinds and any(answered(packets, r) for r in rebinds), (vm.name, packets)
        assert vm.exec("ip", "-4", "addr", "show", "dev", "eth0").stdout.count(f"inet {vm.ip}/") == 1
    unicasts = requests(seen[b.name], ip_dst=server)
    assert unicasts and answered(seen[b.name], unicasts[0])             # the T1 renewal
    assert blocked_packets(b) >= 1          # later unicast renewals were sent, and lost
    # The leases stayed: no NAK, no expiry, no new DISCOVER cycle.
    assert "nak" not in events(log) and events(log).count("deconfig") == 1
    assert not {"EXPIRE", "FAIL", "NAK"} & set(reasons())
    assert [dhcp_options(p)["message-type"] for p in seen[b.name]].count(1) == 1   # one DISCOVER
    assert a.ping(b.ip, count=2, timeout=2)
    m = metric_lines(env.c.url)
    assert m.get('quantum_dhcp_events_total{event="request_rebinding"}', 0) >= 2
    assert m.get('quantum_dhcp_events_total{event="request_renewing"}', 0) >= 1


@pytest.fixture
def gre_env(controller_factory, lab_factory, tmp_path):
    e = Env("gre", controller_factory, lab_factory, tmp_path)
    yield e
    e.stop_processes()


def test_two_subnets_a_vm_with_two_ports_inform_release_decline(gre_env):
    """Each NIC gets its port's address on the right subnet, with that
    subnet's router, DNS and server id; INFORM is answered without a lease in
    the order of the parameter request list; RELEASE and DECLINE are logged."""
    env = gre_env
    net, first = env.network(dns_nameservers=["192.0.2.11"])
    second = env.api.subnet(net, env.next_cidr(), dns_nameservers=["192.0.2.22"])
    # eth0: an address on the second subnet only; eth1: one on each subnet.
    p0 = env.api.port(net, fixed_ips=[{"subnet_id": second["id"]}])
    p1 = env.api.port(net, fixed_ips=[{"subnet_id": first["id"]}, {"subnet_id": second["id"]}])
    vm = env.lab.add_vm(env.hv1, p0, name="twonics")
    env.wait_active(p0)
    env.add_nic(vm, p1, "eth1")
    ip0 = p0["fixed_ips"][0]["ip_address"]
    ip1 = {f["subnet_id"]: f["ip_address"] for f in p1["fixed_ips"]}

    got0 = env.udhcpc_once(vm, "eth0")
    assert got0 is not None, env.c.log_tail()
    assert (got0["ip"], got0["router"], got0["dns"]) == (ip0, second["gateway_ip"], "192.0.2.22")
    assert got0["serverid"] == env.dhcp_address(net, second)
    # eth1's DISCOVER is offered one of its two addresses (the older subnet's;
    # created_at has 1 s resolution, so which one is not asserted here), with
    # that subnet's options.
    got1 = env.udhcpc_once(vm, "eth1")
    assert got1 is not None, env.c.log_tail()
    subnets = {first["id"]: (first, "192.0.2.11"), second["id"]: (second, "192.0.2.22")}
    leased = next(sid for sid, ip in ip1.items() if ip == got1["ip"])
    sn, dns = subnets[leased]
    assert (got1["router"], got1["dns"]) == (sn["gateway_ip"], dns)
    assert got1["serverid"] == env.dhcp_address(net, sn)
    nic1 = types.SimpleNamespace(mac=p1["mac_address"])
    # INIT-REBOOT for eth1's other address: acknowledged with the other subnet's options.
    other = next(sid for sid in ip1 if sid != leased)
    reply = env.exchange(vm, client_frame(nic1, "request", 0x2222, options=[
        ("requested_addr", ip1[other])]), iface="eth1")
    o = dhcp_options(reply)
    assert (o["message-type"], reply[BOOTP].yiaddr) == (5, ip1[other])
    assert (o["router"], o["server_id"]) == (subnets[other][0]["gateway_ip"],
                                             env.dhcp_address(net, subnets[other][0]))
    assert o["name_server"] == subnets[other][1]

    # INFORM from a configured address: an ACK without lease or yiaddr, the
    # asked-for options first in the client's order.
    server0 = env.dhcp_address(net, second)
    reply = env.exchange(vm, client_frame(vm, "inform", 0x3333, ciaddr=ip0, src=ip0, options=[
        ("param_req_list", [121, 6, 3, 1])]))
    o = dhcp_options(reply)
    assert o["message-type"] == 5 and reply[BOOTP].yiaddr == "0.0.0.0"
    assert "lease_time" not in o and "renewal_time" not in o
    assert reply[IP].dst == ip0 and reply.dst == vm.mac
    codes = [k for k, _ in (x for x in reply[DHCP].options if isinstance(x, tuple))]
    assert codes[:6] == ["message-type", "server_id", "classless_static_routes", "name_server",
                         "router", "subnet_mask"], codes

    # RELEASE (unicast to the server) and DECLINE: no answer, logged.
    server_mac = env.dhcp_port(net)["mac_address"]
    assert env.exchange(vm, client_frame(vm, "release", 0x4444, ciaddr=ip0, src=ip0, dst=server0,
                                         eth_dst=server_mac, options=[("server_id", server0)]),
                        timeout=1) is None
    assert env.exchange(vm, client_frame(nic1, "decline", 0x5555, options=[
        ("requested_addr", ip1[first["id"]]), ("server_id", env.dhcp_address(net, first))]),
        timeout=1, iface="eth1") is None
    wait_until(lambda: f"DHCP release from {vm.mac}" in env.c.log_text()
               and f"DHCP decline from {p1['mac_address']}" in env.c.log_text(), 10,
               what="RELEASE and DECLINE logged")
    m = metric_lines(env.c.url)
    for event in ("received_inform", "received_release", "received_decline"):
        assert m.get(f'quantum_dhcp_events_total{{event="{event}"}}', 0) >= 1, event


def test_nak_after_the_ports_fixed_ip_is_changed_through_the_api(env):
    net, subnet = env.network()
    a = env.vm(net, env.hv1)
    p, log = env.udhcpc_daemon(a)
    wait_until(lambda: "bound" in events(log), 20, what="udhcpc bound")
    old = a.ip
    new = old.rsplit(".", 1)[0] + ".200"
    env.api.put(f"/ports/{a.port_id}", {"port": {"fixed_ips": [
        {"subnet_id": subnet["id"], "ip_address": new}]}})
    # Once port security allows only the new address, the renewal of the old
    # one (unicast, from the old address, after an ARP for the server from
    # it) is refused; udhcpc starts over and gets the new one.
    wait_until(lambda: f"arp_spa={new}" in env.hv1.dump_flows("br-int"), 20,
               what="port security for the new address")
    a.exec("ip", "neigh", "flush", "dev", "eth0")     # the server's MAC must be asked for anew
    cap = env.capture(a)
    p.send_signal(signal.SIGUSR1)
    wait_until(lambda: "nak" in events(log), 20, what="DHCPNAK")
    wait_until(lambda: events(log)[-1] == "bound", 20, what="bound again")
    assert last_event(log, "bound")["ip"] == new
    # The first renewal, unicast to the server, was the one refused: the ARP for
    # the server from the lost address was answered (controller/flows/dhcp.py).
    packets = cap.packets()
    renewal = requests(packets)[0]
    assert renewal[IP].dst != "255.255.255.255" and renewal[BOOTP].ciaddr == old
    assert any(dhcp_options(q).get("message-type") == 6 and q[BOOTP].xid == renewal[BOOTP].xid
               for q in packets)
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
    # The garbage did reach the handler, and was counted, not crashed on. How much of
    # the burst reaches it depends on the machine's load: ovs-vswitchd drops packet-ins
    # while its queue toward a slow controller is full (a fresh-clone run under load
    # counted 73 of 3,000), so the bound only says "many, not a stray one".
    metrics = metric_lines(env.c.url)
    dropped = sum(v for k, v in metrics.items()
                  if k.startswith('quantum_dhcp_events_total{event="dropped_'))
    assert dropped >= 20, metrics
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
