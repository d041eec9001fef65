"""Shared builders for the DHCP unit tests (no tests here; named test_dhcp_* to stay in the DHCP area): client frames made with scapy
(an independent implementation), and port facts made by hand."""
from __future__ import annotations

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from controller.dhcp.facts import PortFacts, Settings, SubnetFacts

VM_MAC = "fa:16:3e:00:00:11"
SERVER_MAC = "fa:16:3e:00:00:02"
SERVER_IP = "10.0.0.2"
VM_IP = "10.0.0.5"


def client_frame(msg_type="discover", *, mac=VM_MAC, xid=0x1234, flags=0, ciaddr="0.0.0.0",
                 src="0.0.0.0", dst="255.255.255.255", options=(), eth_dst="ff:ff:ff:ff:ff:ff"):
    opts = [("message-type", msg_type), *options, "end"]
    pkt = (Ether(src=mac, dst=eth_dst) / IP(src=src, dst=dst) / UDP(sport=68, dport=67)
           / BOOTP(op=1, xid=xid, flags=flags, ciaddr=ciaddr,
                   chaddr=bytes.fromhex(mac.replace(":", "")) + bytes(10))
           / DHCP(options=opts))
    return bytes(pkt)


def subnet(**kw) -> SubnetFacts:
    base = dict(id="sub-a", cidr="10.0.0.0/24", gateway_ip="10.0.0.1",
                dns_nameservers=("192.0.2.53", "192.0.2.54"), server_ip=SERVER_IP)
    base.update(kw)
    return SubnetFacts(**base)


def port(*addresses, mac=VM_MAC, mtu=1458) -> PortFacts:
    if not addresses:
        addresses = ((subnet(), VM_IP),)
    return PortFacts(id="port-1", mac=mac, mtu=mtu, addresses=tuple(addresses),
                     server_mac=SERVER_MAC)


SETTINGS = Settings(lease_time=86400, domain="openstacklocal")


def scapy_options(frame: bytes) -> dict:
    """The DHCP options of a reply frame, decoded by scapy."""
    out = {}
    for o in Ether(frame)[DHCP].options:
        if isinstance(o, tuple):
            out[o[0]] = o[1] if len(o) == 2 else o[1:]
    return out
