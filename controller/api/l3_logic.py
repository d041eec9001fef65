"""Pure L3 decisions (no DB, no HTTP): subnet overlap on a router, which
router serves a floating IP, which address a floating IP may use."""
from __future__ import annotations

from dataclasses import dataclass

import netaddr

from controller.api.l3_errors import BadRequest


def router_error(msg: str) -> BadRequest:
    return BadRequest(resource="router", msg=msg)


def check_router_subnets(new: tuple[str, str], attached: list[tuple[str, str]]) -> None:
    """`new` and `attached` are (subnet_id, cidr). A router may hold one port
    per subnet, and no two of its subnets may overlap: packets would have two
    ways out."""
    new_id, new_cidr = new
    new_net = netaddr.IPNetwork(new_cidr)
    for sub_id, cidr in attached:
        if sub_id == new_id:
            raise router_error(f"Router already has a port on subnet {new_id}")
        net = netaddr.IPNetwork(cidr)
        if new_net.version == net.version and (new_net in net or net in new_net):
            raise router_error(f"Cidr {new_cidr} of subnet {new_id} overlaps with cidr "
                               f"{cidr} of subnet {sub_id}")


@dataclass(frozen=True)
class RouterCandidate:
    """A router with an interface on the internal subnet of the port."""
    router_id: str
    interface_ip: str           # the router's address on that subnet
    gateway_network_id: str | None


def router_for_floatingip(candidates: list[RouterCandidate], external_network_id: str,
                          subnet_gateway_ip: str | None) -> str | None:
    """The router that NATs for the FIP: one with a gateway on the FIP's
    network; the one that is the subnet's default gateway wins (VMs send
    their traffic there)."""
    matching = [c for c in candidates if c.gateway_network_id == external_network_id]
    for c in matching:
        if subnet_gateway_ip and c.interface_ip == subnet_gateway_ip:
            return c.router_id
    return matching[0].router_id if matching else None


def choose_fixed_ip(port_id: str, ipv4_addresses: list[str], requested: str | None) -> str:
    """The fixed IP of the internal port the FIP maps to."""
    if requested is not None:
        if requested not in ipv4_addresses:
            raise BadRequest(resource="floatingip",
                             msg=f"Port {port_id} does not have fixed ip {requested}")
        return requested
    if not ipv4_addresses:
        raise BadRequest(resource="floatingip",
                         msg=f"Cannot add floating IP to port {port_id} that has no "
                             f"fixed IPv4 addresses")
    if len(ipv4_addresses) > 1:
        raise BadRequest(resource="floatingip",
                         msg=f"Port {port_id} has multiple fixed IPv4 addresses. Must "
                             f"provide a specific IPv4 address when assigning a floating IP")
    return ipv4_addresses[0]
