"""Distributed routing (east-west) on br-int, on every node where traffic enters.

A frame a VM sends to one of its router's MACs is routed on that VM's own
host: no router namespace, no detour. Per admin-up router R with an interface
on a network N that has a local VLAN on this node (reg6 = R's number, which
is also its conntrack zone on the gateway node, World.router_zone):

  L3        metadata=N, eth_dst=<R's MAC on N>, ip        -> reg6=R, goto L3_ROUTE
  L3        metadata=N, icmp echo to <R's address on N>     -> echo reply in place
  L3_ROUTE  reg6=R, ipv4_dst=<address of a port on R's subnets> (200)
            -> eth_src=<R's MAC on the port's network, see below>, eth_dst=<port MAC>,
               dec_ttl, metadata=<the port's network>, goto L2_LOOKUP
               (L2 then delivers locally or sends it through br-tun / br-ethX)
  L3_ROUTE  reg6=R, ipv4_dst=<extra route> (100 + prefix)  -> the nexthop port, likewise
  L3_ROUTE  reg6=R, ipv4_dst=<connected subnet> (100 + prefix) -> drop (no such port)
  L3_ROUTE  reg6=R, metadata=N (1): the default route, north-south. On R's
            gateway node -> NAT (controller/flows/nat.py); elsewhere the frame
            goes on unchanged over N to the gateway node (L2_LOOKUP -> uplink;
            for tunnelled N br-tun sends R's MAC to that node).
  L3_ROUTE  miss -> drop (router admin down, no gateway, unknown destination)

The gateway node also takes R's MAC in from N's uplink (CLASSIFY, priority
110 over L2's classify) into L3: frames other hosts send there for NAT.

TTL expiry: a packet R would route with TTL 0 or 1 is punted instead
(L3_ROUTE, reg6=R, ip, nw_ttl=0|1, priority 300 above every route -> meter
TTL_METER_ID, CONTROLLER with R's cookie), on the host where it entered, so
it is never forwarded and controller/apps/l3_arp.py answers ICMP time
exceeded from R's address on the sender's subnet. The meter (one per node,
TTL_PUNT_RATE packets/s) keeps a VM sending TTL-1 floods from loading the
controller; what it drops is dropped. dec_ttl in the routes stays as the
backstop. (The nw_ttl match is a Nicira field: controller/openflow/oxm.py
puts it after its eth_type prerequisite on the wire, else OVS refuses the
flow with OFPBMC_BAD_PREREQ.)

Source MAC on physical (flat/VLAN) networks: routed frames leave several hosts
at once; with R's MAC as source the physical switches would see it flap
between ports. As Neutron's DVR does, a host other than R's gateway node
puts its own MAC (`host_router_mac`, fa:16:3f + a hash of the node id) on the
frames it routes onto a physical network; only R's gateway node uses R's MAC
there, so the physical network learns R's MAC at the gateway node, where the
frames for R's default route have to go. Tunnelled networks do no learning:
R's MAC everywhere.
"""
from __future__ import annotations

import hashlib
import ipaddress

from controller import protocols as proto
from controller.flows import answers, cookies
from controller.flows import tables as t
from controller.flows.flow import NO_BUFFER, Flow, Meter, address_match, dedupe, match
from controller.flows.uplink import PHYSICAL_TYPES, TUNNEL_TYPES, is_usable, tagged, uplink_of
from controller.model.world import NodeInfo, PortInfo, RouterInfo, RouterInterface, World
from controller.model import owners

T = t.IntTable
ETH_IP = proto.ETH_TYPE_IP
PRIO_PORT = 200          # a host route to a known port
PRIO_PING = 200          # L3: echo replies from router addresses
PRIO_SUBNET = 100        # + prefix length: longest prefix first
PRIO_DEFAULT_ROUTE = 1
PRIO_CLASSIFY_ROUTER = t.PRIO_DEFAULT + 10   # above L2's classify of the uplink
PRIO_TTL = 300           # above every route: expiring packets are never routed
# One meter per node for the TTL punts. DHCP's meters are numbered by ofport
# (< 0xff00), so an id above that range never meets one.
TTL_METER_ID = 0x10000
TTL_PUNT_RATE = 20       # packets/s to the controller, per node


def compile_l3(world: World, node: NodeInfo) -> list[Flow]:
    if "br-int" not in dict(node.bridges):
        return []
    out: list = []             # L3_ROUTE's miss (drop) is the skeleton's (pipeline.py)
    routes_here = False
    for r in sorted(world.routers.values(), key=lambda r: r.id):
        if r.admin_state_up:
            flows = route_on_node(world, node, r)
            routes_here |= bool(flows)
            out += flows
    if routes_here:           # route_on_node punts expiring packets through this meter
        out.append(Meter("br-int", TTL_METER_ID, TTL_PUNT_RATE, burst=TTL_PUNT_RATE))
    return out


def route_on_node(world: World, node: NodeInfo, r: RouterInfo) -> list[Flow]:
    ifaces = local_interfaces(world, node, r)
    if not ifaces:
        return []
    zone, c = world.router_zone(r.id), cookies.cookie("router", r.id)
    host = world.router_host(r.id)
    out: list[Flow] = []
    for i in ifaces:
        vlan = world.local_vlan(node.id, i.network_id)
        out.append(Flow("br-int", T.L3, t.PRIO_DEFAULT,
                        match(metadata=vlan, eth_dst=i.mac, eth_type=ETH_IP),
                        (("set_field", t.REG_ROUTER, zone), ("goto", int(T.L3_ROUTE))), c))
        out += [answers.answer_ping(T.L3, PRIO_PING, j.ip, i.mac, c, metadata=vlan)
                for j in r.interfaces]
        out.append(drop_unknown_in_subnet(zone, i.cidr, c))
        out += routes_to_ports(world, node, r, i, zone, c)
        if host == node.id:
            out.append(Flow("br-int", T.L3_ROUTE, PRIO_DEFAULT_ROUTE,
                            match(**{t.REG_ROUTER: zone}, metadata=vlan, eth_type=ETH_IP),
                            (("goto", int(T.NAT)),), c))
            out += take_router_mac_from_uplink(world, node, i, c)
        elif host is not None:
            out.append(Flow("br-int", T.L3_ROUTE, PRIO_DEFAULT_ROUTE,
                            match(**{t.REG_ROUTER: zone}, metadata=vlan, eth_type=ETH_IP),
                            (("goto", int(T.L2_LOOKUP)),), c))
            out += tunnel_router_mac_to_host(world, node, i, host, c)
    out += extra_routes(world, node, r, ifaces, zone, c)
    out += punt_expiring(zone, c)
    return dedupe(out)


def punt_expiring(zone: int, c: int) -> list[Flow]:
    """Packets R would route with TTL 0 or 1 go to the controller (ICMP time
    exceeded, apps/l3_arp.py), metered; never onwards."""
    return [Flow("br-int", T.L3_ROUTE, PRIO_TTL,
                 match(**{t.REG_ROUTER: zone}, eth_type=ETH_IP, nw_ttl=ttl),
                 (("meter", TTL_METER_ID), ("controller", NO_BUFFER)), c)
            for ttl in (0, 1)]


def local_interfaces(world: World, node: NodeInfo, r: RouterInfo) -> list[RouterInterface]:
    """R's interfaces on usable networks that have a local VLAN here."""
    return [i for i in r.interfaces
            if is_usable(world.networks.get(i.network_id))
            and world.local_vlan(node.id, i.network_id) is not None]


# --- east-west ----------------------------------------------------------------

def routes_to_ports(world: World, node: NodeInfo, r: RouterInfo, i: RouterInterface,
                    zone: int, c: int) -> list[Flow]:
    """A host route per address of every admin-up port in the subnet."""
    subnet = ipaddress.ip_network(i.cidr)
    out = []
    for p in world.ports_of_network(i.network_id):
        if not p.admin_state_up or owners.is_infrastructure(p.device_owner):
            continue
        for ip, mac in _addresses(p):
            if ipaddress.ip_address(ip) in subnet:
                out.append(Flow("br-int", T.L3_ROUTE, PRIO_PORT,
                                match(**{t.REG_ROUTER: zone}, eth_type=ETH_IP, ipv4_dst=ip),
                                deliver_routed(world, node, r, i, mac), c))
    return out


def deliver_routed(world: World, node: NodeInfo, r: RouterInfo, i: RouterInterface,
                   dst_mac: str) -> tuple:
    vlan = world.local_vlan(node.id, i.network_id)
    return (("set_field", "eth_src", routed_source_mac(world, node, r, i)),
            ("set_field", "eth_dst", dst_mac),
            ("dec_ttl",),
            ("write_metadata", vlan, 0xFFFFFFFFFFFFFFFF),
            ("goto", int(T.L2_LOOKUP)))


def routed_source_mac(world: World, node: NodeInfo, r: RouterInfo, i: RouterInterface) -> str:
    net = world.networks[i.network_id]
    if net.network_type in PHYSICAL_TYPES and world.router_host(r.id) != node.id:
        return host_router_mac(node)
    return i.mac


def host_router_mac(node: NodeInfo) -> str:
    """This host's own source MAC for frames it routes onto physical networks
    (locally administered fa:16:3f:xx:xx:xx, stable per node)."""
    h = hashlib.sha256(node.id.encode()).hexdigest()
    return f"fa:16:3f:{h[0:2]}:{h[2:4]}:{h[4:6]}"


def drop_unknown_in_subnet(zone: int, cidr: str, c: int) -> Flow:
    net = ipaddress.ip_network(cidr)
    return Flow("br-int", T.L3_ROUTE, PRIO_SUBNET + net.prefixlen,
                match(**{t.REG_ROUTER: zone}, eth_type=ETH_IP, ipv4_dst=address_match(net)), (), c)


def extra_routes(world: World, node: NodeInfo, r: RouterInfo, ifaces: list[RouterInterface],
                 zone: int, c: int) -> list[Flow]:
    """Extra routes whose nexthop is a known port on one of R's subnets here."""
    out = []
    connected = {ipaddress.ip_network(i.cidr) for i in r.interfaces}
    for dest, nexthop in r.routes:
        try:
            net, hop = ipaddress.ip_network(dest, strict=False), ipaddress.ip_address(nexthop)
        except ValueError:
            continue
        if net.version != 4 or net.prefixlen == 0 or net in connected:
            continue
        for i in ifaces:
            port = _port_with_ip(world, i.network_id, nexthop) if hop in ipaddress.ip_network(i.cidr) else None
            if port is not None:
                out.append(Flow("br-int", T.L3_ROUTE, PRIO_SUBNET + net.prefixlen,
                                match(**{t.REG_ROUTER: zone}, eth_type=ETH_IP, ipv4_dst=address_match(net)),
                                deliver_routed(world, node, r, i, port.mac), c))
                break
    return out


# --- towards the gateway node ----------------------------------------------------

def tunnel_router_mac_to_host(world: World, node: NodeInfo, i: RouterInterface, host_id: str,
                              c: int) -> list[Flow]:
    """br-tun: frames for R's MAC on a tunnelled network go to R's gateway
    node (R's ports are bound nowhere, so L2 has no unicast flow for them)."""
    net, host = world.networks[i.network_id], world.nodes.get(host_id)
    if (net.network_type not in TUNNEL_TYPES or "br-tun" not in dict(node.bridges)
            or not node.tunnel_ip or host is None or not host.tunnel_ip
            or net.segmentation_id is None):
        return []
    vlan = world.local_vlan(node.id, i.network_id)
    return [Flow("br-tun", t.TunTable.TO_TUNNEL, t.PRIO_DEFAULT,
                 match(vlan_vid=tagged(vlan), eth_dst=i.mac),
                 (("pop_vlan",), ("set_field", "tunnel_id", net.segmentation_id),
                  ("set_field", "tun_ipv4_dst", host.tunnel_ip),
                  ("output", t.TUN_TUNNEL_OFPORT)), c)]


def take_router_mac_from_uplink(world: World, node: NodeInfo, i: RouterInterface,
                                c: int) -> list[Flow]:
    """On the gateway node: frames for R's MAC arriving from N's uplink are
    routed here (north-south) instead of going straight to L2_LOOKUP."""
    return [enter_from_uplink(world, node, i.network_id, c, eth_dst=i.mac)]


def enter_from_uplink(world: World, node: NodeInfo, network_id: str, c: int, **extra) -> Flow | None:
    """CLASSIFY for frames from a network's uplink that go to L3, not L2_LOOKUP."""
    net = world.networks[network_id]
    up = uplink_of(node, net)
    if up is None:
        return None
    vlan = world.local_vlan(node.id, network_id)
    if up.bridge == "br-tun":
        wire_vid = tagged(vlan)
    elif up.provider_vlan is not None:
        wire_vid = tagged(up.provider_vlan)
    else:
        wire_vid = 0
    actions = ((("pop_vlan",),) if wire_vid else ()) + (
        ("set_field", t.REG_IN_PORT, up.ofport),
        ("write_metadata", vlan, 0xFFFFFFFFFFFFFFFF),
        ("goto", int(T.L3)))
    return Flow("br-int", T.CLASSIFY, PRIO_CLASSIFY_ROUTER,
                match(in_port=up.ofport, vlan_vid=wire_vid, **extra), actions, c)


# --- small helpers ------------------------------------------------------------------

def _addresses(p: PortInfo) -> list[tuple[str, str]]:
    """(IPv4 host address, MAC) of a port: fixed IPs and single-address pairs."""
    out = [(ip, p.mac) for _s, ip in p.fixed_ips if ipaddress.ip_address(ip).version == 4]
    for ip, mac in p.allowed_address_pairs:
        net = ipaddress.ip_network(ip, strict=False)
        if net.version == 4 and net.prefixlen == 32:
            out.append((str(net.network_address), mac))
    return out


def _port_with_ip(world: World, network_id: str, ip: str) -> PortInfo | None:
    for p in world.ports_of_network(network_id):
        if p.admin_state_up and any(a == ip for _s, a in p.fixed_ips):
            return p
    return None
