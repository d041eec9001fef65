"""DHCP option 121 carries a route to 169.254.169.254 via the DHCP port on
subnets without a router (controller/dhcp/server.py, SubnetFacts.metadata_route,
set by controller/apps/dhcp.py)."""
from __future__ import annotations

from scapy.layers.dhcp import DHCP
from scapy.layers.l2 import Ether

from controller.db import models as m
from controller.db.session import Database
from controller.apps.dhcp import load_switch_facts
from controller.dhcp.packet import parse
from controller.dhcp.server import decide
from tests.unit.test_dhcp_helpers import SERVER_IP, SETTINGS, VM_IP, client_frame, port, subnet

ASK_121 = [("param_req_list", [1, 3, 121])]


def routes_121(facts):
    """The routes of option 121 in the OFFER, decoded by scapy (None: no option 121)."""
    d = decide(parse(client_frame("discover", options=ASK_121)), facts, SETTINGS)
    for o in Ether(d.frame)[DHCP].options:
        if isinstance(o, tuple) and o[0] == "classless_static_routes":
            return sorted(tuple(r.split(":")) for r in o[1])
    return None


def test_isolated_subnet_gets_the_metadata_route_and_keeps_the_default():
    routes = routes_121(port((subnet(metadata_route=True), VM_IP)))
    assert routes == sorted([("0.0.0.0/0", "10.0.0.1"), ("169.254.169.254/32", SERVER_IP)])


def test_isolated_subnet_without_gateway_gets_only_the_metadata_route():
    routes = routes_121(port((subnet(metadata_route=True, gateway_ip=None), VM_IP)))
    assert routes == [("169.254.169.254/32", SERVER_IP)]


def test_routed_subnet_or_an_explicit_host_route_adds_nothing():
    assert routes_121(port((subnet(metadata_route=False), VM_IP))) == [("0.0.0.0/0", "10.0.0.1")]
    assert routes_121(port((subnet(metadata_route=False, gateway_ip=None), VM_IP))) is None
    own = (("169.254.169.254/32", "10.0.0.77"),)
    routes = routes_121(port((subnet(metadata_route=True, host_routes=own), VM_IP)))
    assert ("169.254.169.254/32", "10.0.0.77") in routes
    assert ("169.254.169.254/32", SERVER_IP) not in routes


def test_facts_say_isolated_until_a_router_interface_joins(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/q.db")
    db.upgrade()
    with db.write() as s:
        s.add(m.Node(id="n1", hostname="hv1", bridges={"br-int": 42}))
        s.add(m.Network(id="net", project_id="p", network_type="gre", segmentation_id=1))
        s.add(m.Subnet(id="sub", project_id="p", network_id="net", ip_version=4,
                       cidr="10.0.0.0/24", gateway_ip="10.0.0.1"))
        s.flush()
        for pid, owner, ip, ofport in (("dhcp", "network:dhcp", "10.0.0.2", None),
                                       ("vm", "compute:nova", "10.0.0.5", 7)):
            s.add(m.Port(id=pid, project_id="p", network_id="net", mac_address=f"fa:16:3e:00:00:{ip[-1]}0",
                         device_owner=owner, host_id="hv1" if ofport else "",
                         vif_type="ovs" if ofport else "unbound", ofport=ofport))
            s.flush()
            s.add(m.IPAllocation(subnet_id="sub", ip_address=ip, port_id=pid, network_id="net"))
    with db.read() as s:
        facts, _net = load_switch_facts(s, 42)[7]
    assert facts.addresses[0][0].metadata_route is True
    with db.write() as s:
        s.add(m.Port(id="rif", project_id="p", network_id="net", mac_address="fa:16:3e:00:00:01",
                     device_owner="network:router_interface", device_id="r1"))
        s.flush()
        s.add(m.IPAllocation(subnet_id="sub", ip_address="10.0.0.1", port_id="rif", network_id="net"))
    with db.read() as s:
        facts, _net = load_switch_facts(s, 42)[7]
    assert facts.addresses[0][0].metadata_route is False
    db.dispose()
