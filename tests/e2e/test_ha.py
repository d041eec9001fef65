"""Several controllers on one PostgreSQL, real Open vSwitch (docs/HA.md).

- every switch has exactly one MASTER among the controllers, the switch
  itself agrees (OVSDB's Controller.role), and all controllers name the same
  master;
- split brain: a master paused (SIGSTOP) past its lease loses its switches to
  another controller; when it wakes (SIGCONT) it sends nothing the switch
  accepts, and Open vSwitch refuses the old generation id (a raw OpenFlow
  connection asks with it: OFPRRFC_STALE), and a slave's flow_mod (IS_SLAVE);
- failover under traffic: cross-host ping every 10 ms and a DHCP client
  renewing in a loop while the master is killed (SIGKILL, then restarted)
  and paused/resumed, round after round: no ping lost, every renewal
  answered, ports created during each failover work, and every
  controller's API gives the same answers.
"""
from __future__ import annotations

import re
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.e2e.test_reconciler import Api
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.proc import wait_until

pytestmark = pytest.mark.lab

HA_ARGS = ["--ha-lease-duration", "0.8", "--ha-renew-interval", "0.1"]


def metrics(c) -> str:
    with urllib.request.urlopen(c.url + "/metrics", timeout=5) as r:
        return r.read().decode()


def roles(c) -> dict[str, tuple[str, str]]:
    """dpid -> (this controller's role, the master it names)."""
    out = {}
    try:
        text = metrics(c)
    except OSError:
        return out
    for mt in re.finditer(r'^quantum_switch_role\{([^}]*)\} 1(?:\.0)?$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', mt.group(1)))
        out[labels["dpid"]] = (labels["role"], labels["master"])
    return out


def console_nodes(c) -> str:
    from tests.e2e.test_reconciler import ADMIN
    req = urllib.request.Request(c.url + "/console/nodes", headers=ADMIN)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def counter(c, name: str) -> float:
    text = metrics(c)
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))


def hv_dpids(hv) -> list[str]:
    out = []
    for br in hv.bridges():
        if br == "br-phy":
            continue
        dpid = hv.vsctl("get", "bridge", br, "datapath_id").strip().strip('"')
        out.append(dpid)
    return out


def one_master(ctls, dpids) -> str | None:
    """The controller id that every controller agrees masters all `dpids`
    (exactly one says master, the others slave), or None."""
    seen = [roles(c) for c in ctls]
    names = set()
    for dpid in dpids:
        rs = [s.get(dpid) for s in seen]
        if any(r is None for r in rs):
            return None
        if sorted(r[0] for r in rs) != ["master"] + ["slave"] * (len(ctls) - 1):
            return None
        names |= {r[1] for r in rs}
    return names.pop() if len(names) == 1 else None


@pytest.fixture
def cluster(postgres, controller_factory):
    """start(n) -> n controllers on one fresh PostgreSQL database (ids ctl-0...)."""
    url = postgres.new_database()

    def start(n: int, join_delay: float = 1.0):
        args = HA_ARGS + ["--ha-join-delay", str(join_delay)]
        ctls = [controller_factory(db_url=url, args=args + ["--ha-controller-id", f"ctl-{i}"])
                for i in range(n)]
        wait_until(lambda: all(counter(c, "quantum_ha_live_controllers") == n for c in ctls), 20,
                   what="every controller sees the others")
        # Past the join delay, all are warm: the placement holds still from here.
        time.sleep(join_delay)
        return ctls
    return start


def by_id(ctls, cid):
    return ctls[int(cid.split("-")[1])]


# --- a raw OpenFlow 1.3 controller end, to ask the switch ourselves ------------------

class RawOpenFlow:
    """A listening socket the switch connects to as one more controller;
    speaks just enough OpenFlow 1.3 to ask for a role and send a flow_mod."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.ofp_port = self.sock.getsockname()[1]
        self.url = None
        self.conn = None
        self.xid = 100

    def accept(self, dpid: str, timeout=20.0):
        """Take the connection of the switch `dpid` (16 hex digits)."""
        deadline = time.monotonic() + timeout
        others = []
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            self.conn, _ = self.sock.accept()
            self.conn.settimeout(5)
            try:
                self._send(0, b"")                     # HELLO
                t, body = self._answer(self._send(5, b""))   # FEATURES_REQUEST
            except OSError:                            # one the switch gave up waiting on
                self.conn.close()
                continue
            if t == 6 and f"{struct.unpack('!Q', body[:8])[0]:016x}" == dpid:
                for c in others:
                    c.close()
                return
            others.append(self.conn)
        raise TimeoutError(f"switch {dpid} did not connect to the raw OpenFlow end")

    def _send(self, msg_type: int, body: bytes) -> int:
        self.xid += 1
        self.conn.sendall(struct.pack("!BBHI", 4, msg_type, 8 + len(body), self.xid) + body)
        return self.xid

    def _answer(self, xid: int):
        """The reply or error to `xid` -> (type, body); echo requests answered,
        anything else (hello, packet-ins, port status) skipped."""
        while True:
            hdr = self._read(8)
            _v, t, length, x = struct.unpack("!BBHI", hdr)
            body = self._read(length - 8)
            if t == 2:                                   # ECHO_REQUEST
                self.conn.sendall(struct.pack("!BBHI", 4, 3, length, x) + body)
            elif x == xid and t != 0:
                return t, body

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.conn.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("switch closed the connection")
            buf += chunk
        return buf

    def role(self, role: int, generation: int):
        """-> ("reply", role, generation) or ("error", type, code)."""
        t, body = self._answer(self._send(24, struct.pack("!I4xQ", role, generation)))
        if t == 1:
            return ("error",) + struct.unpack("!HH", body[:4])
        return ("reply",) + struct.unpack("!I4xQ", body[:16])

    def flow_mod(self):
        """An ADD of a harmless flow (table 250, no match, no instructions),
        then a barrier -> ("error", type, code) or ("ok",)."""
        fm = struct.pack("!QQBBHHHIIIH2x", 0, 0, 250, 0, 0, 0, 1, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
        fm += struct.pack("!HH4x", 1, 4)                # empty OXM match, padded
        xid = self._send(14, fm)
        bxid = self._send(20, b"")                       # BARRIER_REQUEST
        while True:
            hdr = self._read(8)
            _v, t, length, x = struct.unpack("!BBHI", hdr)
            body = self._read(length - 8)
            if t == 2:
                self.conn.sendall(struct.pack("!BBHI", 4, 3, length, x) + body)
            elif t == 1 and x == xid:
                return ("error",) + struct.unpack("!HH", body[:4])
            elif x == bxid:
                return ("ok",)

    def close(self):
        for s in (self.conn, self.sock):
            if s is not None:
                s.close()


MASTER, SLAVE = 2, 3
ROLE_REQUEST_FAILED, STALE = 11, 0
BAD_REQUEST, IS_SLAVE = 1, 10


def lease_generation(db_url: str, node_id: str) -> int:
    from controller.db.session import Database
    from controller.db import models as m
    db = Database(db_url)
    try:
        with db.read() as s:
            return s.get(m.Mastership, node_id).generation
    finally:
        db.dispose()


# --- tests ------------------------------------------------------------------------------


def test_each_switch_has_one_master_that_the_switch_confirms(cluster, lab_factory):
    ctls = cluster(2)
    lab = lab_factory(2, controllers=ctls)
    for hv in lab.hvs:
        dpids = hv_dpids(hv)
        master = wait_until(lambda: one_master(ctls, dpids), 20, what=f"one master for {hv.name}")
        idx = int(master.split("-")[1])
        # OVSDB's view: the relay ctl<idx>.sock leads to the master.
        def ovs_roles():
            out = hv.vsctl("--format=csv", "--data=bare", "--no-headings",
                           "--columns=target,role", "list", "controller")
            return {tuple(line.split(",")) for line in out.splitlines() if line}
        want_master = f"unix:{hv.rundir}/ctl{idx}.sock"
        wait_until(lambda: all((t == want_master) == (r == "master") and r in ("master", "slave")
                               for t, r in ovs_roles()), 20, what=f"OVSDB roles on {hv.name}")
    # Masters are spread: with two nodes and two controllers, one each.
    masters = {hv.hostname: one_master(ctls, hv_dpids(hv)) for hv in lab.hvs}
    assert set(masters.values()) == {"ctl-0", "ctl-1"}
    # Every console shows each node's master and each switch's role.
    for c in ctls:
        page = console_nodes(c)
        assert 'id="ha-controllers"' in page
        for hostname, master in masters.items():
            section = page[page.index(f"<h2>{hostname} "):]
            assert f'master <span class="code">{master}</span>' in section.split("</h2>")[0]
            bridge_rows = section.split("</table>")[0]
            assert ("<td>MASTER</td>" in bridge_rows) == (master == f"ctl-{ctls.index(c)}")
            assert ("<td>SLAVE</td>" in bridge_rows) == (master != f"ctl-{ctls.index(c)}")


def flows(hv, bridge="br-int") -> list[str]:
    return sorted(hv.ofctl("dump-flows", bridge, "--no-stats").splitlines()[1:])


def node_id_of(api: Api, hv) -> str:
    return next(n["id"] for n in api.get("/nodes")["nodes"] if n["hostname"] == hv.hostname)


def network_with_subnet(api: Api, name: str, cidr: str):
    net = api.network(name)
    api.subnet(net, cidr)
    return net


def test_a_paused_master_wakes_to_find_its_writes_refused(cluster, lab_factory):
    # Back from the pause, the old master counts as joining again: for the
    # join delay it stays slave, the window this test looks at.
    ctls = cluster(2, join_delay=4.0)
    raw = RawOpenFlow()
    lab = lab_factory(1, controllers=ctls + [raw])
    hv = lab.hvs[0]
    dpids = hv_dpids(hv)
    a = by_id(ctls, wait_until(lambda: one_master(ctls, dpids), 20, what="one master"))
    b = next(c for c in ctls if c is not a)
    api_b = Api(b.url)
    node = node_id_of(api_b, hv)
    old_gen = lease_generation(a.db_url, node)
    net = network_with_subnet(api_b, "ha-net", "10.7.0.0/24")
    vm1 = lab.add_vm(hv, api_b.port(net, name="before"), name="vm1")
    assert vm1.dhcp()
    a_mods = counter(a, "quantum_flow_mods_sent_total")

    a.proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: all(roles(b).get(d, ("",))[0] == "master" for d in dpids), 20,
                   what="the other controller takes over")
        new_gen = lease_generation(a.db_url, node)
        assert new_gen > old_gen
        # An API write while the old master sleeps reaches the data path through the new one.
        vm2 = lab.add_vm(hv, api_b.port(net, name="during"), name="vm2")
        assert vm2.dhcp()
        # Open vSwitch itself refuses the old generation, master or slave,
        # and a slave's flow_mod.
        br_int = hv.vsctl("get", "bridge", "br-int", "datapath_id").strip().strip('"')
        raw.accept(br_int)
        assert raw.role(MASTER, old_gen) == ("error", ROLE_REQUEST_FAILED, STALE)
        assert raw.role(SLAVE, old_gen) == ("error", ROLE_REQUEST_FAILED, STALE)
        assert raw.role(SLAVE, new_gen) == ("reply", SLAVE, new_gen)
        assert raw.flow_mod() == ("error", BAD_REQUEST, IS_SLAVE)
        before_wake = {br: flows(hv, br) for br in ("br-int", "br-tun")}
    finally:
        a.proc.send_signal(signal.SIGCONT)
        raw.close()
    # Awake, the old master sees it lost: slave everywhere, naming the new master.
    wait_until(lambda: all(roles(a).get(d, ("",))[0] == "slave" for d in dpids), 20,
               what="the woken controller is slave")
    b_id = f"ctl-{ctls.index(b)}"
    assert {roles(a)[d][1] for d in dpids} == {b_id}
    # Its pending work (the port created while it slept) sent nothing.
    time.sleep(1)     # room for anything the woken controller would still try
    assert {br: flows(hv, br) for br in ("br-int", "br-tun")} == before_wake
    assert counter(a, "quantum_flow_mods_sent_total") == a_mods      # the write gate held
    vm3 = lab.add_vm(hv, Api(a.url).port(net, name="after"), name="vm3")   # written through a
    assert vm3.dhcp()


class DhcpLoop(threading.Thread):
    """A DHCP client getting a lease again and again (udhcpc, 3 tries 1 s apart)."""

    def __init__(self, vm):
        super().__init__(daemon=True)
        self.vm = vm
        self.stop = threading.Event()
        self.answered = 0
        self.failed = 0
        self.failed_at: list[str] = []        # when each failed attempt started (the logs' format)

    def run(self):
        while not self.stop.is_set():
            t0 = time.time()
            if self.vm.dhcp(timeout=1, tries=3):
                self.answered += 1
            else:
                self.failed += 1
                self.failed_at.append(time.strftime("%H:%M:%S", time.localtime(t0)) + f",{int(t0 % 1 * 1000):03d}")
            self.stop.wait(0.2)


def master_of(ctls, dpids, alive):
    """The controller every live one names as master of all `dpids`, or None."""
    name = one_master([c for c in ctls if alive[c]], dpids)
    return by_id(ctls, name) if name else None


@pytest.mark.parametrize("n", [2, 3])
def test_failover_under_traffic_loses_nothing(cluster, lab_factory, n, tmp_path):
    """The master of hv1 is killed (then restarted) and paused (then resumed),
    in turn, 10 times, while vm1 pings vm2 on hv2 every 10 ms and vm3
    gets DHCP leases in a loop; during every failover a new port is created
    through a surviving controller and its VM must get its lease."""
    ctls = cluster(n)
    lab = lab_factory(2, controllers=ctls)
    hv1, hv2 = lab.hvs
    dpids = hv_dpids(hv1)
    api = Api(ctls[0].url)
    net = network_with_subnet(api, "ha-traffic", "10.8.0.0/24")
    vm1 = lab.add_vm(hv1, api.port(net, name="pinger"), name="vm1")
    vm2 = lab.add_vm(hv2, api.port(net, name="target"), name="vm2")
    vm3 = lab.add_vm(hv1, api.port(net, name="renewer"), name="vm3")
    for vm in (vm1, vm2, vm3):
        assert vm.dhcp()
    target = vm2.exec("ip", "-4", "-o", "addr", "show", "eth0").stdout.split()[3].split("/")[0]
    assert vm1.ping(target, count=3)
    alive = {c: True for c in ctls}
    # Into a file, never a pipe: a pipe nobody reads fills after about 1,000
    # lines and stops ping (blocked writing) long before the last round.
    ping_out = open(tmp_path / "ping.txt", "w+")
    ping = vm1.popen("ping", "-D", "-n", "-i", "0.01", target, stdout=ping_out,
                     stderr=subprocess.STDOUT, text=True)
    renewer = DhcpLoop(vm3)
    renewer.start()
    time.sleep(1.0)                         # failover of established traffic
    made = []
    plugs = []                              # [start, end] of each VM plug on hv1
    rounds_done = None
    try:
        for rnd in range(10):
            wait_until(lambda: master_of(ctls, dpids, alive), 30, what=f"round {rnd}: one master")
            victim = master_of(ctls, dpids, alive)
            alive[victim] = False
            survivor = next(c for c in ctls if alive[c])
            if rnd % 2 == 0:
                victim.kill()
            else:
                victim.proc.send_signal(signal.SIGSTOP)
            # Written while the master is gone; must reach the data path.
            port = Api(survivor.url).port(net, name=f"during-{rnd}")
            plugs.append([time.time()])
            vm = lab.add_vm(hv1, port, name=f"d{rnd}")
            plugs[-1].append(time.time())
            made.append((vm, vm.dhcp()))
            wait_until(lambda: master_of(ctls, dpids, alive), 30, what=f"round {rnd}: takeover")
            if rnd % 2 == 0:
                victim.start()
            else:
                victim.proc.send_signal(signal.SIGCONT)
            alive[victim] = True
        rounds_done = time.time()
    finally:
        ping.send_signal(signal.SIGINT)
        ping.wait(timeout=30)
        out = (tmp_path / "ping.txt").read_text()
        ping_out.close()
        renewer.stop.set()
        renewer.join(30)
    sent = int(re.search(r"(\d+) packets transmitted", out).group(1))
    answered = {int(x) for x in re.findall(r"icmp_seq=(\d+)", out)}
    # Requests still in flight when ping was stopped are not losses; any
    # request older than the last answered one that went unanswered is.
    lost = sorted(set(range(1, max(answered) + 1)) - answered)
    assert sent > 1000 and sent - max(answered) < 50, out[-500:]
    assert float(re.findall(r"^\[([\d.]+)\]", out, re.M)[-1]) > rounds_done - 1, "ping stopped early"
    # A VM plugged on hv1 can cost one echo of other traffic there, failover
    # or not: with one controller, alive, killed or paused, 8 echoes in 180
    # plugs, none in as long without plugs (Open vSwitch 3.1's userspace
    # datapath; it counts drops while ports are added in
    # datapath_drop_upcall_error). So a loss during a plug is allowed, at
    # most one per plug; any other loss fails.
    answered_at = {int(seq): float(t) for t, seq in re.findall(r"^\[([\d.]+)\].*icmp_seq=(\d+)", out, re.M)}
    sent_at = {n: answered_at.get(n - 1, 0.0) for n in lost}      # about: the previous one's answer
    at_plug = {n for n in lost if any(a - 0.05 <= sent_at[n] <= b + 0.1 for a, b in plugs)}
    when = {n: time.strftime("%H:%M:%S", time.localtime(sent_at[n])) + f",{int(sent_at[n] % 1 * 1000):03d}"
            for n in lost}
    assert set(lost) == at_plug and len(at_plug) <= len(plugs), \
        f"{len(lost)} of {sent} pings lost (seq, after; * during a plug): " \
        f"{[(n, when[n] + ('*' if n in at_plug else '')) for n in lost[:20]]}"
    assert renewer.failed == 0 and renewer.answered >= 10, \
        f"{renewer.answered} renewals answered, {renewer.failed} failed (started at {renewer.failed_at})"
    assert all(lease and lease.get("ip") for _vm, lease in made), made
    # Every controller's API says the same.
    def ports(c):
        return sorted((p["id"], p["status"], p["mac_address"]) for p in Api(c.url).get("/ports")["ports"])
    wait_until(lambda: len({tuple(ports(c)) for c in ctls}) == 1, 20, what="same answers everywhere")


def test_a_write_on_a_slave_is_served_at_once_by_the_masters_dhcp(cluster, lab_factory):
    """A port's address changed through a controller that is not the master
    reaches the master through the change log (PostgreSQL notification), and
    the master's DHCP answers with the new address while its facts cache
    (10 s) would still hold the old one."""
    ctls = cluster(2)
    lab = lab_factory(1, controllers=ctls)
    hv = lab.hvs[0]
    dpids = hv_dpids(hv)
    master = by_id(ctls, wait_until(lambda: one_master(ctls, dpids), 20, what="one master"))
    slave = next(c for c in ctls if c is not master)
    api = Api(slave.url)
    net = network_with_subnet(api, "ha-dhcp", "10.6.0.0/24")
    port = api.port(net, name="moving")
    vm = lab.add_vm(hv, port, name="vm1")
    assert vm.dhcp()["ip"] == port["fixed_ips"][0]["ip_address"]     # the master's cache holds it now
    subnet_id = port["fixed_ips"][0]["subnet_id"]
    api.put(f"/ports/{port['id']}", {"port": {"fixed_ips": [{"subnet_id": subnet_id,
                                                             "ip_address": "10.6.0.77"}]}})
    # A deadline well inside the cache's 10 s: only a prompt flush passes.
    wait_until(lambda: (vm.dhcp(timeout=1, tries=1) or {}).get("ip") == "10.6.0.77", 5,
               what="the new address from the master's DHCP")
