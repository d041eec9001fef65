"""Metadata: a VM's HTTP to 169.254.169.254:80 reaches the central metadata
proxy (controller/proxy) through flows only; no agent, no namespace, no
conntrack. Stateless rewriting both ways:

  request   VM -> 169.254.169.254:80  becomes  S(port) -> proxy_ip:proxy_port,
            eth M(port) -> proxy_mac, out of the metadata uplink (patch-meta,
            a patch into the node's management bridge, node-bootstrap
            --metadata-bridge)
  reply     proxy_ip:proxy_port -> S(port) from the uplink  becomes
            169.254.169.254:80 -> the VM's fixed IP and MAC, out of its port

S(port) is the port's own address in [metadata] source_range (index stored
in the DB, controller/model/metadata_addresses.py), so the proxy knows the
port from the source address alone, whatever tenants do with their addresses; M(port)
is a MAC derived from the same index. The proxy host reaches S(port) by ARP
on the management network (on-link route for source_range), and only the
node where the port is answers that ARP, with M(port). Because M(port) does
not depend on the node, a port that moves is found again as soon as its next
request teaches the management switches where M(port) is now.

Flows (br-int; cookie "metadata" with the port's id, or the node's):
  CLASSIFY  in_port=patch-meta -> goto METADATA
  METADATA  reg5=<vm>, tcp, ipv4_src=<fixed ip>, 169.254.169.254:80 -> rewrite, out patch-meta
            in_port=patch-meta, arp request for S(port) -> reply M(port), out in_port
            in_port=patch-meta, tcp from proxy to S(port) -> rewrite, out <vm>
            arp request for 169.254.169.254 (from any VM port) -> reply METADATA_MAC
            in_port=patch-meta, anything else (1) -> drop
The VM's fixed IP used is its lowest IPv4 address (metadata_addresses.primary_ipv4),
the one it sends from; other sources (allowed address pairs) are not
redirected. Requests and replies bypass the security-group tables, as
Quantum's metadata traffic did.
"""
from __future__ import annotations

import functools

from controller import protocols as proto
from controller.flows import answers, cookies
from controller.flows import tables as t
from controller.flows.flow import Flow, match
from controller.flows.memo import per_object
from controller.flows.uplink import is_usable
from controller.model.world import NodeInfo, PortInfo, World
from controller.model.metadata_addresses import address_of, primary_ipv4, wants_metadata
from controller.model.settings import MetadataSettings

T = t.IntTable
UPLINK = t.INT_PATCH_META_OFPORT
METADATA_IP = "169.254.169.254"
METADATA_PORT = 80
METADATA_MAC = "fe:a9:fe:a9:fe:fe"     # answers ARP for 169.254.169.254
SOURCE_MAC_PREFIX = "fe:64"            # + 4 bytes of the port's index: M(port)


def compile_metadata(world: World, node: NodeInfo) -> list[Flow]:
    settings = world.settings.metadata          # None: metadata is off
    if settings is None or "br-int" not in dict(node.bridges):
        return []
    out = list(node_flows(node.id))
    for p in world.ports_on(node.id):
        index = world.metadata_indexes.get(p.id)
        if index is None or not p.admin_state_up or not wants_metadata(p):
            continue
        if not is_usable(world.networks.get(p.network_id)):
            continue
        out += redirect_port(p, index, settings)
    return out


@functools.lru_cache(maxsize=4096)     # the same objects round after round (compiler.NodeCompiler)
def node_flows(node_id: str) -> tuple[Flow, ...]:
    """The uplink's entry, its default drop and the ARP answer for 169.254.169.254."""
    c = cookies.cookie("metadata", node_id)
    return (
        Flow("br-int", T.CLASSIFY, t.PRIO_DEFAULT, match(in_port=UPLINK),
             (("goto", int(T.METADATA)),), c),
        Flow("br-int", T.METADATA, 1, match(in_port=UPLINK), (), c),
        answers.answer_arp(T.METADATA, t.PRIO_DEFAULT, METADATA_IP, METADATA_MAC, c),
    )


def source_mac(index: int) -> str:
    """M(port): locally administered, unicast, one per index."""
    b = index.to_bytes(4, "big")
    return SOURCE_MAC_PREFIX + "".join(f":{x:02x}" for x in b)


@per_object      # per port: unchanged ports cost a lookup (flows/memo.py)
def redirect_port(p: PortInfo, index: int, s: MetadataSettings) -> list[Flow]:
    c = cookies.cookie("metadata", p.id)
    fixed_ip = primary_ipv4(ip for _s, ip in p.fixed_ips)
    src_ip, src_mac = address_of(index, s.source_range), source_mac(index)
    request = Flow("br-int", T.METADATA, t.PRIO_DEFAULT,
                   match(**{t.REG_IN_PORT: p.ofport}, eth_type=proto.ETH_TYPE_IP, ip_proto=proto.IPPROTO_TCP,
                         ipv4_src=fixed_ip, ipv4_dst=METADATA_IP, tcp_dst=METADATA_PORT),
                   (("set_field", "eth_src", src_mac),
                    ("set_field", "eth_dst", s.proxy_mac),
                    ("set_field", "ipv4_src", src_ip),
                    ("set_field", "ipv4_dst", s.proxy_ip),
                    ("set_field", "tcp_dst", s.proxy_port),
                    ("output", UPLINK)), c)
    reply = Flow("br-int", T.METADATA, t.PRIO_DEFAULT,
                 match(in_port=UPLINK, eth_type=proto.ETH_TYPE_IP, ip_proto=proto.IPPROTO_TCP, ipv4_src=s.proxy_ip,
                       tcp_src=s.proxy_port, ipv4_dst=src_ip),
                 (("set_field", "eth_src", METADATA_MAC),
                  ("set_field", "eth_dst", p.mac),
                  ("set_field", "ipv4_src", METADATA_IP),
                  ("set_field", "ipv4_dst", fixed_ip),
                  ("set_field", "tcp_src", METADATA_PORT),
                  ("output", p.ofport)), c)
    arp = answers.answer_arp(T.METADATA, t.PRIO_DEFAULT, src_ip, src_mac, c, in_port=UPLINK)
    return [request, reply, arp]
