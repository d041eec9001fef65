"""The Trace page's logic: "a packet from port X to address Y (protocol,
port)" becomes a packet dict, walked by controller/flows/trace.py through
the DESIRED flows of the nodes it reaches (computed on demand, per node), or
through the flows the switches really have (read on demand, per node).

The destination MAC is what the VM would have resolved: the port that holds
Y on the source's network, else the network's router interface (a routed
packet), else nobody answers ARP for Y and the ARP request itself is traced.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from controller import protocols as proto
from controller.flows.compiler import compile_node
from controller.flows.trace import Fabric, Trace

PROTOCOLS = {"icmp": proto.IPPROTO_ICMP, "tcp": proto.IPPROTO_TCP, "udp": proto.IPPROTO_UDP}
BROADCAST = "ff:ff:ff:ff:ff:ff"
SOURCE_L4_PORT = 40000


@dataclass
class TraceRequest:
    port_id: str
    dst: str
    protocol: str = "icmp"         # icmp | tcp | udp | arp
    dst_port: int | None = None


@dataclass
class TraceResult:
    packet: dict | None = None
    trace: Trace | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def build_packet(world, req: TraceRequest) -> TraceResult:
    src = world.ports.get(req.port_id)
    if src is None:
        return TraceResult(error="no such port")
    if not (src.node_id and src.ofport):
        return TraceResult(error="the port is not plugged into any hypervisor (not bound)")
    try:
        dst_ip = str(ipaddress.IPv4Address(req.dst.strip()))
    except ValueError:
        return TraceResult(error=f"{req.dst!r} is not an IPv4 address")
    src_ip = next((ip for _s, ip in src.fixed_ips if ":" not in ip), "0.0.0.0")
    notes = []
    holder = next((p for p in world.ports_of_network(src.network_id)
                   if any(ip == dst_ip for _s, ip in p.fixed_ips)), None)
    if holder is None:
        holder = _gateway_port(world, src)
        if holder is not None:
            notes.append(f"{dst_ip} is not on this network: sent to the router interface "
                         f"{holder.fixed_ips[0][1]} ({holder.mac})")
    protocol = req.protocol if req.protocol in PROTOCOLS or req.protocol == "arp" else "icmp"
    if holder is None and protocol != "arp":
        notes.append(f"no port on this network holds {dst_ip} and there is no router: "
                     "the VM's ARP request is traced instead")
        protocol = "arp"
    if protocol == "arp":
        pkt = {"eth_src": src.mac, "eth_dst": BROADCAST, "eth_type": proto.ETH_TYPE_ARP,
               "arp_op": proto.ARP_REQUEST, "arp_sha": src.mac, "arp_spa": src_ip, "arp_tha": "00:00:00:00:00:00",
               "arp_tpa": dst_ip}
    else:
        pkt = {"eth_src": src.mac, "eth_dst": holder.mac, "eth_type": proto.ETH_TYPE_IP,
               "ip_proto": PROTOCOLS[protocol], "ipv4_src": src_ip, "ipv4_dst": dst_ip, "nw_ttl": 64}
        if protocol == "icmp":
            pkt.update(icmpv4_type=proto.ICMP_ECHO_REQUEST, icmpv4_code=0)
        else:
            pkt.update({f"{protocol}_src": SOURCE_L4_PORT, f"{protocol}_dst": int(req.dst_port or 80)})
    return TraceResult(packet=pkt, notes=notes)


def _gateway_port(world, src):
    """The router interface on the source's subnet (its gateway_ip)."""
    gateways = {world.subnets[s].gateway_ip for s, _ip in src.fixed_ips if s in world.subnets}
    for p in world.ports_of_network(src.network_id):
        if p.device_owner.startswith("network:router_interface") and \
                any(ip in gateways for _s, ip in p.fixed_ips):
            return p
    return None


def desired_flows(world):
    """node_id -> that node's desired flows, computed when the walk gets there."""
    return lambda node_id: compile_node(world, world.nodes[node_id]).flows if node_id in world.nodes else []


def run(world, req: TraceRequest, flows_of=None) -> TraceResult:
    """flows_of: node_id -> flows to walk (default: the desired ones; the
    console can pass the flows read from the switches instead)."""
    res = build_packet(world, req)
    if res.error:
        return res
    src = world.ports[req.port_id]
    fabric = Fabric(world, flows_of or desired_flows(world), strict=False)
    res.trace = fabric.trace(src.node_id, src.ofport, res.packet)
    return res
