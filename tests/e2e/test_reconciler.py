"""The reconciler alone against real Open vSwitch: one hypervisor of the lab
(its own ovsdb-server + ovs-vswitchd, set up by the real node-bootstrap), a
real controller process. Port binding is written into the database here (as
the OVSDB monitor would), so nothing but the reconciler is under test.

- the desired flows end up on the switch exactly (ovs-ofctl dump-flows);
- a controller restart, clean or SIGKILL, reads the flows back and sends zero flow_mods;
- a flow deleted behind its back is repaired on reconnect, a flow an operator
  added with cookie 0 is left alone;
- deleting a port removes its flows; a bound port becomes ACTIVE.
"""
from __future__ import annotations

import json
import re
import urllib.request

import pytest

from controller.db import models as m
from controller.db.session import Database
from controller.flows.compiler import compile_node
from controller.model.snapshot import load_world
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.proc import wait_until

pytestmark = pytest.mark.lab

ADMIN = {"X-Project-Id": "admin-project", "X-User-Id": "admin", "X-Roles": "admin,member,reader",
         "Content-Type": "application/json"}


class Api:
    """Plain HTTP to the controller's Quantum v2.0 API."""

    def __init__(self, url: str, project: str = "admin-project"):
        self.url = url.rstrip("/") + "/v2.0"
        self.headers = dict(ADMIN, **{"X-Project-Id": project})

    def call(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=self.headers)
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def post(self, path, body):
        return self.call("POST", path, body)

    def put(self, path, body):
        return self.call("PUT", path, body)

    def get(self, path):
        return self.call("GET", path)

    def delete(self, path):
        return self.call("DELETE", path)

    def network(self, name, **attrs):
        return self.post("/networks", {"network": {"name": name, **attrs}})["network"]

    def subnet(self, net, cidr, **attrs):
        return self.post("/subnets", {"subnet": {"network_id": net["id"], "cidr": cidr,
                                                 "ip_version": 4, **attrs}})["subnet"]

    def port(self, net, **attrs):
        return self.post("/ports", {"port": {"network_id": net["id"], **attrs}})["port"]


def round_totals(log: str) -> list[int]:
    """flow_mods total after every reconcile round, from the controller log."""
    return [int(x) for x in re.findall(r"round: .* total=(\d+)", log)]


def resynced(log: str, switches: int) -> bool:
    """Every switch was read back and a round finished after the last read-back."""
    reads = [mt.end() for mt in re.finditer(r"read back", log)]
    rounds = [mt.end() for mt in re.finditer(r"round: .* total=", log)]
    return len(reads) >= switches and bool(rounds) and rounds[-1] > reads[-1]


def our_flows(hv, bridge: str) -> set[str]:
    """The switch's flows with our cookies, without counters."""
    out = set()
    for line in hv.dump_flows(bridge).splitlines():
        line = line.strip()
        if not line.startswith("cookie=") or line.startswith("cookie=0x0,"):
            continue
        line = re.sub(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?", "", line)
        out.add(line)
    return out


def bind(db: Database, port_id: str, hostname: str, ofport: int | None):
    """What the OVSDB monitor writes when Nova plugs (or unplugs) the port."""
    def txn(s):
        p = s.get(m.Port, port_id)
        p.host_id, p.ofport, p.vif_type = (hostname, ofport, "ovs") if ofport else ("", None, "unbound")
        s.add(m.ChangeLog(kind="port", resource_id=port_id))
    db.run_in_transaction(txn)


def desired(db: Database, hostname: str) -> dict[str, int]:
    """Flow count per bridge the compilers want for that node."""
    with db.read() as s:
        world = load_world(s, allocate=False)
    node = next(n for n in world.nodes.values() if n.hostname == hostname)
    counts: dict[str, int] = {}
    for f in compile_node(world, node).flows:
        counts[f.bridge] = counts.get(f.bridge, 0) + 1
    return counts


def port_status(db: Database, port_id: str) -> str:
    with db.read() as s:
        return s.get(m.Port, port_id).status


def test_reconciler_on_real_ovs(controller_factory, lab_factory):
    c = controller_factory()
    lab = lab_factory(1, c)
    hv = lab.hvs[0]
    api = Api(c.url)
    db = Database(f"sqlite:///{c.state_dir}/quantum.db")
    try:
        net = api.network("n1", **{"provider:network_type": "gre", "provider:segmentation_id": 77})
        api.subnet(net, "10.7.0.0/24")
        ports = [api.port(net, name=f"p{i}") for i in range(3)]
        vms = [lab.add_vm(hv, p) for p in ports]
        for p, vm in zip(ports, vms):
            bind(db, p["id"], hv.hostname, vm.ofport())
        bridges = ("br-int", "br-tun", "br-eth1")

        def converged():
            want = desired(db, hv.hostname)
            return all(len(our_flows(hv, b)) == want.get(b, 0) for b in bridges)
        wait_until(converged, 30, what="desired flows on the switches")
        wait_until(lambda: all(port_status(db, p["id"]) == "ACTIVE" for p in ports), 30,
                   what="ports ACTIVE")
        vms[0].set_ip(ports[0]["fixed_ips"][0]["ip_address"] + "/24")
        vms[1].set_ip(ports[1]["fixed_ips"][0]["ip_address"] + "/24")
        assert vms[0].ping(ports[1]["fixed_ips"][0]["ip_address"], count=2)
        before = {b: our_flows(hv, b) for b in bridges}
        assert len(before["br-int"]) > 20

        # An operator's own flow (cookie 0) must survive everything below.
        hv.ofctl("add-flow", "br-int", "table=5,priority=7,tcp,tp_dst=4242,actions=drop")

        # Clean restart: read back, nothing to send.
        for how in ("restart", "sigkill"):
            mark = len(c.log_text())
            c.stop() if how == "restart" else c.kill()
            c.start()
            wait_until(lambda: resynced(c.log_text()[mark:], len(bridges)), 30, what="resync after restart")
            assert round_totals(c.log_text()[mark:])[-1] == 0, c.log_text()[mark:]
            assert {b: our_flows(hv, b) for b in bridges} == before

        # A flow deleted behind our back is repaired on reconnect.
        victim = f"table=50,priority=100,metadata=0x1,dl_dst={ports[1]['mac_address']}"
        hv.ofctl("del-flows", "br-int", "--strict", victim)
        assert our_flows(hv, "br-int") != before["br-int"]
        mark = len(c.log_text())
        c.stop()
        c.start()
        wait_until(lambda: resynced(c.log_text()[mark:], len(bridges)), 30, what="resync after restart")
        assert our_flows(hv, "br-int") == before["br-int"]
        assert round_totals(c.log_text()[mark:])[-1] == 1
        assert "tp_dst=4242" in hv.dump_flows("br-int")

        # Stale flows of deleted resources disappear (change seen via the change log).
        api.delete(f"/ports/{ports[2]['id']}")
        mac = ports[2]["mac_address"]
        wait_until(lambda: mac not in hv.dump_flows("br-int"), 30, what="port flows removed")
        wait_until(converged, 30, what="desired flows after delete")

        # Unbinding sets the port DOWN.
        bind(db, ports[1]["id"], hv.hostname, None)
        wait_until(lambda: port_status(db, ports[1]["id"]) == "DOWN", 30, what="port DOWN")
        wait_until(converged, 30, what="desired flows after unbind")
        assert "tp_dst=4242" in hv.dump_flows("br-int")
        assert "Traceback" not in c.log_text()
    finally:
        db.dispose()


def test_changes_while_no_switch_is_connected(controller_factory, lab_factory):
    """With no switch connected the reconciler holds the API's changes; the
    switches get all of them once they connect again."""
    c = controller_factory()
    lab = lab_factory(1, c)
    hv = lab.hvs[0]
    api = Api(c.url)
    db = Database(f"sqlite:///{c.state_dir}/quantum.db")
    bridges = ("br-int", "br-tun", "br-eth1")

    def converged():
        want = desired(db, hv.hostname)
        return all(len(our_flows(hv, b)) == want.get(b, 0) for b in bridges)

    try:
        net = api.network("n1", **{"provider:network_type": "gre", "provider:segmentation_id": 78})
        api.subnet(net, "10.8.0.0/24")
        ports = [api.port(net, name=f"p{i}") for i in range(3)]
        vm = lab.add_vm(hv, ports[0])
        bind(db, ports[0]["id"], hv.hostname, vm.ofport())
        wait_until(converged, 30, what="desired flows on the switches")

        targets = {b: hv.vsctl("get-controller", b).split() for b in bridges}
        mark = len(c.log_text())
        for b in bridges:
            hv.vsctl("del-controller", b)
        wait_until(lambda: c.log_text()[mark:].count("switch disconnected") >= len(bridges), 30,
                   what="switches disconnected")
        new = api.port(net, name="while-away")
        api.put(f"/ports/{ports[1]['id']}", {"port": {"admin_state_up": False}})
        api.delete(f"/ports/{ports[2]['id']}")
        for b in bridges:
            hv.vsctl("set-controller", b, *targets[b])
        wait_until(converged, 30, what="desired flows after the switches came back")
        flows = hv.dump_flows("br-int")
        assert new["mac_address"] in flows
        assert ports[2]["mac_address"] not in flows
        assert "Traceback" not in c.log_text()
    finally:
        db.dispose()


def test_many_switches_connecting_at_once(controller_factory):
    """60 bridges on one vswitchd (60 registered nodes) connect in the same
    instant, at start and again after a controller restart: every one is
    accepted and gets its flows; after the restart every one is read back
    and confirmed with zero flow_mods."""
    from tests.lab.bridges import ManyBridges

    c = controller_factory()
    api = Api(c.url)
    db = Database(f"sqlite:///{c.state_dir}/quantum.db")
    try:
        with ManyBridges(60, c.ofp_port) as mb:
            for i, (br, dpid) in enumerate(mb.dpids.items()):
                api.post("/nodes", {"node": {"hostname": f"{mb.tag}-{br}", "role": "compute",
                                             "tunnel_ip": f"172.30.0.{i + 1}", "tunnel_type": "gre",
                                             "ovsdb": mb.db, "bridge_mappings": {},
                                             "bridges": {"br-int": dpid}}})
            want = desired(db, f"{mb.tag}-br000")["br-int"]

            def all_programmed():
                return all(mb.flow_count(br) == want for br in mb.dpids)
            wait_until(all_programmed, 60, interval=0.5, what="flows on all 60 bridges")
            wait_until(lambda: mb.connected() == 60, 30, what="60 connections up")
            mb.apply_max_backoff()       # as a hypervisor's first port plug would (OVS < 3.3)

            c.stop()
            mark = len(c.log_text())
            c.start()
            pat = re.compile(r"switch ([0-9a-f]{16}) \(br-int\): resynced in [\d.]+s after connect, (\d+) flow_mods")

            def resynced_all():
                got = {int(d, 16): int(n) for d, n in pat.findall(c.log_text()[mark:])}
                return got if set(got) == set(mb.dpids.values()) else None
            got = wait_until(resynced_all, 60, interval=0.2, what="60 switches resynced after restart")
            assert set(got.values()) == {0}
            assert all_programmed()
            assert "Traceback" not in c.log_text()
    finally:
        db.dispose()
