"""The switch answering for an address itself: an ARP reply and an ICMP echo
reply built in place from the request (docs/PIPELINE.md, tables 20-22 and 40). One builder
of each; the compilers put them in their own table, at their own priority,
with their own extra match fields (network, ingress port, ...).
"""
from __future__ import annotations

from controller import protocols as proto
from controller.flows.flow import Flow, Match, match

BACK_OUT = (("output", "in_port"),)      # the usual way out: where the request came in


def arp_reply(mac: str, ip: str, out: tuple = BACK_OUT) -> tuple:
    """Actions turning an ARP request for `ip` into the reply `ip is-at mac`,
    then `out`."""
    return (
        ("move", "eth_src", "eth_dst", 48),
        ("set_field", "eth_src", mac),
        ("set_field", "arp_op", proto.ARP_REPLY),
        ("move", "arp_sha", "arp_tha", 48),
        ("move", "arp_spa", "arp_tpa", 32),
        ("set_field", "arp_sha", mac),
        ("set_field", "arp_spa", ip),
    ) + out


def echo_reply(mac: str, ip: str, out: tuple = BACK_OUT) -> tuple:
    """Actions turning an ICMP echo request to `ip` into the reply from `ip`
    (OVS fixes the ICMP checksum on set_field), then `out`."""
    return (
        ("move", "eth_src", "eth_dst", 48),
        ("set_field", "eth_src", mac),
        ("move", "ipv4_src", "ipv4_dst", 32),
        ("set_field", "ipv4_src", ip),
        ("set_field", "icmpv4_type", proto.ICMP_ECHO_REPLY),
    ) + out


def arp_request_for(ip: str, **fields) -> Match:
    return match(eth_type=proto.ETH_TYPE_ARP, arp_op=proto.ARP_REQUEST, arp_tpa=ip, **fields)


def echo_request_to(ip: str, **fields) -> Match:
    return match(eth_type=proto.ETH_TYPE_IP, ip_proto=proto.IPPROTO_ICMP,
                 icmpv4_type=proto.ICMP_ECHO_REQUEST, ipv4_dst=ip, **fields)


def answer_arp(table: int, priority: int, ip: str, mac: str, cookie: int,
               out: tuple = BACK_OUT, **fields) -> Flow:
    """br-int: an ARP request for `ip` (and `fields`) -> `ip is-at mac`."""
    return Flow("br-int", table, priority, arp_request_for(ip, **fields), arp_reply(mac, ip, out), cookie)


def answer_ping(table: int, priority: int, ip: str, mac: str, cookie: int,
                out: tuple = BACK_OUT, **fields) -> Flow:
    """br-int: an ICMP echo request to `ip` (and `fields`) -> the echo reply."""
    return Flow("br-int", table, priority, echo_request_to(ip, **fields), echo_reply(mac, ip, out), cookie)
