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


def assign(node_ids: Iterable[str], controllers: Iterable[str],
           reach: dict[str, set] | None = None) -> dict[str, str]:
    """node id -> controller id (empty when there is no controller). With
    `reach` (controller -> node ids whose switches are connected to it), a
    node goes only to a controller that reaches it, when any does: a
    controller whose switches have not (re)connected yet is given nothing
    it could not program."""
    ctls = sorted(set(controllers))
    nodes = sorted(set(node_ids))
    if not ctls:
        return {}
    cap = math.ceil(len(nodes) / len(ctls))
    load = dict.fromkeys(ctls, 0)
    out = {}
    for n in nodes:
        ranked = sorted(ctls, key=lambda c: (-weight(n, c), c))
        if reach is not None:
            ranked = [c for c in ranked if n in reach.get(c, ())] or ranked
        c = next((c for c in ranked if load[c] < cap), min(ranked, key=lambda c: load[c]))
        out[n] = c
        load[c] += 1
    return out
