"""Owner cookies: every flow says which object put it there.

    bits 63..56  owner kind (OWNER_KINDS)
    bits 55..0   the first 14 hex digits of the owner's UUID (0 for singletons)

The reconciler only ever touches flows whose cookie kind it knows (kind != 0),
so flows an operator adds by hand with cookie 0 are left alone. The console
turns a cookie back into a resource: `decode(cookie)` gives (kind, prefix) and
the DB is asked for the id starting with that prefix.
"""
from __future__ import annotations

OWNER_KINDS = {
    "infra": 0x01,      # table-miss, pipeline glue, tunnels, patch ports: owned by the node
    "network": 0x02,
    "port": 0x03,
    "dhcp": 0x04,       # DHCP punt/responder flows of a network's DHCP port
    "router": 0x05,
    "floatingip": 0x06,
    "security_group": 0x07,
    "metadata": 0x08,
    "security_group_rule": 0x09,   # the flows of one rule (security_groups.py)
}
KIND_NAMES = {v: k for k, v in OWNER_KINDS.items()}

KIND_SHIFT = 56
KEY_MASK = (1 << KIND_SHIFT) - 1
KIND_MASK = 0xFF << KIND_SHIFT


def cookie(kind: str, owner_id: str | None = None) -> int:
    """cookie("port", "8c77dea8-0d1f-...") -> 0x038c77dea80d1f..."""
    key = 0
    if owner_id:
        key = int(owner_id.replace("-", "")[:14], 16)
    return (OWNER_KINDS[kind] << KIND_SHIFT) | key


def decode(c: int) -> tuple[str | None, str]:
    """-> (kind name or None for foreign flows, uuid prefix like '8c77dea8-0d1f-')"""
    kind = KIND_NAMES.get(c >> KIND_SHIFT)
    key = f"{c & KEY_MASK:014x}"
    return kind, f"{key[:8]}-{key[8:12]}-{key[12:]}"


def is_ours(c: int) -> bool:
    return (c >> KIND_SHIFT) in KIND_NAMES
