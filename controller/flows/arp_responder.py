"""Answer ARP requests for the known addresses of a network in flows, on the
host where the request enters (no broadcast crosses the tunnels for them).

For each IPv4 fixed IP of an administratively up port on a network present on
this node (bound anywhere or not at all: the DHCP and router ports live in the
controller), a request from a VM port of that network is turned into the
reply and sent back out of its ingress port (shared/LAB.md section 6).
A port asking for its own address (duplicate address detection) is not
answered: that would look like a conflict.
"""
from __future__ import annotations

import ipaddress

from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.flow import Flow, match
from controller.flows.memo import latest_per, per_object
from controller.flows.uplink import is_usable
from controller.flows.world import NodeInfo, World

T = t.IntTable
ARP_REQUEST, ARP_REPLY = 1, 2
PRIO_OWN_ADDRESS = 200


def compile_arp_responder(world: World, node: NodeInfo) -> list[Flow]:
    if "br-int" not in dict(node.bridges):
        return []
    out: list[Flow] = []
    for net in world.networks_on(node.id):
        if not is_usable(net):
            continue
        vlan = world.local_vlan(node.id, net.id)
        for p in world.ports_of_network(net.id):
            if not p.admin_state_up:
                continue
            out += _answers_for(p.id, p.mac, p.fixed_ips, vlan)
        for p in world.ports_on(node.id):
            if p.network_id == net.id and p.admin_state_up:
                out += _own_addresses(p)
    return out


# By value, not by PortInfo: binding a port (a new PortInfo, new ofport)
# leaves its answers the very same objects (compiler.NodeCompiler).
@latest_per(lambda port_id, mac, fixed_ips, vlan: (port_id, vlan))
def _answers_for(port_id: str, mac: str, fixed_ips: tuple, vlan: int) -> list[Flow]:
    c = cookies.cookie("port", port_id)
    return [answer_arp(vlan, ip, mac, c) for ip in _ipv4s_of(fixed_ips)]


@per_object
def _own_addresses(p) -> list[Flow]:
    return [dont_answer_own(p.ofport, ip, cookies.cookie("port", p.id)) for ip in _ipv4s(p)]


def reply_in_place(mac: str, ip: str) -> tuple:
    """Turn an ARP request for `ip` into the reply `ip is-at mac`, in place;
    the caller adds the output (usually back out of in_port)."""
    return (
        ("move", "eth_src", "eth_dst", 48),
        ("set_field", "eth_src", mac),
        ("set_field", "arp_op", ARP_REPLY),
        ("move", "arp_sha", "arp_tha", 48),
        ("move", "arp_spa", "arp_tpa", 32),
        ("set_field", "arp_sha", mac),
        ("set_field", "arp_spa", ip),
    )


def answer_arp(vlan: int, ip: str, mac: str, c: int) -> Flow:
    actions = reply_in_place(mac, ip) + (("output", "in_port"),)
    return Flow("br-int", T.ARP_RESPONDER, t.PRIO_DEFAULT,
                match(metadata=vlan, eth_type=0x0806, arp_op=ARP_REQUEST, arp_tpa=ip), actions, c)


def dont_answer_own(ofport: int, ip: str, c: int) -> Flow:
    return Flow("br-int", T.ARP_RESPONDER, PRIO_OWN_ADDRESS,
                match(eth_type=0x0806, arp_op=ARP_REQUEST, arp_tpa=ip, **{t.REG_IN_PORT: ofport}),
                (("goto", int(T.DHCP)),), c)


def _ipv4s(p) -> list[str]:
    return _ipv4s_of(p.fixed_ips)


def _ipv4s_of(fixed_ips) -> list[str]:
    return sorted({ip for _s, ip in fixed_ips if ipaddress.ip_address(ip).version == 4})
