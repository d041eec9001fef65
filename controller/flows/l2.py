"""br-int L2: classify VM ports into their network, port security, L2 lookup
by (network, MAC), flooding, and output.

The network of a packet is its local VLAN on this node, carried in the
OpenFlow metadata; reg5 holds the logical ingress port, reg7 the chosen egress
port. Traffic from a VM port: CLASSIFY -> PORT_SECURITY -> services ->
L2_LOOKUP -> EGRESS_ACL -> OUTPUT. Traffic from br-tun / br-ethX (tagged with
the local VLAN resp. provider VLAN): CLASSIFY -> L2_LOOKUP directly; it has
already passed port security on the host where it entered.

admin_state_up=false on a port: no classify flow (its packets drop) and its
MAC is a drop in L2_LOOKUP. On a network: nothing of it is compiled on br-int
but the drops, so its traffic stops everywhere.
"""
from __future__ import annotations

import ipaddress

from controller import protocols as proto
from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.flow import Flow, address_match, dedupe, match
from controller.flows.memo import latest_per, per_object
from controller.flows.uplink import is_usable, push_local_vlan, tagged, uplink_of
from controller.model.world import NetworkInfo, NodeInfo, PortInfo, World

T = t.IntTable
BROADCAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")   # multicast bit: bcast + mcast
ETH_IP, ETH_ARP, ETH_IPV6 = proto.ETH_TYPE_IP, proto.ETH_TYPE_ARP, proto.ETH_TYPE_IPV6


def compile_l2(world: World, node: NodeInfo) -> list[Flow]:
    if "br-int" not in dict(node.bridges):
        return []
    out: list[Flow] = []
    for net in world.networks_on(node.id):
        vlan = world.local_vlan(node.id, net.id)
        local = [p for p in world.ports_on(node.id) if p.network_id == net.id]
        if not is_usable(net):
            out += [deliver_nothing_to(p, vlan) for p in local]
            continue
        out += provision_local_vlan(node, net, vlan)
        for p in local:
            if p.admin_state_up:
                out += port_flows(p, vlan)
            else:
                out.append(deliver_nothing_to(p, vlan))
        out += install_flood(node, net, vlan, tuple(p.ofport for p in local if p.admin_state_up))
    return out


# --- per port ---------------------------------------------------------------

@per_object      # per port: an unchanged port costs one lookup (flows/memo.py)
def port_flows(p: PortInfo, vlan: int) -> list[Flow]:
    """Everything of an admin-up VM port on br-int."""
    return classify_vm_port(p, vlan) + port_security(p) + deliver_to_port(p, vlan)


def classify_vm_port(p: PortInfo, vlan: int) -> list[Flow]:
    """Untagged frames from the VM enter its network; tagged ones drop (no
    VLAN hopping into a trunk)."""
    return [Flow("br-int", T.CLASSIFY, t.PRIO_DEFAULT, match(in_port=p.ofport, vlan_vid=0),
                 (("set_field", t.REG_IN_PORT, p.ofport),
                  ("write_metadata", vlan, 0xFFFFFFFFFFFFFFFF),
                  ("goto", int(T.PORT_SECURITY))), _c(p))]


def port_security(p: PortInfo) -> list[Flow]:
    nxt = (("goto", int(T.ARP_RESPONDER)),)
    c = _c(p)
    if not p.port_security_enabled:
        return [Flow("br-int", T.PORT_SECURITY, 1, match(**{t.REG_IN_PORT: p.ofport}), nxt, c)]
    allowed: list[tuple[str, str]] = [(ip, p.mac) for _s, ip in p.fixed_ips]
    allowed += list(p.allowed_address_pairs)
    flows = []
    for ip, mac in allowed:
        net = ipaddress.ip_network(ip, strict=False)
        addr = address_match(net)
        base = {t.REG_IN_PORT: p.ofport, "eth_src": mac}
        if net.version == 4:
            flows.append(Flow("br-int", T.PORT_SECURITY, t.PRIO_DEFAULT,
                              match(**base, eth_type=ETH_IP, ipv4_src=addr), nxt, c))
            flows.append(Flow("br-int", T.PORT_SECURITY, t.PRIO_DEFAULT,
                              match(**base, eth_type=ETH_ARP, arp_sha=mac, arp_spa=addr), nxt, c))
        else:
            flows.append(Flow("br-int", T.PORT_SECURITY, t.PRIO_DEFAULT,
                              match(**base, eth_type=ETH_IPV6, ipv6_src=addr), nxt, c))
    base = {t.REG_IN_PORT: p.ofport, "eth_src": p.mac}
    # A client without an address yet: DHCP DISCOVER/REQUEST, ARP probes (RFC 5227),
    # IPv6 link-local (neighbour discovery).
    flows.append(Flow("br-int", T.PORT_SECURITY, t.PRIO_DEFAULT,
                      match(**base, eth_type=ETH_IP, ipv4_src="0.0.0.0", ip_proto=proto.IPPROTO_UDP,
                            udp_src=proto.DHCP_CLIENT_PORT, udp_dst=proto.DHCP_SERVER_PORT), nxt, c))
    flows.append(Flow("br-int", T.PORT_SECURITY, t.PRIO_DEFAULT,
                      match(**base, eth_type=ETH_ARP, arp_sha=p.mac, arp_spa="0.0.0.0"), nxt, c))
    flows.append(Flow("br-int", T.PORT_SECURITY, t.PRIO_DEFAULT,
                      match(**base, eth_type=ETH_IPV6, ipv6_src=("fe80::", "ffc0::")), nxt, c))
    return dedupe(flows)


def deliver_to_port(p: PortInfo, vlan: int) -> list[Flow]:
    """L2_LOOKUP: the port's MAC(s) on its network -> reg7; OUTPUT: reg7 -> the port."""
    c = _c(p)
    macs = sorted({p.mac} | {mac for _ip, mac in p.allowed_address_pairs})
    flows = [Flow("br-int", T.L2_LOOKUP, t.PRIO_DEFAULT, match(metadata=vlan, eth_dst=mac),
                  (("set_field", t.REG_OUT_PORT, p.ofport), ("goto", int(T.EGRESS_ACL))), c)
             for mac in macs]
    flows.append(Flow("br-int", T.OUTPUT, t.PRIO_DEFAULT, match(**{t.REG_OUT_PORT: p.ofport}),
                      (("output", p.ofport),), c))
    return flows


@per_object      # per port: unchanged ports cost a lookup (memo.py)
def deliver_nothing_to(p: PortInfo, vlan: int) -> Flow:
    """An administratively down port: frames to its MAC stop here (rather than
    going out as unknown unicast)."""
    return Flow("br-int", T.L2_LOOKUP, t.PRIO_DEFAULT, match(metadata=vlan, eth_dst=p.mac), (), _c(p))


# --- per network ------------------------------------------------------------

@latest_per(lambda node, net, vlan: (node.id, net.id))     # same objects round after round
def provision_local_vlan(node: NodeInfo, net: NetworkInfo, vlan: int) -> list[Flow]:
    """The network's uplink: frames arriving from br-tun (local VLAN) or
    br-ethX (provider VLAN / untagged) enter the network; unknown unicast goes
    out tagged with the local VLAN."""
    up = uplink_of(node, net)
    if up is None:
        return []
    c = cookies.cookie("network", net.id)
    if up.bridge == "br-tun":
        wire_vid = tagged(vlan)                 # br-tun already mapped key -> local VLAN
    elif up.provider_vlan is not None:
        wire_vid = tagged(up.provider_vlan)     # Quantum: br-int maps provider -> local
    else:
        wire_vid = 0                            # flat: untagged
    enter = ((("pop_vlan",),) if wire_vid else ()) + (
        ("set_field", t.REG_IN_PORT, up.ofport),
        ("write_metadata", vlan, 0xFFFFFFFFFFFFFFFF),
        ("goto", int(T.L2_LOOKUP)))
    return [
        Flow("br-int", T.CLASSIFY, t.PRIO_DEFAULT, match(in_port=up.ofport, vlan_vid=wire_vid), enter, c),
        Flow("br-int", T.L2_LOOKUP, 1, match(metadata=vlan),
             (("set_field", t.REG_OUT_PORT, up.ofport), ("goto", int(T.EGRESS_ACL))), c),
        Flow("br-int", T.OUTPUT, t.PRIO_DEFAULT, match(metadata=vlan, **{t.REG_OUT_PORT: up.ofport}),
             push_local_vlan(vlan) + (("output", up.ofport),), c),
    ]


@latest_per(lambda node, net, vlan, ofports: (node.id, net.id))   # the same object while the ports stay
def install_flood(node: NodeInfo, net: NetworkInfo, vlan: int, ofports: tuple[int, ...]) -> list[Flow]:
    """Broadcast/multicast: to every local port of the network (untagged) and
    the uplink (tagged). OpenFlow never sends a frame back out of its ingress
    port, so one flow serves VM and uplink ingress alike."""
    actions = tuple(("output", p) for p in sorted(ofports))
    up = uplink_of(node, net)
    if up is not None:
        actions += push_local_vlan(vlan) + (("output", up.ofport),)
    if not actions:
        return []
    return [Flow("br-int", T.L2_LOOKUP, 50, match(metadata=vlan, eth_dst=BROADCAST), actions,
                 cookies.cookie("network", net.id))]


# --- helpers ----------------------------------------------------------------

def _c(p: PortInfo) -> int:
    return cookies.cookie("port", p.id)
