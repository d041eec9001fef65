"""What the domain code (controller/ipam.py, controller/segments.py) refuses,
in its own terms. Nothing here knows HTTP: the API answers each one as the
Neutron error named in controller/api/errors.py (from_domain), so the same
code can serve a CLI or a test without an API around it.
"""
from __future__ import annotations


class DomainError(Exception):
    """`details` are the facts of the refusal (the API's message fills them in)."""
    message = "refused: %s"

    def __init__(self, **details):
        self.details = details
        super().__init__(self.message % (details,))


# --- IPAM: allocation pools ---------------------------------------------------

class InvalidAllocationPool(DomainError):
    """pool: not a valid start/end pair for the subnet's IP version."""


class OutOfBoundsAllocationPool(DomainError):
    """pool, subnet_cidr: the pool leaves the subnet's usable range."""


class OverlappingAllocationPools(DomainError):
    """pool_1, pool_2, subnet_cidr."""


class GatewayConflictWithAllocationPools(DomainError):
    """ip_address, pool: the gateway lies inside a pool."""


# --- segments -----------------------------------------------------------------

class InvalidSegment(DomainError):
    """error_message: a provider request that cannot be a segment."""


class NoSegmentAvailable(DomainError):
    """Every range of every tenant network type is used up."""


class VlanIdInUse(DomainError):
    """vlan_id, physical_network."""


class FlatNetworkInUse(DomainError):
    """physical_network."""


class TunnelIdInUse(DomainError):
    """tunnel_id."""
