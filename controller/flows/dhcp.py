"""DHCP in br-int: punt client DHCP packets to the controller, metered per
port, and make the network's DHCP port address answer ping.

Per VM port bound to this node on a network with a DHCP-enabled IPv4 subnet
that has a DHCP port address (the server identifier):

  PORT_SECURITY  reg5=<ofport>, eth_src=<port MAC>, udp 68->67 (any source IP)
                 -> goto DHCP. A client still using an address the port no
                 longer has must reach the server to be refused (NAK); the
                 packet goes nowhere but to the controller.
  PORT_SECURITY  reg5=<ofport>, eth_src=<port MAC>, ARP request for a DHCP
                 address (any sender IP) -> answered right here, out of the
                 ingress port: such a client's unicast renewal needs the
                 server's MAC first, and port security drops ARP from an
                 address the port lost. Nothing else sees the request.
  DHCP           in_port=<ofport>, udp 68->67 -> meter <ofport>, CONTROLLER
                 with the port's cookie, so a packet-in names its port.

Per such network (cookie of its DHCP port):
  DHCP           ICMP echo request to the DHCP address -> echo reply out of
                 the ingress port (OVS fixes the ICMP checksum on set_field).

ARP for the DHCP address is answered by the ARP responder
(controller/flows/arp_responder.py), which covers every port of a network.

Meters: one per punted port, meter id = its ofport (unique per bridge and
stable across restarts), rate `dhcp.packet_in_rate` packets/s (carried in
World.settings), drop band.
"""
from __future__ import annotations

import functools
import ipaddress

from controller import protocols as proto
from controller.flows import answers, cookies
from controller.flows import tables as t
from controller.flows.flow import NO_BUFFER, Flow, Meter, match
from controller.flows.memo import per_object
from controller.flows.uplink import is_usable
from controller.model.world import NodeInfo, PortInfo, World
from controller.model import owners

T = t.IntTable
PRIO_PUNT = t.PRIO_DEFAULT
PRIO_PORTSEC_DHCP = t.PRIO_DEFAULT + 10    # above port security's per-address flows


def compile_dhcp(world: World, node: NodeInfo) -> list:
    if "br-int" not in dict(node.bridges):
        return []
    rate = world.settings.dhcp_packet_in_rate
    out: list = []
    for net in world.networks_on(node.id):
        if not is_usable(net):
            continue
        vlan = world.local_vlan(node.id, net.id)
        server = dhcp_port(world, net.id)
        servers = server_addresses(world, server) if server else []
        if not servers:
            continue
        for ip in servers:
            out.append(answer_ping(vlan, ip, server.mac, cookies.cookie("dhcp", server.id)))
        answers = tuple((ip, server.mac) for ip in servers)
        for p in world.ports_on(node.id):
            if p.network_id == net.id and p.admin_state_up and not owners.is_infrastructure(p.device_owner):
                out += punt_dhcp(p, rate, answers)
    return out


def dhcp_port(world: World, network_id: str) -> PortInfo | None:
    ports = [p for p in world.ports_of_network(network_id) if p.device_owner == owners.DHCP]
    return min(ports, key=lambda p: p.id) if ports else None


def server_addresses(world: World, server: PortInfo) -> list[str]:
    """The DHCP port's addresses on DHCP-enabled IPv4 subnets."""
    out = []
    for subnet_id, ip in server.fixed_ips:
        s = world.subnets.get(subnet_id)
        if s and s.enable_dhcp and s.ip_version == 4 and ipaddress.ip_address(ip).version == 4:
            out.append(ip)
    return sorted(out)


@per_object      # per port: unchanged ports cost a lookup (flows/memo.py)
def punt_dhcp(p: PortInfo, rate: int, servers: tuple) -> list:
    """`servers`: ((DHCP address, DHCP port MAC), ...) of the port's network."""
    c = cookies.cookie("port", p.id)
    dhcp = dict(eth_type=proto.ETH_TYPE_IP, ip_proto=proto.IPPROTO_UDP,
                udp_src=proto.DHCP_CLIENT_PORT, udp_dst=proto.DHCP_SERVER_PORT)
    return [
        Flow("br-int", T.PORT_SECURITY, PRIO_PORTSEC_DHCP,
             match(**{t.REG_IN_PORT: p.ofport}, eth_src=p.mac, **dhcp),
             (("goto", int(T.DHCP)),), c),
        *(answers.answer_arp(T.PORT_SECURITY, PRIO_PORTSEC_DHCP, ip, mac, c,
                             eth_src=p.mac, **{t.REG_IN_PORT: p.ofport}) for ip, mac in servers),
        Flow("br-int", T.DHCP, PRIO_PUNT, match(in_port=p.ofport, **dhcp),
             (("meter", p.ofport), ("controller", NO_BUFFER)), c),
        Meter("br-int", p.ofport, rate, burst=rate),
    ]


@functools.lru_cache(maxsize=4096)     # by value: the same object round after round
def answer_ping(vlan: int, ip: str, mac: str, c: int) -> Flow:
    return answers.answer_ping(T.DHCP, PRIO_PUNT, ip, mac, c, metadata=vlan)
