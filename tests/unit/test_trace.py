"""The packet walker (controller/flows/trace.py) on compiled pipelines of
hand-built worlds: each step names its table and the flow's owner, and each
copy of the packet says where it ends."""
import uuid

import pytest

from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.flow import Flow, match
from controller.flows.trace import (CONTROLLER, DELIVERED, DROPPED, ERROR, Fabric, TraceError,
                                    table_name)
from controller.model.world import NetworkInfo, NodeInfo, PortInfo, SubnetInfo
from tests.unit.fakeoftable import DEFAULT_SG, compile_all, make_world


def node(name, ip):
    return NodeInfo(id=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), hostname=name, role="compute",
                    tunnel_ip=ip, tunnel_type="gre", bridge_mappings=(("physnet1", "br-eth1"),),
                    bridges=(("br-eth1", 3), ("br-int", 1), ("br-tun", 2)))


def port(net, where, ofport, mac, ip, owner="compute:nova"):
    return PortInfo(id=str(uuid.uuid5(uuid.NAMESPACE_DNS, mac)), network_id=net.id,
                    project_id="p1", mac=mac, fixed_ips=((SUB.id, ip),), device_owner=owner,
                    device_id="vm-" + mac[-2:], admin_state_up=True, port_security_enabled=True,
                    node_id=where.id if where else None, ofport=ofport if where else None,
                    security_groups=() if owner.startswith("network:") else (DEFAULT_SG,))


H1, H2 = node("hv1", "172.31.0.1"), node("hv2", "172.31.0.2")
NET = NetworkInfo(id=str(uuid.uuid5(uuid.NAMESPACE_DNS, "n1")), project_id="p1", network_type="gre",
                  physical_network=None, segmentation_id=101, mtu=1458, admin_state_up=True)
SUB = SubnetInfo(id="sub", network_id=NET.id, ip_version=4, cidr="10.0.0.0/24", gateway_ip=None,
                 enable_dhcp=True)
A = port(NET, H1, 5, "fa:16:3e:00:00:01", "10.0.0.5")
B = port(NET, H2, 7, "fa:16:3e:00:00:02", "10.0.0.6")
DHCP = port(NET, None, None, "fa:16:3e:00:00:aa", "10.0.0.2", owner="network:dhcp")


def icmp(src, dst, src_ip=None):
    return {"eth_src": src.mac, "eth_dst": dst.mac, "eth_type": 0x0800, "ip_proto": 1,
            "ipv4_src": src_ip or src.fixed_ips[0][1], "ipv4_dst": dst.fixed_ips[0][1]}


@pytest.fixture
def fab():
    w = make_world([H1, H2], [NET], [A, B, DHCP], [SUB])
    return Fabric(w, compile_all(w), strict=False)


def test_cross_host_unicast_walks_br_int_br_tun_then_the_remote_br_int(fab):
    tr = fab.trace(H1.id, A.ofport, icmp(A, B))
    assert [(o.kind, o.node_id, o.port) for o in tr.outcomes] == [(DELIVERED, H2.id, B.ofport)]
    path = [(s.node_id, s.bridge, s.table_name) for s in tr.steps]
    assert path[0] == (H1.id, "br-int", "CLASSIFY")
    assert (H1.id, "br-tun", "TO_TUNNEL") in path and (H2.id, "br-tun", "FROM_TUNNEL") in path
    assert path[-1] == (H2.id, "br-int", "OUTPUT")
    # every step matched a flow, and the owners are the port and its network
    owners = {cookies.decode(s.flow.cookie)[0] for s in tr.steps}
    assert None not in {s.flow for s in tr.steps} and {"port", "network"} <= owners
    # the flow that sends it to hv2 is B's (unicast to the exact host)
    to_tunnel = next(s for s in tr.steps if s.table_name == "TO_TUNNEL")
    assert to_tunnel.flow.cookie == cookies.cookie("port", B.id)
    # the delivered copy is untagged, without pipeline registers
    out = tr.outcomes[0].packet
    assert out["vlan_vid"] == 0 and "metadata" not in out and "reg7" not in out


def test_spoofed_source_is_dropped_by_port_security_with_the_reason(fab):
    tr = fab.trace(H1.id, A.ofport, icmp(A, B, src_ip="10.0.0.99"))
    (o,) = tr.outcomes
    assert o.kind == DROPPED and "spoofed" in o.reason
    assert tr.steps[-1].table == t.IntTable.PORT_SECURITY and tr.steps[-1].flow.priority == 0


def test_unknown_ingress_port_is_a_table_miss_or_drop_in_classify(fab):
    tr = fab.trace(H1.id, 42, icmp(A, B))
    assert [o.kind for o in tr.outcomes] == [DROPPED]
    assert tr.steps[-1].table_name == "CLASSIFY"


def test_dhcp_discover_goes_to_the_controller(fab):
    disc = {"eth_src": A.mac, "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x0800, "ip_proto": 17,
            "ipv4_src": "0.0.0.0", "ipv4_dst": "255.255.255.255", "udp_src": 68, "udp_dst": 67}
    tr = fab.trace(H1.id, A.ofport, disc)
    assert [o.kind for o in tr.outcomes] == [CONTROLLER]
    assert tr.steps[-1].table_name == "DHCP"
    assert fab.send(H1.id, A.ofport, disc)[0][1] == "controller"


def test_flood_reaches_the_other_host_only(fab):
    bcast = dict(icmp(A, B), eth_dst="ff:ff:ff:ff:ff:ff", ipv4_dst="10.0.0.255")
    assert fab.trace(H1.id, A.ofport, bcast).delivered() == [(H2.id, B.ofport)]


def test_flows_are_loaded_lazily_per_node_reached():
    w = make_world([H1, H2], [NET], [A, B, DHCP], [SUB])
    compiled, asked = compile_all(w), []
    fab = Fabric(w, lambda n: asked.append(n) or compiled[n], strict=False)
    fab.trace(H1.id, A.ofport, icmp(A, A))         # to itself: never leaves hv1
    assert asked == [H1.id]


def test_strict_mode_raises_on_compiler_bugs_and_lenient_mode_reports_them():
    w = make_world([H1], [NET], [A], [SUB])
    loop = [Flow("br-int", 0, 1, (), (("resubmit", None, 0),)), ]
    with pytest.raises(TraceError):
        Fabric(w, {H1.id: loop}).trace(H1.id, 5, {})
    tr = Fabric(w, {H1.id: loop}, strict=False).trace(H1.id, 5, {})
    assert ERROR in [o.kind for o in tr.outcomes]
    odd = [Flow("br-int", 0, 1, match(in_port=5), (("frobnicate",),))]
    tr = Fabric(w, {H1.id: odd}, strict=False).trace(H1.id, 5, {})
    assert [o.kind for o in tr.outcomes] == [ERROR] and "frobnicate" in tr.outcomes[0].reason


def test_table_names():
    assert table_name("br-int", 50) == "L2_LOOKUP"
    assert table_name("br-tun", 1) == "TO_TUNNEL"
    assert table_name("br-eth1", 0) == "CLASSIFY"
    assert table_name("br-int", 99) == "table 99"
