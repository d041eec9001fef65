"""The console's pure flow logic: which flows serve a port or a network
(controller/console/serves.py), drift between desired and installed flows
(switches.drift), and the Trace page's packet (traceview)."""
import dataclasses

from controller.console import serves, switches, traceview
from controller.console.owners import OwnerIndex
from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.compiler import compile_node
from controller.flows.flow import Flow, match
from controller.flows.trace import DELIVERED
from tests.unit.fakeoftable import make_world
from tests.unit.test_trace import A, B, DHCP, H1, H2, NET, SUB

WORLD = make_world([H1, H2], [NET], [A, B, DHCP], [SUB])
OWNERS = OwnerIndex({"port": {p.id: "" for p in (A, B, DHCP)}, "network": {NET.id: "n1"}})
NET_DICT = {"id": NET.id, "type": "gre", "segmentation_id": NET.segmentation_id}


def as_dict(p):
    return {"id": p.id, "mac": p.mac, "ips": [ip for _s, ip in p.fixed_ips], "ofport": p.ofport}


def flows_of(node, bridge):
    return [f for f in compile_node(WORLD, node).flows if f.bridge == bridge]


def test_a_port_is_served_by_its_own_flows_and_by_flows_that_name_it():
    marks = serves.port_marks(as_dict(B), OWNERS, H1.id, "br-tun", B.node_id)
    on_tun = [f for f in flows_of(H1, "br-tun") if serves.serves_port(f, marks)]
    # hv1's br-tun sends B's MAC to hv2: B's unicast flow
    assert on_tun and all(f.cookie == cookies.cookie("port", B.id) for f in on_tun)
    # on its own br-int, the network's flood flow (output to its ofport) serves it too
    marks = serves.port_marks(as_dict(B), OWNERS, H2.id, "br-int", B.node_id)
    served = [f for f in flows_of(H2, "br-int") if serves.serves_port(f, marks)]
    assert any(f.table == t.IntTable.L2_LOOKUP and f.cookie == cookies.cookie("network", NET.id)
               and ("output", B.ofport) in f.actions for f in served)
    # A's flows do not
    assert not any(f.cookie == cookies.cookie("port", A.id) for f in served)


def test_a_network_is_served_by_its_flows_on_every_bridge():
    port_cookies = set().union(*(OWNERS.cookies_of("port", p.id) for p in (A, B, DHCP)))
    for bridge in ("br-int", "br-tun"):
        marks = serves.network_marks(NET_DICT, port_cookies, WORLD, H1.id, bridge)
        served = [f for f in flows_of(H1, bridge) if serves.serves_network(f, marks)]
        assert served and all(f.cookie != cookies.cookie("infra", H1.id) for f in served)
    marks = serves.network_marks(NET_DICT, set(), WORLD, H1.id, "br-tun")
    assert any(serves.serves_network(f, marks) for f in flows_of(H1, "br-tun")
               if f.match == match(tunnel_id=NET.segmentation_id))


def test_address_filter_matches_values_in_match_and_set_field():
    f = Flow("br-int", 20, 100, match(arp_tpa="10.0.0.6"), (("set_field", "eth_src", "FA:16:3E:00:00:02"),))
    assert serves.mentions(f, "10.0.0.6") and serves.mentions(f, "fa:16:3e:00:00:02")
    assert not serves.mentions(f, "10.0.0.60")


def test_drift_reports_missing_extra_and_differing_and_ignores_foreign_flows():
    desired = flows_of(H1, "br-int")
    gone, changed = desired[0], next(f for f in desired if f.actions)
    rest = [f for f in desired if f not in (gone, changed)]
    installed = rest + [dataclasses.replace(changed, actions=()),
                        Flow("br-int", 50, 7, match(metadata=99), (), cookies.cookie("port", A.id)),
                        Flow("br-int", 0, 1000, match(in_port=99), (), 0)]
    d = switches.drift(desired, installed)
    assert d.missing == [gone] and d.differing == [(changed, dataclasses.replace(changed, actions=()))]
    assert [f.priority for f in d.extra] == [7] and d.foreign == 1 and not d.clean
    assert switches.drift(desired, desired + [installed[-1]]).clean


def test_trace_page_packet_resolves_the_destination_mac_and_ends_at_the_port():
    res = traceview.run(WORLD, traceview.TraceRequest(A.id, "10.0.0.6", "tcp", 22))
    assert res.error is None and res.packet["eth_dst"] == B.mac and res.packet["tcp_dst"] == 22
    assert [(o.kind, o.node_id, o.port) for o in res.trace.outcomes] == [(DELIVERED, H2.id, B.ofport)]


def test_trace_page_falls_back_to_arp_for_an_unknown_address_and_rejects_bad_input():
    res = traceview.run(WORLD, traceview.TraceRequest(A.id, "10.0.0.77"))
    assert res.packet["eth_type"] == 0x0806 and any("ARP" in n for n in res.notes)
    assert traceview.run(WORLD, traceview.TraceRequest(A.id, "not-an-ip")).error
    assert "not plugged" in traceview.run(WORLD, traceview.TraceRequest(DHCP.id, "10.0.0.5")).error
