"""The DHCP flow compiler (controller/flows/dhcp.py) on hand-built worlds."""
from __future__ import annotations

import dataclasses

from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.dhcp import compile_dhcp
from controller.flows.flow import Flow, Meter
from controller.model.settings import Settings
from controller.model.world import NetworkInfo, NodeInfo, PortInfo, SubnetInfo, World

NODE = NodeInfo(id="node-1", hostname="hv1", role="compute", tunnel_ip="172.31.0.1",
                tunnel_type="gre", bridges=(("br-int", 1), ("br-tun", 2)))
NET = "11111111-1111-1111-1111-111111111111"
VM = "22222222-2222-2222-2222-222222222222"
VM2 = "33333333-3333-3333-3333-333333333333"
DHCP = "44444444-4444-4444-4444-444444444444"


def world(enable_dhcp=True, dhcp_port=True, net_up=True, vm_up=True):
    net = NetworkInfo(id=NET, project_id="p", network_type="gre", physical_network=None,
                      segmentation_id=7, mtu=1458, admin_state_up=net_up)
    sub = SubnetInfo(id="s1", network_id=NET, ip_version=4, cidr="10.0.0.0/24",
                     gateway_ip="10.0.0.1", enable_dhcp=enable_dhcp)

    def port(pid, mac, ip, owner="compute:nova", node="node-1", ofport=None, up=True):
        return PortInfo(id=pid, network_id=NET, project_id="p", mac=mac, fixed_ips=(("s1", ip),),
                        device_owner=owner, device_id="d", admin_state_up=up,
                        port_security_enabled=True, node_id=node if ofport else None, ofport=ofport)
    ports = {VM: port(VM, "fa:16:3e:00:00:11", "10.0.0.5", ofport=5, up=vm_up),
             VM2: port(VM2, "fa:16:3e:00:00:12", "10.0.0.6", node="node-2", ofport=9)}
    if dhcp_port:
        ports[DHCP] = port(DHCP, "fa:16:3e:00:00:02", "10.0.0.2", owner="network:dhcp")
    return World(nodes={"node-1": NODE}, networks={NET: net}, subnets={"s1": sub}, ports=ports,
                 local_vlans={("node-1", NET): 3})


def test_punts_dhcp_of_each_local_vm_port_metered_with_its_cookie():
    out = compile_dhcp(dataclasses.replace(world(), settings=Settings(dhcp_packet_in_rate=20)), NODE)
    flows = [f for f in out if isinstance(f, Flow)]
    meters = [m for m in out if isinstance(m, Meter)]
    assert meters == [Meter("br-int", 5, 20, 20)]
    punt = [f for f in flows if f.table == t.IntTable.DHCP and ("in_port", 5) in f.match]
    assert len(punt) == 1
    f = punt[0]
    assert dict(f.match) == {"in_port": 5, "eth_type": 0x0800, "ip_proto": 17,
                             "udp_src": 68, "udp_dst": 67}
    assert f.actions == (("meter", 5), ("controller", 0xFFFF))
    assert f.cookie == cookies.cookie("port", VM)
    assert cookies.decode(f.cookie) == ("port", VM[:16])
    # the remote VM port (node-2) and the DHCP port itself are not punted here
    assert not [f for f in flows if ("in_port", 9) in f.match]


def test_dhcp_from_a_stale_address_passes_port_security_to_the_punt():
    flows = compile_dhcp(world(), NODE)
    ps = [f for f in flows if isinstance(f, Flow) and f.table == t.IntTable.PORT_SECURITY
          and dict(f.match).get("eth_type") == 0x0800]
    assert len(ps) == 1
    m = dict(ps[0].match)
    assert m[t.REG_IN_PORT] == 5 and m["eth_src"] == "fa:16:3e:00:00:11"
    assert "ipv4_src" not in m and (m["udp_src"], m["udp_dst"]) == (68, 67)
    assert ps[0].actions == (("goto", int(t.IntTable.DHCP)),)


def test_dhcp_address_answers_ping_on_the_network():
    flows = compile_dhcp(world(), NODE)
    ping = [f for f in flows if isinstance(f, Flow) and ("ip_proto", 1) in f.match]
    assert len(ping) == 1
    m = dict(ping[0].match)
    assert (m["metadata"], m["ipv4_dst"], m["icmpv4_type"]) == (3, "10.0.0.2", 8)
    assert ping[0].cookie == cookies.cookie("dhcp", DHCP)
    assert ping[0].actions[-1] == ("output", "in_port")
    assert ("set_field", "icmpv4_type", 0) in ping[0].actions


def test_nothing_without_dhcp():
    assert compile_dhcp(world(enable_dhcp=False), NODE) == []
    assert compile_dhcp(world(dhcp_port=False), NODE) == []
    assert compile_dhcp(world(net_up=False), NODE) == []
    no_int = NodeInfo(id="node-1", hostname="hv1", role="compute", tunnel_ip=None, tunnel_type="gre")
    assert compile_dhcp(world(), no_int) == []
    # a port that is down gets no punt, the ping answer stays
    out = compile_dhcp(world(vm_up=False), NODE)
    assert [f for f in out if isinstance(f, Meter)] == []
    assert len(out) == 1


def test_compiling_twice_gives_the_same_flows():
    assert compile_dhcp(world(), NODE) == compile_dhcp(world(), NODE)


# --- the whole compiled pipeline (every compiler), packets walked through it ----------

def _fabric_world():
    import uuid
    from tests.unit.fakeoftable import make_world
    h1 = NodeInfo(id=str(uuid.uuid5(uuid.NAMESPACE_DNS, "dhcp-hv1")), hostname="hv1", role="compute",
                  tunnel_ip="172.31.0.1", tunnel_type="gre", bridges=(("br-int", 1), ("br-tun", 2)))
    net = NetworkInfo(id=NET, project_id="p", network_type="gre", physical_network=None,
                      segmentation_id=7, mtu=1458, admin_state_up=True)
    sub = SubnetInfo(id="s1", network_id=NET, ip_version=4, cidr="10.0.0.0/24",
                     gateway_ip="10.0.0.1", enable_dhcp=True)

    def port(pid, mac, ip, owner="compute:nova", ofport=None):
        return PortInfo(id=pid, network_id=NET, project_id="p", mac=mac, fixed_ips=(("s1", ip),),
                        device_owner=owner, device_id="d", admin_state_up=True,
                        port_security_enabled=True, node_id=h1.id if ofport else None, ofport=ofport)
    ports = [port(VM, "fa:16:3e:00:00:11", "10.0.0.5", ofport=5),
             port(VM2, "fa:16:3e:00:00:12", "10.0.0.6", ofport=6),
             port(DHCP, "fa:16:3e:00:00:02", "10.0.0.2", owner="network:dhcp")]
    return h1, make_world([h1], [net], ports, [sub])


def _dhcp(src_ip, dst_ip="255.255.255.255", eth_dst="ff:ff:ff:ff:ff:ff"):
    return {"eth_src": "fa:16:3e:00:00:11", "eth_dst": eth_dst, "eth_type": 0x0800,
            "ipv4_src": src_ip, "ipv4_dst": dst_ip, "ip_proto": 17, "udp_src": 68, "udp_dst": 67}


def test_pipeline_sends_dhcp_to_the_controller_only():
    from tests.unit.fakeoftable import fabric
    h1, w = _fabric_world()
    fab = fabric(w)
    for pkt in (_dhcp("0.0.0.0"),                                             # DISCOVER
                _dhcp("10.0.0.5", "10.0.0.2", "fa:16:3e:00:00:02"),           # renewing
                _dhcp("10.0.0.77", "10.0.0.2", "fa:16:3e:00:00:02")):         # an address the port lost
        tr = fab.trace(h1.id, 5, pkt)
        assert [o.kind for o in tr.outcomes] == ["controller"], tr
    # another MAC from the port is still port security's business: dropped
    spoofed = dict(_dhcp("0.0.0.0"), eth_src="fa:16:3e:99:99:99")
    assert [o.kind for o in fab.trace(h1.id, 5, spoofed).outcomes] == ["dropped"]


def test_pipeline_answers_ping_to_the_dhcp_address():
    from tests.unit.fakeoftable import fabric
    h1, w = _fabric_world()
    ping = {"eth_src": "fa:16:3e:00:00:11", "eth_dst": "fa:16:3e:00:00:02", "eth_type": 0x0800,
            "ipv4_src": "10.0.0.5", "ipv4_dst": "10.0.0.2", "ip_proto": 1, "icmpv4_type": 8}
    out = fabric(w).send(h1.id, 5, ping)
    assert [(n, p) for n, p, _ in out] == [(h1.id, 5)]
    r = out[0][2]
    assert (r["eth_src"], r["eth_dst"]) == ("fa:16:3e:00:00:02", "fa:16:3e:00:00:11")
    assert (r["ipv4_src"], r["ipv4_dst"], r["icmpv4_type"]) == ("10.0.0.2", "10.0.0.5", 0)


def test_pipeline_answers_arp_for_the_dhcp_address_from_a_stale_address_only():
    """A client renewing an address the port lost must learn the server's MAC
    to send its unicast renewal (and be refused); any other ARP from that
    address is still port security's to drop."""
    from tests.unit.fakeoftable import fabric
    h1, w = _fabric_world()
    fab = fabric(w)

    def arp(spa, tpa):
        return {"eth_src": "fa:16:3e:00:00:11", "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x0806,
                "arp_op": 1, "arp_sha": "fa:16:3e:00:00:11", "arp_spa": spa, "arp_tpa": tpa}
    out = fab.send(h1.id, 5, arp("10.0.0.77", "10.0.0.2"))
    assert [(n, p) for n, p, _ in out] == [(h1.id, 5)]
    r = out[0][2]
    assert (r["arp_op"], r["arp_sha"], r["arp_spa"]) == (2, "fa:16:3e:00:00:02", "10.0.0.2")
    assert (r["arp_tpa"], r["eth_dst"]) == ("10.0.0.77", "fa:16:3e:00:00:11")
    assert [o.kind for o in fab.trace(h1.id, 5, arp("10.0.0.77", "10.0.0.6")).outcomes] == ["dropped"]
