"""Answer ARP requests for the known addresses of a network in flows, on the
host where the request enters (no broadcast crosses the tunnels for them).

For each IPv4 fixed IP of an administratively up port on a network present on
this node (bound anywhere or not at all: the DHCP and router ports live in the
controller), a request from a VM port of that network is turned into the
reply and sent back out of its ingress port (docs/PIPELINE.md, table 20).
A port asking for its own address (duplicate address detection) is not
answered: that would look like a conflict.
"""
from __future__ import annotations

import ipaddress

from controller.flows import answers, cookies
from controller.flows import tables as t
from controller.flows.flow import Flow
from controller.flows.memo import latest_per, per_object
from controller.flows.uplink import is_usable
from controller.model.world import NodeInfo, World

T = t.IntTable
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


def answer_arp(vlan: int, ip: str, mac: str, c: int) -> Flow:
    return answers.answer_arp(T.ARP_RESPONDER, t.PRIO_DEFAULT, ip, mac, c, metadata=vlan)


def dont_answer_own(ofport: int, ip: str, c: int) -> Flow:
    return Flow("br-int", T.ARP_RESPONDER, PRIO_OWN_ADDRESS,
                answers.arp_request_for(ip, **{t.REG_IN_PORT: ofport}),
                (("goto", int(T.DHCP)),), c)


def _ipv4s(p) -> list[str]:
    return _ipv4s_of(p.fixed_ips)


def _ipv4s_of(fixed_ips) -> list[str]:
    return sorted({ip for _s, ip in fixed_ips if ipaddress.ip_address(ip).version == 4})
