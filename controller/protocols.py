"""Ethernet, IP, ARP, ICMP and DHCP numbers, named once for the flow
compilers, the DHCP server and the router app."""

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
