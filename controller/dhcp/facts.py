"""What the DHCP server knows about the port a request came from.

Plain frozen data: the app (controller/apps/dhcp.py) builds it from the
database, unit tests build it by hand.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class SubnetFacts:
    id: str
    cidr: str
    gateway_ip: str | None
    enable_dhcp: bool = True
    ip_version: int = 4
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[tuple[str, str], ...] = ()   # (destination CIDR, nexthop)
    server_ip: str | None = None                    # the network's DHCP port address here
    # No router on the subnet: option 121 adds 169.254.169.254/32 via server_ip
    # (the metadata flows catch the request whatever next hop the VM uses).
    metadata_route: bool = False

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr, strict=False)

    @property
    def serves_dhcp(self) -> bool:
        return self.ip_version == 4 and self.enable_dhcp and self.server_ip is not None


@dataclass(frozen=True)
class PortFacts:
    id: str
    mac: str
    mtu: int
    # The port's fixed IPs with their subnets, in the port's order.
    addresses: tuple[tuple[SubnetFacts, str], ...]
    server_mac: str                                 # MAC of the network's DHCP port

    def dhcp_addresses(self) -> list[tuple[SubnetFacts, str]]:
        """Fixed IPs this server hands out: on DHCP-enabled IPv4 subnets."""
        return [(s, ip) for s, ip in self.addresses if s.serves_dhcp]

    def find(self, ip: str | None) -> tuple[SubnetFacts, str] | None:
        for s, a in self.dhcp_addresses():
            if a == ip:
                return s, a
        return None


@dataclass(frozen=True)
class Settings:
    lease_time: int = 86400
    domain: str = "openstacklocal"
