"""Memoize a compiler's per-object pieces (one port's flows, one network's).

    @per_object
    def port_security(p: PortInfo) -> list[Flow]: ...

caches the result on the *identity* of the first argument and the value of
the others. Why this is safe: World objects are frozen, so one object always
yields the same flows. Why identity: the reconciler's incremental World
(controller/model/snapshot.py refresh_ports) keeps every unchanged PortInfo
object from one round to the next, so an unchanged port costs one dict
lookup on an int, and returns the very same Flow objects as last round,
which lets compiler.NodeCompiler and the reconciler diff by identity instead
of comparing thousands of flows. A new object (a changed port, a full
reload) simply misses. The cache keeps the object alive, so its id cannot
be reused while the entry exists.

Callers must not mutate what a memoized function returns (extend a list of
your own with it: `out += port_security(p)`).
"""
from __future__ import annotations

import functools

# Then start over: entries of replaced objects are never looked up again, and
# a full reload replaces every object anyway (~2 KB of flows an entry).
MAX_ENTRIES = 50_000


def per_object(fn):
    cache: dict = {}

    @functools.wraps(fn)
    def wrapper(obj, *rest):
        key = (id(obj),) + rest
        hit = cache.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        return _remember(cache, key, obj, fn(obj, *rest))

    wrapper.cache_clear = cache.clear
    return wrapper


def latest_per(slot):
    """Memoize only the latest result per slot, `slot(*args)` (e.g. one per
    node and network): a call with arguments equal to the last one's returns
    the very same object. For per-network pieces whose arguments change
    often (a flood flow lists every port): one entry per slot, however many
    versions there were.

    @latest_per(lambda node, net, vlan, ofports: (node.id, net.id))
    def install_flood(node, net, vlan, ofports): ...
    """
    def decorate(fn):
        cache: dict = {}

        @functools.wraps(fn)
        def wrapper(*args):
            key = slot(*args)
            hit = cache.get(key)
            if hit is not None and hit[0] == args:
                return hit[1]
            return _remember(cache, key, args, fn(*args))

        wrapper.cache_clear = cache.clear
        return wrapper
    return decorate


def _remember(cache: dict, key, tag, out):
    """Keep (tag, out) under key (starting over when the cache is full); -> out."""
    if len(cache) >= MAX_ENTRIES:
        cache.clear()
    cache[key] = (tag, out)
    return out
