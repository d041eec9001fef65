"""IP address management with netaddr (docs/API.md "Subnets and addresses").

Pure helpers for subnets (canonical cidr, default gateway, usable range,
default allocation pools, pool validation, MACs) and two allocators that work
in the caller's transaction:

* `allocate_random()`: a few random candidates from the pools are checked in
  one query; only when they are all taken (a nearly full pool) do we read the
  subnet's allocations and pick among the first free addresses. Cost does not
  grow with the subnet size.
* `allocate_first()`: the lowest free address (DHCP ports, as Quantum did).

The IPAllocation primary key (subnet_id, ip_address) is what makes a double
allocation impossible: a concurrent transaction that picked the same address
fails on insert and is retried (controller/api/resource.run_write).
"""
from __future__ import annotations

import functools
import random

import netaddr
from sqlalchemy import bindparam, select

from controller import domain_errors as errors
from controller.db import models

_CANDIDATES = 8          # random picks tried in one query before scanning
_SCAN_LIMIT = 1000       # choose among the first free addresses when scanning


def canonical_cidr(cidr: str) -> netaddr.IPNetwork:
    return netaddr.IPNetwork(cidr).cidr


def ip_text(ip) -> str:
    """The canonical text form stored in the DB and returned by the API."""
    return str(netaddr.IPAddress(ip))


def default_gateway(net: netaddr.IPNetwork) -> str | None:
    if net.version == 6:
        return str(net.network)            # the subnet-router anycast address
    if net.size < 2:
        return None
    return str(netaddr.IPAddress(net.first + 1))


def usable_range(net: netaddr.IPNetwork) -> tuple[int, int]:
    if net.version == 4:
        if net.prefixlen >= 31:
            return net.first, net.last
        return net.first + 1, net.last - 1
    return net.first + 1, net.last


def generate_pools(net: netaddr.IPNetwork, gateway: str | None) -> list[dict]:
    lo, hi = usable_range(net)
    if lo > hi:
        return []
    ips = netaddr.IPSet(netaddr.IPRange(lo, hi))
    if gateway:
        ips.remove(netaddr.IPAddress(gateway))
    return [{"start": str(netaddr.IPAddress(r.first, net.version)),
             "end": str(netaddr.IPAddress(r.last, net.version))} for r in ips.iter_ipranges()]


def pool_ranges(pools: list[dict]) -> list[tuple[int, int]]:
    return list(_ranges(tuple((p["start"], p["end"]) for p in pools)))


@functools.lru_cache(maxsize=4096)
def _ranges(pairs: tuple) -> tuple:
    # Parsed once per pool set: every port create reads its subnet's pools.
    return tuple((int(netaddr.IPAddress(a)), int(netaddr.IPAddress(b))) for a, b in pairs)


def validate_pools(net: netaddr.IPNetwork, pools: list[dict], gateway: str | None) -> list[dict]:
    """Canonical pools, or a domain error (InvalidAllocationPool, OutOfBounds,
    OverlappingAllocationPools, GatewayConflictWithAllocationPools)."""
    lo, hi = usable_range(net)
    ranges = []
    for p in pools:
        try:
            start, end = netaddr.IPAddress(p["start"]), netaddr.IPAddress(p["end"])
        except (netaddr.AddrFormatError, ValueError, TypeError, KeyError):
            raise errors.InvalidAllocationPool(pool=p) from None
        if start.version != net.version or end.version != net.version or start > end:
            raise errors.InvalidAllocationPool(pool=p)
        if int(start) < lo or int(end) > hi:
            raise errors.OutOfBoundsAllocationPool(pool=p, subnet_cidr=str(net))
        ranges.append(netaddr.IPRange(start, end))
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            if a.first <= b.last and b.first <= a.last:
                raise errors.OverlappingAllocationPools(pool_1=a, pool_2=b, subnet_cidr=str(net))
    if gateway:
        gw = int(netaddr.IPAddress(gateway))
        for r in ranges:
            if r.first <= gw <= r.last:
                raise errors.GatewayConflictWithAllocationPools(ip_address=gateway, pool=r)
    return [{"start": str(netaddr.IPAddress(r.first, net.version)),
             "end": str(netaddr.IPAddress(r.last, net.version))} for r in ranges]


def ip_valid_for_subnet(net: netaddr.IPNetwork, ip: netaddr.IPAddress) -> bool:
    """Inside the cidr and, for IPv4 up to /30, not the network or broadcast address."""
    if ip.version != net.version or ip not in net:
        return False
    if net.version == 4 and net.prefixlen < 31 and int(ip) in (net.first, net.last):
        return False
    return True


# --- allocation in a transaction -------------------------------------------------

def is_allocated(s, subnet_id: str, ip: str) -> bool:
    return s.get(models.IPAllocation, (subnet_id, ip)) is not None


# A fixed number of placeholders (fewer picks repeat the last one): an
# expanding IN is rewritten on every execution, a cost on each port create.
_TAKEN = select(models.IPAllocation.ip_address).where(
    models.IPAllocation.subnet_id == bindparam("sid"),
    models.IPAllocation.ip_address.in_([bindparam(f"ip{i}") for i in range(_CANDIDATES)]))


def allocate_random(s, subnet: dict) -> str | None:
    """A free address from the subnet's pools, or None when they are full."""
    ranges = pool_ranges(subnet["allocation_pools"])
    total = sum(b - a + 1 for a, b in ranges)
    if total <= 0:
        return None
    version = subnet["ip_version"]
    picks = {_nth(ranges, random.randrange(total)) for _ in range(min(_CANDIDATES, total))}
    texts = [str(netaddr.IPAddress(p, version)) for p in picks]
    s.flush()       # Core below (hot path): pending ORM allocations must be visible
    params = {f"ip{i}": texts[min(i, len(texts) - 1)] for i in range(_CANDIDATES)}
    params["sid"] = subnet["id"]
    taken = set(s.connection().execute(_TAKEN, params).scalars())
    free = [t for t in texts if t not in taken]
    if free:
        return random.choice(free)
    candidates = _scan_free(s, subnet, ranges, _SCAN_LIMIT)
    return random.choice(candidates) if candidates else None


def allocate_first(s, subnet: dict) -> str | None:
    found = _scan_free(s, subnet, pool_ranges(subnet["allocation_pools"]), 1)
    return found[0] if found else None


def _nth(ranges, n: int) -> int:
    for a, b in ranges:
        size = b - a + 1
        if n < size:
            return a + n
        n -= size
    raise IndexError(n)


def _scan_free(s, subnet: dict, ranges, limit: int) -> list[str]:
    version = subnet["ip_version"]
    used = {int(netaddr.IPAddress(t)) for t in s.execute(
        select(models.IPAllocation.ip_address).where(
            models.IPAllocation.subnet_id == subnet["id"])).scalars()}
    out = []
    for a, b in sorted(ranges):
        ip = a
        while ip <= b and len(out) < limit:
            if ip not in used:
                out.append(str(netaddr.IPAddress(ip, version)))
            ip += 1
            if len(out) >= limit:
                break
        if len(out) >= limit:
            break
    return out


def eui64_address(subnet_cidr: str, mac: str) -> str:
    """SLAAC address of a MAC on an IPv6 /64."""
    net = netaddr.IPNetwork(subnet_cidr)
    eui = netaddr.EUI(mac)
    return str(netaddr.IPAddress(net.first + int(eui.ipv6_link_local()) - int(netaddr.IPAddress("fe80::")), 6))


# --- MAC addresses ------------------------------------------------------------------

def generate_mac(base_mac: str) -> str:
    """base fa:16:3e:00:00:00: the first three octets are kept, the fourth when
    it is not 00, the rest is random."""
    base = base_mac.split(":")
    octets = [int(x, 16) for x in base[:3]]
    fourth = int(base[3], 16)
    octets.append(fourth if fourth else random.randint(0, 255))
    octets += [random.randint(0, 255) for _ in range(6 - len(octets))]
    return ":".join(f"{o:02x}" for o in octets)
