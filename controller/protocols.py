"""Ethernet, IP, ARP, ICMP and DHCP numbers, named once for the flow
compilers, the DHCP server and the router app; and the IP protocol names
Neutron's API accepts in security-group rules, shared by the API's validation
(controller/api/sg_rules.py) and the compiler (controller/flows/security_groups.py)."""
from __future__ import annotations

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_8021Q = 0x8100      # the VLAN tag (push_vlan)
ETH_TYPE_IPV6 = 0x86DD

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17

ARP_REQUEST = 1
ARP_REPLY = 2

ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8

DHCP_SERVER_PORT = 67
DHCP_CLIENT_PORT = 68

# Neutron's protocol names and their IP protocol numbers.
PROTOCOLS = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1,
    "igmp": 2, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58,
    "icmpv6": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89,
    "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136,
    "vrrp": 112,
}


def protocol_number(protocol: str | None) -> int | None:
    """A rule's protocol as stored (a name or a number as text) -> its
    number; None: any protocol."""
    if protocol is None:
        return None
    if protocol in PROTOCOLS:
        return PROTOCOLS[protocol]
    return int(protocol)
