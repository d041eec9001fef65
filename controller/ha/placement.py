"""Which controller should master which node: a pure function of the node
ids and the candidate controllers, so every controller computes the same
answer from the same rows.

Rendezvous hashing with a load bound: each node ranks the controllers by a
hash of (node, controller) and goes to the first that has fewer than
ceil(nodes / controllers). Spread is even, and a controller joining or
leaving moves few nodes (most keep their first choice).
"""
from __future__ import annotations

import hashlib
import math
from typing import Iterable


def weight(node_id: str, controller_id: str) -> int:
    h = hashlib.blake2b(f"{node_id}\0{controller_id}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def assign(node_ids: Iterable[str], controllers: Iterable[str]) -> dict[str, str]:
    """node id -> controller id (empty when there is no controller)."""
    ctls = sorted(set(controllers))
    nodes = sorted(set(node_ids))
    if not ctls:
        return {}
    cap = math.ceil(len(nodes) / len(ctls))
    load = dict.fromkeys(ctls, 0)
    out = {}
    for n in nodes:
        for c in sorted(ctls, key=lambda c: (-weight(n, c), c)):
            if load[c] < cap:
                out[n] = c
                load[c] += 1
                break
    return out
