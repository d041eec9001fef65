"""The per-port source addresses of metadata requests.

Each VM port gets a small integer index, stored in the `metadata_addresses`
table (allocated by controller/model/allocation.py like the local VLANs). The
flows rewrite a VM's request to come from `source_range[index]`, so the proxy
learns the port from the source address alone, even when two tenants use the
same fixed IPs. Index 0 and the range's last address are never used (network
and broadcast addresses confuse some stacks).
"""
from __future__ import annotations

import ipaddress
from typing import Iterable

from controller.model import owners

DEFAULT_RANGE = "100.64.0.0/10"
FIRST_INDEX = 1


def source_network(source_range: str = DEFAULT_RANGE) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(source_range, strict=False)


def max_index(source_range: str = DEFAULT_RANGE) -> int:
    return source_network(source_range).num_addresses - 2


def address_of(index: int, source_range: str = DEFAULT_RANGE) -> str:
    """index 5 in 100.64.0.0/10 -> '100.64.0.5'."""
    if not FIRST_INDEX <= index <= max_index(source_range):
        raise ValueError(f"metadata index {index} outside {source_range}")
    return str(source_network(source_range).network_address + index)


def index_of(address: str, source_range: str = DEFAULT_RANGE) -> int | None:
    """The inverse of address_of; None for an address outside the range."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return None
    net = source_network(source_range)
    if ip not in net:
        return None
    index = int(ip) - int(net.network_address)
    return index if FIRST_INDEX <= index <= max_index(source_range) else None


def primary_ipv4(addresses: Iterable[str]) -> str | None:
    """The fixed IP a port's metadata requests are accepted from (and answered
    to): its lowest IPv4 address. The flows and the proxy both use this."""
    ips = []
    for a in addresses:
        try:
            ip = ipaddress.ip_address(a)
        except ValueError:
            continue
        if ip.version == 4:
            ips.append(ip)
    return str(min(ips)) if ips else None


def assign_indexes(existing: dict[str, int], wanted: set[str], live: set[str],
                   source_range: str = DEFAULT_RANGE) -> dict[str, int]:
    """port id -> index. Ports keep their index while they exist (`live`), so
    an unplug/replug does not change the address the proxy sees; ports in
    `wanted` without one get the lowest free index (in sorted order, so the
    result is deterministic)."""
    out = {p: i for p, i in existing.items() if p in live}
    used = set(out.values())
    top = max_index(source_range)
    candidate = FIRST_INDEX
    for port_id in sorted(wanted - out.keys()):
        while candidate in used:
            candidate += 1
        if candidate > top:
            break                      # range exhausted: those ports get no metadata
        out[port_id] = candidate
        used.add(candidate)
    return out


def wants_metadata(port) -> bool:
    """A VM port plugged into a node with an IPv4 address (a world.PortInfo)."""
    return bool(port.node_id and port.ofport and not owners.is_infrastructure(port.device_owner)
                and primary_ipv4(ip for _s, ip in port.fixed_ips))
