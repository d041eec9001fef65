"""Routing decisions of the L3 and NAT compilers, checked by walking packets
through the compiled flows of several nodes (controller/flows/trace.py via
tests/unit/fakeoftable.py). Conntrack NAT itself is not modelled there; the
SNAT translation is checked on real OVS (tests/e2e/test_l3.py)."""
import dataclasses
import uuid

import pytest

from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.l3 import host_router_mac
from controller.model.allocation import assign_local_vlans
from controller.model.world import (FloatingIPInfo, NetworkInfo, NodeInfo, PortInfo,
                                    RouterGateway, RouterInfo, RouterInterface, SubnetInfo, World,
                                    needed_local_vlans)
from tests.unit.fakeoftable import DEFAULT_SG, WIRE_OFPORT, compile_all, default_group, fabric, group

BCAST = "ff:ff:ff:ff:ff:ff"
EXT_GW_MAC = "00:00:5e:00:01:01"


def _id(name):
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, name))


def node(name, ip, gateway=False):
    mappings = [("physnet1", "br-eth1")] + ([("public", "br-ex")] if gateway else [])
    bridges = {"br-int": 1, "br-tun": 2}
    bridges.update({b: 3 + i for i, (_p, b) in enumerate(mappings)})
    return NodeInfo(id=_id("node-" + name), hostname=name,
                    role="compute,gateway" if gateway else "compute", tunnel_ip=ip,
                    tunnel_type="gre", bridge_mappings=tuple(mappings),
                    bridges=tuple(sorted(bridges.items())))


H1, H2, G = node("hv1", "172.31.0.1"), node("hv2", "172.31.0.2"), node("gw", "172.31.0.3", True)


def net(name, mode="gre", seg=101, project="p1", external=False):
    typ, physnet = {"gre": ("gre", None), "vlan": ("vlan", "physnet1"),
                    "flat": ("flat", "physnet1"), "ext": ("flat", "public")}[mode]
    return NetworkInfo(id=_id(name), project_id=project, network_type=typ, physical_network=physnet,
                       segmentation_id=None if typ == "flat" else seg, mtu=1458,
                       admin_state_up=True, external=external)


def subnet(network, cidr, gw):
    return SubnetInfo(id=_id("sub-" + cidr + network.id), network_id=network.id, ip_version=4,
                      cidr=cidr, gateway_ip=gw, enable_dhcp=False)


def vm_port(network, sub, node_, ofport, mac, ip, groups=(DEFAULT_SG,)):
    return PortInfo(id=_id("port-" + mac), network_id=network.id, project_id=network.project_id,
                    mac=mac, fixed_ips=((sub.id, ip),), device_owner="compute:nova", device_id="vm",
                    admin_state_up=True, port_security_enabled=True,
                    node_id=node_.id if node_ else None, ofport=ofport if node_ else None,
                    security_groups=tuple(sorted(groups)))


# What a user adds to reach a VM from outside: ingress from anywhere.
OPEN_SG = _id("sg-open")
OPEN = group(OPEN_SG, {"direction": "ingress", "ethertype": "IPv4", "remote_ip_prefix": "0.0.0.0/0"})


def router_port(network, sub, ip, mac, router_id, owner="network:router_interface"):
    return PortInfo(id=_id("rport-" + mac), network_id=network.id, project_id=network.project_id,
                    mac=mac, fixed_ips=((sub.id, ip),), device_owner=owner, device_id=router_id,
                    admin_state_up=True, port_security_enabled=False)


def interface(rp, sub):
    return RouterInterface(port_id=rp.id, network_id=rp.network_id, subnet_id=sub.id,
                           ip=rp.fixed_ips[0][1], mac=rp.mac, cidr=sub.cidr)


def world(nodes, networks, subnets, ports, routers=(), fips=(), neighbours=None):
    w = World(nodes={n.id: n for n in nodes}, networks={n.id: n for n in networks},
              subnets={s.id: s for s in subnets}, ports={p.id: p for p in ports},
              routers={r.id: r for r in routers}, floatingips={f.id: f for f in fips},
              neighbours=dict(neighbours or {}),
              security_groups={DEFAULT_SG: default_group(), OPEN_SG: OPEN})
    return dataclasses.replace(w, local_vlans=assign_local_vlans({}, needed_local_vlans(w)))


def ip_pkt(src_mac, dst_mac, src_ip, dst_ip, ttl=64, proto=6):
    return {"eth_src": src_mac, "eth_dst": dst_mac, "eth_type": 0x0800, "ipv4_src": src_ip,
            "ipv4_dst": dst_ip, "ip_proto": proto, "nw_ttl": ttl}


def arp_req(src_mac, src_ip, target_ip):
    return {"eth_src": src_mac, "eth_dst": BCAST, "eth_type": 0x0806, "arp_op": 1,
            "arp_sha": src_mac, "arp_spa": src_ip, "arp_tha": "00:00:00:00:00:00",
            "arp_tpa": target_ip}


class Topo:
    """net1 10.0.0.0/24 (vm a on hv1), net2 10.0.1.0/24 (vm b on hv2),
    routerA on both; optionally its gateway on net-ext 192.168.0.0/24
    hosted by the gateway node, and a floating IP for a."""

    def __init__(self, mode="gre", gateway=False, fip=False, admin_up=True, snat=True,
                 ext_mac=EXT_GW_MAC):
        self.rid = _id("routerA")
        self.n1, self.n2 = net("net1", mode, 101), net("net2", mode, 102)
        self.s1, self.s2 = subnet(self.n1, "10.0.0.0/24", "10.0.0.1"), subnet(self.n2, "10.0.1.0/24", "10.0.1.1")
        # a floating IP comes with an ingress rule for the world outside
        self.a = vm_port(self.n1, self.s1, H1, 5, "fa:16:3e:00:00:0a", "10.0.0.10",
                         (DEFAULT_SG, OPEN_SG) if fip else (DEFAULT_SG,))
        self.b = vm_port(self.n2, self.s2, H2, 5, "fa:16:3e:00:00:0b", "10.0.1.10")
        self.r1 = router_port(self.n1, self.s1, "10.0.0.1", "fa:16:3e:00:01:01", self.rid)
        self.r2 = router_port(self.n2, self.s2, "10.0.1.1", "fa:16:3e:00:01:02", self.rid)
        nets, subs = [self.n1, self.n2], [self.s1, self.s2]
        ports = [self.a, self.b, self.r1, self.r2]
        gw, fips, nodes = None, [], [H1, H2]
        if gateway:
            nodes.append(G)
            self.ext = net("net-ext", "ext", external=True, project="admin")
            self.sx = subnet(self.ext, "192.168.0.0/24", "192.168.0.1")
            self.gwp = router_port(self.ext, self.sx, "192.168.0.10", "fa:16:3e:00:02:01", self.rid,
                                   owner="network:router_gateway")
            nets.append(self.ext)
            subs.append(self.sx)
            ports.append(self.gwp)
            gw = RouterGateway(port_id=self.gwp.id, network_id=self.ext.id, subnet_id=self.sx.id,
                               ip="192.168.0.10", mac=self.gwp.mac, cidr=self.sx.cidr,
                               nexthop="192.168.0.1")
            if fip:
                fips.append(FloatingIPInfo(id=_id("fip"), address="192.168.0.20",
                                           network_id=self.ext.id, port_id=self.a.id,
                                           fixed_ip="10.0.0.10", router_id=self.rid))
        self.router = RouterInfo(id=self.rid, project_id="p1", admin_state_up=admin_up,
                                 enable_snat=snat,
                                 interfaces=(interface(self.r1, self.s1), interface(self.r2, self.s2)),
                                 gateway=gw)
        neigh = {(self.ext.id, "192.168.0.1"): ext_mac} if gateway and ext_mac else {}
        self.world = world(nodes, nets, subs, ports, [self.router], fips, neigh)
        self.fab = fabric(self.world)

    def from_a(self, dst_ip, ttl=64, proto=6):
        return self.fab.send(H1.id, 5, ip_pkt(self.a.mac, self.r1.mac, "10.0.0.10", dst_ip, ttl, proto))

    def from_external(self, pkt):
        """A frame from the external wire into the gateway node's br-ex."""
        return self.fab.trace(G.id, WIRE_OFPORT, pkt, bridge="br-ex")


@pytest.fixture(params=["gre", "vlan"])
def mode(request):
    return request.param


# --- east-west ---------------------------------------------------------------------

def test_routed_across_hosts(mode):
    topo = Topo(mode)
    out = topo.from_a("10.0.1.10")
    assert [(n, p) for n, p, _ in out] == [(H2.id, 5)]
    pkt = out[0][2]
    assert pkt["eth_dst"] == topo.b.mac
    assert pkt["nw_ttl"] == 63
    assert pkt["ipv4_src"] == "10.0.0.10" and pkt["ipv4_dst"] == "10.0.1.10"
    # Tunnels: the router's MAC on net2. Physical networks: the routing host's own MAC.
    assert pkt["eth_src"] == (topo.r2.mac if mode == "gre" else host_router_mac(H1))


def test_reply_is_routed_on_its_own_host(mode):
    topo = Topo(mode)
    out = topo.fab.send(H2.id, 5, ip_pkt(topo.b.mac, topo.r2.mac, "10.0.1.10", "10.0.0.10"))
    assert [(n, p) for n, p, _ in out] == [(H1.id, 5)]
    assert out[0][2]["eth_dst"] == topo.a.mac


def test_routed_on_the_same_host():
    topo = Topo()
    b_here = dataclasses.replace(topo.b, node_id=H1.id, ofport=6)
    w = world([H1, H2], [topo.n1, topo.n2], [topo.s1, topo.s2],
              [topo.a, b_here, topo.r1, topo.r2], [topo.router])
    out = fabric(w).send(H1.id, 5, ip_pkt(topo.a.mac, topo.r1.mac, "10.0.0.10", "10.0.1.10"))
    assert [(n, p) for n, p, _ in out] == [(H1.id, 6)]


def test_ttl_expiry_is_not_forwarded(mode):
    """TTL 0/1: punted to the controller on the sender's own host (east-west
    and towards the gateway node alike), never forwarded; TTL 2 is routed."""
    topo = Topo(mode, gateway=True)
    for ttl in (0, 1):
        for dst in ("10.0.1.10", "203.0.113.9"):
            out = topo.from_a(dst, ttl=ttl)
            assert [(n, p) for n, p, _ in out] == [(H1.id, "controller")], (ttl, dst)
    out = topo.from_a("10.0.1.10", ttl=2)
    assert [(n, p) for n, p, _ in out] == [(H2.id, 5)] and out[0][2]["nw_ttl"] == 1


def test_ttl_punt_flow_is_metered_and_accepted_by_ovs():
    """The punt carries the router's cookie (the packet-in names the router)
    and goes through the node's TTL meter; on the wire eth_type comes before
    the Nicira nw_ttl field (OVS refuses the reverse: OFPBMC_BAD_PREREQ)."""
    import struct

    from controller.openflow import oxm, reference
    from controller.flows.flow import Meter
    from controller.flows.l3 import PRIO_TTL, TTL_METER_ID, compile_l3
    from os_ken.ofproto import ofproto_v1_3 as ofp

    topo = Topo("vlan", gateway=True)
    items = compile_l3(topo.world, H1)
    punts = [f for f in items if not isinstance(f, Meter) and f.priority == PRIO_TTL]
    assert len(punts) == 2
    assert {f.cookie for f in punts} == {cookies.cookie("router", topo.rid)}
    assert all(f.actions[0] == ("meter", TTL_METER_ID) and f.actions[1][0] == "controller"
               for f in punts)
    assert [m.meter_id for m in items if isinstance(m, Meter)] == [TTL_METER_ID]
    wire = oxm.match_bytes(punts[0].match)
    order, off = [], 4
    while off < struct.unpack_from("!H", wire, 2)[0]:
        (header,) = struct.unpack_from("!I", wire, off)
        order.append(header >> 9)
        off += 4 + (header & 0xFF)
    eth_type = ofp.oxm_from_user_header("eth_type")
    nw_ttl = ofp.oxm_from_user_header("nw_ttl")
    assert order.index(eth_type) < order.index(nw_ttl)
    b = bytearray()
    reference.os_ken_match(punts[0].match).serialize(b, 0)
    assert bytes(b) == wire
    # No router here, no punt and no meter.
    assert not [x for x in compile_l3(Topo(admin_up=False).world, H1) if isinstance(x, Meter)]


def test_time_exceeded_answer():
    """The controller's answer to a punted TTL-1 packet: ICMP time exceeded
    from the router's address on the sender's subnet, to the sender's MAC
    from the router's, quoting the original IP header and 8 bytes."""
    from scapy.layers.inet import ICMP, IP, IPerror, UDP
    from scapy.layers.l2 import Ether

    from controller.apps.l3_arp import time_exceeded_reply

    topo = Topo("vlan", gateway=True)
    prefix = cookies.decode(cookies.cookie("router", topo.rid))[1]
    sent = bytes(Ether(src=topo.a.mac, dst=topo.r1.mac) / IP(src="10.0.0.10", dst="10.0.1.10", ttl=1)
                 / UDP(sport=40000, dport=33434) / (b"x" * 20))
    got = Ether(time_exceeded_reply(topo.world, prefix, sent))
    assert (got.src, got.dst) == (topo.r1.mac, topo.a.mac)
    assert (got[IP].src, got[IP].dst) == ("10.0.0.1", "10.0.0.10")
    assert (got[ICMP].type, got[ICMP].code) == (11, 0)
    assert got[IPerror].dst == "10.0.1.10" and bytes(got[ICMP].payload)[:28] == sent[14:42]
    assert got[ICMP].chksum == ICMP(bytes(got[ICMP]))[ICMP].chksum
    # Nothing for: another router's cookie, an ICMP error, a sender outside the router's subnets.
    other = cookies.decode(cookies.cookie("router", _id("routerB")))[1]
    assert time_exceeded_reply(topo.world, other, sent) is None
    err = bytes(Ether(src=topo.a.mac, dst=topo.r1.mac) / IP(src="10.0.0.10", dst="10.0.1.10", ttl=1)
                / ICMP(type=3, code=3) / (b"y" * 28))
    assert time_exceeded_reply(topo.world, prefix, err) is None
    stranger = bytes(Ether(src=topo.a.mac, dst=topo.r1.mac) / IP(src="172.16.0.5", dst="10.0.1.10", ttl=1))
    assert time_exceeded_reply(topo.world, prefix, stranger) is None
    # A frame whose MACs a route already rewrote (invalid_ttl packet-in): the
    # sender's MAC comes from its port.
    rewritten = bytes(Ether(src=host_router_mac(H1), dst=topo.b.mac) / IP(src="10.0.0.10",
                                                                        dst="10.0.1.10", ttl=1))
    assert Ether(time_exceeded_reply(topo.world, prefix, rewritten)).dst == topo.a.mac


def test_router_admin_down_stops_routing():
    topo = Topo(admin_up=False)
    assert topo.from_a("10.0.1.10") == []


def test_no_route_without_interface():
    topo = Topo()
    router = dataclasses.replace(topo.router, interfaces=topo.router.interfaces[:1])
    w = world([H1, H2], [topo.n1, topo.n2], [topo.s1, topo.s2],
              [topo.a, topo.b, topo.r1], [router])
    assert fabric(w).send(H1.id, 5, ip_pkt(topo.a.mac, topo.r1.mac, "10.0.0.10", "10.0.1.10")) == []


def test_unknown_address_in_a_connected_subnet_drops():
    assert Topo().from_a("10.0.1.99") == []


def test_no_gateway_no_default_route():
    assert Topo().from_a("8.8.8.8") == []


def test_router_answers_ping_on_all_its_addresses():
    topo = Topo()
    for addr in ("10.0.0.1", "10.0.1.1"):
        pkt = dict(ip_pkt(topo.a.mac, topo.r1.mac, "10.0.0.10", addr, proto=1), icmpv4_type=8)
        out = topo.fab.send(H1.id, 5, pkt)
        assert [(n, p) for n, p, _ in out] == [(H1.id, 5)]
        assert out[0][2]["ipv4_src"] == addr and out[0][2]["icmpv4_type"] == 0


def test_gateway_address_answers_arp_locally():
    topo = Topo()
    out = topo.fab.send(H1.id, 5, arp_req(topo.a.mac, "10.0.0.10", "10.0.0.1"))
    assert [(n, p) for n, p, _ in out] == [(H1.id, 5)]
    assert out[0][2]["arp_op"] == 2 and out[0][2]["arp_sha"] == topo.r1.mac


def test_overlapping_tenants_stay_apart():
    """Tenant B reuses 10.0.0.0/24 and 10.0.1.0/24 behind its own router on the
    same hosts: each VM reaches only its own tenant's peer."""
    a = Topo()
    rid_b = _id("routerB")
    n3, n4 = net("net3", seg=201, project="p2"), net("net4", seg=202, project="p2")
    s3, s4 = subnet(n3, "10.0.0.0/24", "10.0.0.1"), subnet(n4, "10.0.1.0/24", "10.0.1.1")
    c = vm_port(n3, s3, H1, 7, "fa:16:3e:00:00:0c", "10.0.0.10")
    d = vm_port(n4, s4, H2, 7, "fa:16:3e:00:00:0d", "10.0.1.10")
    r3 = router_port(n3, s3, "10.0.0.1", "fa:16:3e:00:03:01", rid_b)
    r4 = router_port(n4, s4, "10.0.1.1", "fa:16:3e:00:03:02", rid_b)
    rb = RouterInfo(id=rid_b, project_id="p2", admin_state_up=True, enable_snat=True,
                    interfaces=(interface(r3, s3), interface(r4, s4)))
    w = world([H1, H2], [a.n1, a.n2, n3, n4], [a.s1, a.s2, s3, s4],
              [a.a, a.b, a.r1, a.r2, c, d, r3, r4], [a.router, rb])
    assert w.router_zone(a.rid) != w.router_zone(rid_b)
    fab = fabric(w)
    out_a = fab.send(H1.id, 5, ip_pkt(a.a.mac, a.r1.mac, "10.0.0.10", "10.0.1.10"))
    out_c = fab.send(H1.id, 7, ip_pkt(c.mac, r3.mac, "10.0.0.10", "10.0.1.10"))
    assert [(n, p) for n, p, _ in out_a] == [(H2.id, 5)]
    assert [(n, p) for n, p, _ in out_c] == [(H2.id, 7)]
    # B's VM cannot use A's router MAC (it is not on B's network).
    assert fab.send(H1.id, 7, ip_pkt(c.mac, a.r1.mac, "10.0.0.10", "10.0.1.10")) == []


def test_extra_route_via_a_port():
    topo = Topo()
    router = dataclasses.replace(topo.router, routes=(("172.16.0.0/16", "10.0.1.10"),))
    w = world([H1, H2], [topo.n1, topo.n2], [topo.s1, topo.s2],
              [topo.a, topo.b, topo.r1, topo.r2], [router])
    out = fabric(w).send(H1.id, 5, ip_pkt(topo.a.mac, topo.r1.mac, "10.0.0.10", "172.16.3.4"))
    assert [(n, p) for n, p, _ in out] == [(H2.id, 5)]
    assert out[0][2]["ipv4_dst"] == "172.16.3.4" and out[0][2]["eth_dst"] == topo.b.mac


def test_local_vlans_for_routed_networks():
    """hv1 has only net1 ports but delivers routed packets into net2; the
    gateway node carries every network of the router and the external one."""
    topo = Topo(gateway=True)
    lv = topo.world.local_vlans
    assert (H1.id, topo.n2.id) in lv and (H2.id, topo.n1.id) in lv
    assert {(G.id, n.id) for n in (topo.n1, topo.n2, topo.ext)} <= set(lv)
    assert (H1.id, topo.ext.id) not in lv


# --- north-south ---------------------------------------------------------------------

def _wire_out(trace):
    return [o for o in trace.outcomes if o.kind == "wire"]


def _send_to_wire(topo, pkt_from_vm):
    tr = topo.fab.trace(H1.id, 5, pkt_from_vm)
    return [o.packet for o in tr.outcomes if o.kind == "wire" and o.node_id == G.id
            and o.bridge == "br-ex"]


def test_outbound_goes_to_the_gateway_node_and_out_of_br_ex(mode):
    topo = Topo(mode, gateway=True)
    out = _send_to_wire(topo, ip_pkt(topo.a.mac, topo.r1.mac, "10.0.0.10", "192.168.0.1"))
    assert len(out) == 1
    pkt = out[0]
    assert (pkt["eth_src"], pkt["eth_dst"]) == (topo.gwp.mac, EXT_GW_MAC)
    assert pkt["vlan_vid"] == 0 and pkt["nw_ttl"] == 63


def test_snat_flow_commits_in_the_routers_zone():
    topo = Topo(gateway=True)
    flows = compile_all(topo.world)[G.id]
    zone = topo.world.router_zone(topo.rid)
    snat = [f for f in flows if f.table == t.IntTable.NAT and dict(f.match).get(t.REG_ROUTER) == zone
            and f.priority == 100]
    assert len(snat) == 1
    ct = dict(next(a for a in snat[0].actions if a[0] == "ct")[1])
    assert ct["commit"] and ct["zone"] == zone
    assert dict(ct["nat"]) == {"flags": 1, "ipv4_min": "192.168.0.10"}
    # Nothing of it on the compute nodes.
    assert not [f for f in compile_all(topo.world)[H1.id]
                if f.table == t.IntTable.NAT and f.priority > t.PRIO_MISS]


def test_snat_disabled_leaves_no_way_out():
    topo = Topo(gateway=True, snat=False)
    assert _send_to_wire(topo, ip_pkt(topo.a.mac, topo.r1.mac, "10.0.0.10", "192.168.0.1")) == []


def test_no_outbound_flows_until_the_external_gateway_mac_is_known():
    topo = Topo(gateway=True, ext_mac=None)
    assert _send_to_wire(topo, ip_pkt(topo.a.mac, topo.r1.mac, "10.0.0.10", "192.168.0.1")) == []


def test_gateway_address_answers_arp_on_the_external_wire():
    topo = Topo(gateway=True)
    tr = topo.from_external(arp_req("02:00:00:00:00:01", "192.168.0.1", "192.168.0.10"))
    out = _wire_out(tr)
    assert len(out) == 1 and out[0].node_id == G.id
    assert out[0].packet["arp_op"] == 2 and out[0].packet["arp_sha"] == topo.gwp.mac
    assert out[0].packet["eth_dst"] == "02:00:00:00:00:01" and out[0].packet["vlan_vid"] == 0


def test_external_gateway_arp_reply_goes_to_the_controller():
    topo = Topo(gateway=True)
    reply = dict(arp_req("02:00:00:00:00:01", "192.168.0.1", "192.168.0.10"), arp_op=2,
                 eth_dst=topo.gwp.mac)
    tr = topo.from_external(reply)
    assert [o.kind for o in tr.outcomes] == ["controller"]


def test_floating_ip_inbound_keeps_the_source(mode):
    topo = Topo(mode, gateway=True, fip=True)
    tr = topo.from_external(ip_pkt("02:00:00:00:00:01", topo.gwp.mac, "192.168.0.1", "192.168.0.20"))
    got = [(o.node_id, o.port, o.packet) for o in tr.outcomes if o.kind == "delivered"]
    assert [(n, p) for n, p, _ in got] == [(H1.id, 5)]
    pkt = got[0][2]
    assert (pkt["ipv4_src"], pkt["ipv4_dst"]) == ("192.168.0.1", "10.0.0.10")
    assert pkt["eth_dst"] == topo.a.mac


def test_floating_ip_outbound_leaves_with_the_floating_address():
    topo = Topo(gateway=True, fip=True)
    out = _send_to_wire(topo, ip_pkt(topo.a.mac, topo.r1.mac, "10.0.0.10", "192.168.0.1"))
    assert len(out) == 1 and out[0]["ipv4_src"] == "192.168.0.20"
    # b has no floating IP: SNAT (the ct action) takes it, source not rewritten here.
    tr = topo.fab.trace(H2.id, 5, ip_pkt(topo.b.mac, topo.r2.mac, "10.0.1.10", "192.168.0.1"))
    out_b = [o.packet for o in tr.outcomes if o.kind == "wire" and o.bridge == "br-ex"]
    assert len(out_b) == 1 and out_b[0]["ipv4_src"] == "10.0.1.10"


def test_floating_ip_answers_arp_only_while_associated():
    for fip, answered in ((True, True), (False, False)):
        topo = Topo(gateway=True, fip=fip)
        tr = topo.from_external(arp_req("02:00:00:00:00:01", "192.168.0.1", "192.168.0.20"))
        replies = [o for o in _wire_out(tr) if o.packet.get("arp_op") == 2]
        assert bool(replies) == answered


def test_disassociated_floating_ip_is_unreachable():
    topo = Topo(gateway=True, fip=False)
    tr = topo.from_external(ip_pkt("02:00:00:00:00:01", topo.gwp.mac, "192.168.0.1", "192.168.0.20"))
    assert not [o for o in tr.outcomes if o.kind == "delivered"]


def test_flows_have_router_and_floatingip_owners():
    topo = Topo(gateway=True, fip=True)
    kinds = {cookies.decode(f.cookie)[0] for f in compile_all(topo.world)[G.id]
             if f.table in (t.IntTable.L3, t.IntTable.L3_ROUTE, t.IntTable.NAT)}
    assert {"router", "floatingip"} <= kinds


def test_compilers_are_deterministic():
    a, b = Topo(gateway=True, fip=True), Topo(gateway=True, fip=True)
    ca, cb = compile_all(a.world), compile_all(b.world)
    assert {k: sorted(v) for k, v in ca.items()} == {k: sorted(v) for k, v in cb.items()}


