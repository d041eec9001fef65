"""The planner alone (controller/flows/plan.py): what a switch is sent so that
its flows become the compiled ones, checked on the fake flow table (what the
switches hold after the plans is what forwards the packets), and which nodes
a change touches."""
import dataclasses

from controller.events import Change
from controller.flows.compiler import compile_node
from controller.flows.flow import Flow, Meter, match
from controller.flows.plan import affected_nodes, apply_plan, diff, plan_switch
from tests.unit.fakeoftable import DEFAULT_SG, FakeFabric, make_world
from tests.unit.test_flows_l2 import at, delivered, ip_pkt, net, node, port

H1, H2, H3 = node("plan-h1", "192.0.2.11"), node("plan-h2", "192.0.2.12"), node("plan-h3", "192.0.2.13")
N1, N2 = net("plan-n1", seg=401), net("plan-n2", seg=402)
A = port(N1, H1, 5, "fa:16:3e:00:04:01", "10.4.0.1")
B = port(N1, H2, 5, "fa:16:3e:00:04:02", "10.4.0.2")
C = port(N2, H3, 5, "fa:16:3e:00:04:03", "10.4.0.3")


def flow(table, prio, out, cookie=0x0300000000000001, bridge="br-int", **m):
    return Flow(bridge, table, prio, match(**m), (("output", out),), cookie)


class Switches:
    """Every bridge of every node as the planner sees it: (node, bridge) -> installed."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.installed = {(n.id, b): {} for n in nodes for b, _ in n.bridges}
        self.meters = {k: None for k in self.installed}
        self.sent = 0

    def reconcile(self, world, keys=None):
        for n in self.nodes:
            compiled = compile_node(world, world.nodes[n.id])
            desired = {f.key: f for f in compiled.flows}
            meters = {(x.bridge, x.meter_id): x for x in compiled.meters}
            for b, _ in n.bridges:
                p = plan_switch(b, desired, meters, self.installed[(n.id, b)], self.meters[(n.id, b)],
                                compiled.complete, keys)
                self.sent += len(p.adds) + len(p.mods) + len(p.dels)
                self.installed[(n.id, b)], self.meters[(n.id, b)] = apply_plan(
                    p, self.installed[(n.id, b)], self.meters[(n.id, b)])

    def fabric(self, world):
        flows = {n.id: [f for (nid, _b), inst in self.installed.items() if nid == n.id
                        for f in inst.values()] for n in self.nodes}
        return FakeFabric(world, flows)


def test_planned_switches_forward_like_the_compiled_flows():
    w1 = make_world([H1, H2, H3], [N1, N2], [A, B, C])
    sw = Switches([H1, H2, H3])
    sw.reconcile(w1)
    out = sw.fabric(w1).send(H1.id, 5, ip_pkt(A.mac, B.mac, "10.4.0.1", "10.4.0.2"))
    assert delivered(out) == at((H2.id, 5))
    # B moves to H3: planned from what the switches hold, the traffic follows it
    moved = dataclasses.replace(B, node_id=H3.id, ofport=7)
    w2 = make_world([H1, H2, H3], [N1, N2], [A, moved, C])
    before = sw.sent
    sw.reconcile(w2)
    assert 0 < sw.sent - before < before       # the difference, not the whole table again
    out = sw.fabric(w2).send(H1.id, 5, ip_pkt(A.mac, B.mac, "10.4.0.1", "10.4.0.2"))
    assert delivered(out) == at((H3.id, 7))
    for n in (H1, H2, H3):                     # exactly the compiled flows, nothing stale
        want = {f.key: f for f in compile_node(w2, n).flows}
        have = {k: f for (nid, _b), inst in sw.installed.items() if nid == n.id for k, f in inst.items()}
        assert have == want
    sw.sent = 0
    sw.reconcile(w2)
    assert sw.sent == 0                         # nothing new: nothing sent


def test_diff_adds_a_changed_cookie_and_modifies_changed_actions():
    same, gone = flow(0, 10, 1, in_port=1), flow(0, 10, 1, in_port=2)
    recookied = flow(0, 10, 1, cookie=0x0300000000000002, in_port=3)
    acted = flow(0, 10, 9, in_port=4)
    installed = {f.key: f for f in (same, gone, flow(0, 10, 1, in_port=3), flow(0, 10, 1, in_port=4))}
    adds, mods, dels = diff(installed, [same, recookied, acted])
    assert (adds, mods, dels) == ([recookied], [acted], [gone])
    assert diff(installed, [same], allow_delete=False)[2] == []


def test_only_the_changed_keys_are_compared_and_only_this_bridge():
    a, b = flow(0, 10, 1, in_port=1), flow(0, 10, 2, in_port=2)
    tun = flow(0, 10, 2, bridge="br-tun", in_port=2)
    desired = {f.key: f for f in (a, b, tun)}
    installed = {b.key: dataclasses.replace(b, actions=())}
    full = plan_switch("br-int", desired, {}, installed, {}, True)
    assert full.adds == [a] and full.mods == [b] and not full.dels
    only_a = plan_switch("br-int", desired, {}, installed, {}, True, keys={a.key, tun.key})
    assert only_a.adds == [a] and not only_a.mods     # b's key did not change: not looked at
    assert plan_switch("br-tun", desired, {}, {}, {}, True).adds == [tun]


def test_an_incomplete_compile_deletes_nothing():
    stale, kept = flow(0, 10, 1, in_port=1), Meter("br-int", 7, 10, 5)
    p = plan_switch("br-int", {}, {}, {stale.key: stale}, {7: kept}, complete=False)
    assert p.nothing_to_do
    p = plan_switch("br-int", {}, {}, {stale.key: stale}, {7: kept}, complete=True)
    assert p.dels == [stale] and p.meter_dels == [kept]


def test_meters_added_modified_deleted():
    m1, m2, m3 = Meter("br-int", 1, 10, 5), Meter("br-int", 2, 10, 5), Meter("br-int", 3, 10, 5)
    m2b = dataclasses.replace(m2, rate_pps=20)
    p = plan_switch("br-int", {}, {("br-int", 1): m1, ("br-int", 2): m2b, ("br-tun", 9): m3},
                    {}, {2: m2, 3: m3}, True)
    assert (p.meter_adds, p.meter_mods, p.meter_dels) == ([m1], [m2b], [m3])
    _, meters = apply_plan(p, {}, {2: m2, 3: m3})
    assert meters == {1: m1, 2: m2b}
    assert apply_plan(plan_switch("br-int", {}, {}, {}, None, True), None, None) == ({}, {})


def test_affected_nodes_of_a_port_a_network_and_anything_else():
    w1 = make_world([H1, H2, H3], [N1, N2], [A, B, C])
    moved = dataclasses.replace(B, node_id=H3.id, ofport=7)
    w2 = make_world([H1, H2, H3], [N1, N2], [A, moved, C])
    # where it was and is, and every node with a port on its network
    assert affected_nodes(w1, w2, [Change("port", B.id)]) == {H1.id, H2.id, H3.id}
    # C is a member of the default group that A's and B's ingress rules name
    assert affected_nodes(w1, w1, [Change("port", C.id)]) == {H1.id, H2.id, H3.id}
    lone = dataclasses.replace(C, security_groups=())
    w3 = make_world([H1, H2, H3], [N1, N2], [A, B, lone])
    assert affected_nodes(w3, w3, [Change("port", C.id)]) == {H3.id}
    assert affected_nodes(w1, w1, [Change("network", N1.id)]) == {H1.id, H2.id}
    assert affected_nodes(w1, w1, [Change("router", "r")]) == {H1.id, H2.id, H3.id}
    # a security group (or its rules): where its members are, where rules name it
    assert affected_nodes(w3, w3, [Change("security_group", DEFAULT_SG)]) == {H1.id, H2.id}
    assert affected_nodes(w3, w3, [Change("security_group", "another")]) == set()
    assert affected_nodes(w1, w1, []) == set()
