"""North-south on the gateway node: SNAT and floating IPs, centralised.

Each router with an external gateway runs on ONE gateway node
(World.router_host: a node with role gateway that maps the external
network's physical network, e.g. public:br-ex). Other hosts send the
router's outbound traffic there over the tenant network (controller/flows/l3.py,
default route); floating IPs run there too, so a connection's state and the
external ARP answers live in one place.

On that node, for an admin-up router R (zone Z = World.router_zone), gateway
address GW on external network E, gateway MAC GWMAC:

  CLASSIFY  in_port=<E's uplink> (110)          -> metadata=E, goto L3 (not L2_LOOKUP)
  L3        metadata=E, ARP request for GW or an associated floating IP of R
                                                -> reply with GWMAC out of the ingress port
  L3        metadata=E, ARP reply to GW          -> controller (learns E's gateway MAC,
                                                   controller/apps/l3_arp.py)
  L3        metadata=E, icmp echo to GW          -> echo reply
  L3        metadata=E, ipv4_dst=<floating IP>   -> ipv4_dst=<fixed IP>, reg6=Z, goto L3_ROUTE
                                                   (1:1, stateless: the source is kept)
  L3        metadata=E, ipv4_dst=GW (SNAT on)    -> reg6=Z, ct(zone=Z, nat, table=L3_ROUTE):
                                                   replies are un-NATed and routed
  NAT       reg6=Z, ipv4_src=<fixed IP with a floating IP> (200)
                                                -> ipv4_src=<floating IP>, to_external
  NAT       reg6=Z, ip (100, SNAT on)            -> ct(commit, zone=Z, nat(src=GW)), to_external
  NAT       reg6=Z (1)                           -> drop (no SNAT, no floating IP)
  to_external: dec_ttl, eth_src=GWMAC, eth_dst=<E's gateway MAC>, metadata=E, goto L2_LOOKUP
               (-> E's uplink -> br-ex -> the wire)

The outbound flows need E's gateway MAC (World.neighbours, resolved by the
controller); until it is known they are not compiled and such traffic drops.
"""
from __future__ import annotations

from controller import protocols as proto
from controller.flows import answers, cookies
from controller.flows import tables as t
from controller.flows.flow import NO_BUFFER, Flow, ct, dedupe, match
from controller.flows.l3 import ETH_IP, PRIO_PING, enter_from_uplink, local_interfaces
from controller.flows.uplink import is_usable, push_local_vlan, uplink_of
from controller.model.world import FloatingIPInfo, NodeInfo, RouterInfo, World

T = t.IntTable
NAT_SRC = 1                   # NX_NAT_F_SRC (os-ken does not export it)
PRIO_FIP = 200
PRIO_SNAT = t.PRIO_DEFAULT
PRIO_NOWHERE = 1


def compile_nat(world: World, node: NodeInfo) -> list[Flow]:
    if "br-int" not in dict(node.bridges) or not node.is_gateway:
        return []
    out: list[Flow] = []
    for r in sorted(world.routers.values(), key=lambda r: r.id):
        if r.admin_state_up and world.router_host(r.id) == node.id and _external_ready(world, node, r):
            out += nat_for_router(world, node, r)
    return dedupe(out)


def _external_ready(world: World, node: NodeInfo, r: RouterInfo) -> bool:
    ext = world.networks.get(r.gateway.network_id) if r.gateway else None
    return (is_usable(ext) and uplink_of(node, ext) is not None
            and world.local_vlan(node.id, ext.id) is not None
            and bool(local_interfaces(world, node, r)))


def nat_for_router(world: World, node: NodeInfo, r: RouterInfo) -> list[Flow]:
    gw = r.gateway
    vlan_e = world.local_vlan(node.id, gw.network_id)
    zone, c = world.router_zone(r.id), cookies.cookie("router", r.id)
    reply_out = push_local_vlan(vlan_e) + (("output", "in_port"),)
    out = [
        enter_from_uplink(world, node, gw.network_id, cookies.cookie("network", gw.network_id)),
        answer_arp(vlan_e, gw.ip, gw.mac, c),
        answers.answer_ping(T.L3, PRIO_PING, gw.ip, gw.mac, c, out=reply_out, metadata=vlan_e),
        Flow("br-int", T.NAT, PRIO_NOWHERE, match(**{t.REG_ROUTER: zone}), (), c),
    ]
    if gw.nexthop:
        out.append(learn_gateway_mac(vlan_e, gw.ip, c))
    ext_mac = world.neighbours.get((gw.network_id, gw.nexthop)) if gw.nexthop else None
    if r.enable_snat:
        out.append(Flow("br-int", T.L3, t.PRIO_DEFAULT,
                        match(metadata=vlan_e, eth_type=ETH_IP, ipv4_dst=gw.ip),
                        (("set_field", t.REG_ROUTER, zone),
                         ct(zone=zone, table=int(T.L3_ROUTE), nat={"flags": 0})), c))
        if ext_mac:
            out.append(Flow("br-int", T.NAT, PRIO_SNAT, match(**{t.REG_ROUTER: zone}, eth_type=ETH_IP),
                            (("dec_ttl",),
                             ct(commit=True, zone=zone, nat={"flags": NAT_SRC, "ipv4_min": gw.ip}))
                            + to_external(world, node, r, ext_mac), c))
    for fip in floating_ips_of(world, r):
        out += floating_ip(world, node, r, fip, vlan_e, zone, ext_mac)
    return out


def floating_ips_of(world: World, r: RouterInfo) -> list[FloatingIPInfo]:
    """R's associated floating IPs on its gateway's network."""
    return sorted((f for f in world.floatingips.values()
                   if f.router_id == r.id and f.port_id and f.fixed_ip
                   and f.network_id == r.gateway.network_id
                   and _fixed_port_usable(world, f)), key=lambda f: f.address)


def _fixed_port_usable(world: World, f: FloatingIPInfo) -> bool:
    p = world.ports.get(f.port_id)
    return p is not None and p.admin_state_up and any(ip == f.fixed_ip for _s, ip in p.fixed_ips)


def floating_ip(world: World, node: NodeInfo, r: RouterInfo, f: FloatingIPInfo, vlan_e: int,
                zone: int, ext_mac: str | None) -> list[Flow]:
    c = cookies.cookie("floatingip", f.id)
    out = [
        answer_arp(vlan_e, f.address, r.gateway.mac, c),
        Flow("br-int", T.L3, t.PRIO_DEFAULT, match(metadata=vlan_e, eth_type=ETH_IP, ipv4_dst=f.address),
             (("set_field", "ipv4_dst", f.fixed_ip), ("set_field", t.REG_ROUTER, zone),
              ("goto", int(T.L3_ROUTE))), c),
    ]
    if ext_mac:
        out.append(Flow("br-int", T.NAT, PRIO_FIP,
                        match(**{t.REG_ROUTER: zone}, eth_type=ETH_IP, ipv4_src=f.fixed_ip),
                        (("dec_ttl",), ("set_field", "ipv4_src", f.address))
                        + to_external(world, node, r, ext_mac), c))
    return out


def to_external(world: World, node: NodeInfo, r: RouterInfo, ext_mac: str) -> tuple:
    vlan_e = world.local_vlan(node.id, r.gateway.network_id)
    return (("set_field", "eth_src", r.gateway.mac),
            ("set_field", "eth_dst", ext_mac),
            ("write_metadata", vlan_e, 0xFFFFFFFFFFFFFFFF),
            ("goto", int(T.L2_LOOKUP)))


def answer_arp(vlan: int, ip: str, mac: str, c: int) -> Flow:
    """ARP request from the external network -> reply out of its ingress
    port (the patch to br-ex, which wants the local VLAN)."""
    return answers.answer_arp(T.L3, t.PRIO_DEFAULT, ip, mac, c,
                              out=push_local_vlan(vlan) + answers.BACK_OUT, metadata=vlan)


def learn_gateway_mac(vlan: int, gw_ip: str, c: int) -> Flow:
    return Flow("br-int", T.L3, t.PRIO_DEFAULT,
                match(metadata=vlan, eth_type=proto.ETH_TYPE_ARP, arp_op=proto.ARP_REPLY, arp_tpa=gw_ip),
                (("controller", NO_BUFFER),), c)
