"""All flow compilers of a node, in one list. Add a concern by appending its
`(world, node) -> list[Flow | Meter]` function to COMPILERS."""
from __future__ import annotations

import itertools
import logging
import operator
from collections import Counter
from dataclasses import dataclass

from controller.flows.arp_responder import compile_arp_responder
from controller.flows.br_phys import compile_br_phys
from controller.flows.br_tun import compile_br_tun
from controller.flows.dhcp import compile_dhcp
from controller.flows.flow import Flow, Meter
from controller.flows.l2 import compile_l2
from controller.flows.l3 import compile_l3
from controller.flows.metadata import compile_metadata
from controller.flows.nat import compile_nat
from controller.flows.pipeline import compile_pipeline
from controller.flows.security_groups import compile_security_groups
from controller.model.world import NodeInfo, World

LOG = logging.getLogger(__name__)

# A compiler's changed middle longer than this is counted again whole (C
# speed) rather than object by object.
BIG_MIDDLE = 200

COMPILERS = [
    compile_pipeline,
    compile_l2,
    compile_arp_responder,
    compile_dhcp,
    compile_br_tun,
    compile_br_phys,
    compile_l3,
    compile_nat,
    compile_metadata,
    compile_security_groups,
]


@dataclass
class Compiled:
    flows: list[Flow]
    meters: list[Meter]
    complete: bool = True     # False: a compiler failed; do not delete anything this round


def compile_node(world: World, node: NodeInfo, compilers=None) -> Compiled:
    """Desired flows and meters of one node. Two flows with the same key
    (bridge, table, priority, match) are a compiler bug: the first one wins
    and the clash is logged. A compiler that raises is logged and marks the
    result incomplete, so the reconciler adds and modifies but deletes nothing
    (a bug must not wipe a switch)."""
    complete = True
    flows: dict[tuple, Flow] = {}
    meters: dict[tuple, Meter] = {}
    for fn in compilers or COMPILERS:
        try:
            items = fn(world, node)
        except Exception:
            LOG.exception("flow compiler %s failed for node %s", fn.__name__, node.hostname)
            complete = False
            continue
        for it in items:
            if isinstance(it, Meter):
                meters.setdefault((it.bridge, it.meter_id), it)
            elif it.key in flows:
                if flows[it.key] != it:
                    LOG.warning("flow key clash, keeping the first: %s / %s", flows[it.key], it)
            else:
                flows[it.key] = it
    return Compiled(list(flows.values()), list(meters.values()), complete)


class NodeCompiler:
    """Compiles one node round after round and says which flow keys changed
    since the last round, so the reconciler diffs O(change) instead of
    O(flows on the node).

    Changes are found by object identity: memoized compiler pieces
    (controller/flows/memo.py) hand back the very same Flow objects for
    unchanged ports, so "same object as last round" means "same flow". A
    compiler without memoization still works: its fresh objects count as
    removed-and-added, and the reconciler compares them with the switch by
    value (equal ones cost no flow_mod). The previous round's lists are kept
    here, so their ids stay unique while compared.

    Each compiler's list is compared with its own list of the last round:
    the common head and tail (same objects in the same places: compilers
    emit in a stable order, e.g. ports by ofport) are skipped at C speed,
    only the objects in between are looked at. A port add thus touches the
    new port's flows and the aggregates that really changed (the flood
    flow), not the 5,000 flows of the node. Occurrences are counted per list
    and lists per object, so an object shared by two compilers (or twice in
    one) goes only when the last one drops it.

    Anything unusual - a key clash between two objects, a compiler raising -
    falls back to compile_node's full semantics (first flow of a key wins;
    an incomplete result deletes nothing) and reports `changed=None`: diff
    everything this round.
    """

    def __init__(self, compilers=None):
        self.compilers = compilers
        self.generation = 0                    # bumped every update; switches remember theirs
        self.desired: dict[tuple, Flow] = {}   # key -> Flow, the whole node
        self.meters: dict[tuple, Meter] = {}   # (bridge, meter_id) -> Meter
        self._lists: list[list] = []           # each compiler's items of the last round
        self._occurrences: list[Counter] = []  # per list: id -> how often it is in it
        self._in_lists: dict[int, int] = {}    # id -> in how many of _lists it is
        self._valid = False                    # desired/_lists match the last round
        self._clashed: set = set()             # keys more than one item wants
        self.full_rebuilds = 0

    def update(self, world: World, node: NodeInfo) -> tuple[Compiled, set | None]:
        """-> (the node's flows and meters, keys changed since the previous
        update or None when everything must be compared)."""
        self.generation += 1
        lists, complete = [], True
        for fn in self.compilers or COMPILERS:
            try:
                lists.append(fn(world, node))
            except Exception:
                LOG.exception("flow compiler %s failed for node %s", fn.__name__, node.hostname)
                complete = False
                lists.append([])
        changed = None
        if complete and self._valid and len(lists) == len(self._lists):
            moved = self._moved(lists)
            changed = None if moved is None else self._apply(*moved)
        if changed is None:
            self._rebuild(lists)
            self.full_rebuilds += 1
        self._lists = lists
        self._valid = complete
        return Compiled(list(self.desired.values()), list(self.meters.values()), complete), changed

    def _moved(self, lists: list[list]) -> tuple[list, list] | None:
        """Objects no longer in any list / new in all of them, from each
        compiler's changed middle; keeps the occurrence counts up to date.
        None when a middle holds a clashing key: which object comes first
        may have changed (rebuild)."""
        in_lists = self._in_lists
        gone, new = {}, {}
        for k, (old, cur) in enumerate(zip(self._lists, lists)):
            if old is cur:
                continue
            a, b = _changed_middle(old, cur)
            if not (a or b):
                continue
            if self._clashed and any(_key(x) in self._clashed for x in itertools.chain(a, b)):
                return None
            occ = self._occurrences[k]
            ia, ib = dict(zip(map(id, a), a)), dict(zip(map(id, b), b))
            if len(a) + len(b) > BIG_MIDDLE:     # count again at C speed
                fresh = Counter(map(id, cur))
                left, joined = ia.keys() - fresh.keys(), ib.keys() - occ.keys()
                self._occurrences[k] = fresh
            else:
                left, joined = [], []
                for i in map(id, a):
                    n = occ[i] - 1
                    if n:
                        occ[i] = n
                    else:
                        del occ[i]
                        left.append(i)
                for i in map(id, b):
                    n = occ.get(i, 0)
                    occ[i] = n + 1
                    if not n:
                        joined.append(i)
            for i in left:
                n = in_lists[i] - 1
                if n:
                    in_lists[i] = n
                else:
                    del in_lists[i]
                    gone[i] = ia[i]
            for i in joined:
                n = in_lists.get(i, 0)
                in_lists[i] = n + 1
                if not n:
                    new[i] = ib[i]
        # An object that left one list and joined another is neither.
        both = gone.keys() & new.keys()
        return ([x for i, x in gone.items() if i not in both],
                [x for i, x in new.items() if i not in both])

    def _apply(self, removed: list, added: list) -> set | None:
        changed: set = set()
        desired, meters = self.desired, self.meters
        for x in removed:
            if isinstance(x, Meter):
                mk = (x.bridge, x.meter_id)
                if meters.get(mk) is not x or mk in self._clashed:
                    return None                # another meter may now win this id
                del meters[mk]
                continue
            k = x.key
            if desired.get(k) is not x or k in self._clashed:
                return None                    # another item may now win this key
            del desired[k]
            changed.add(k)
        for x in added:
            if isinstance(x, Meter):
                if (x.bridge, x.meter_id) in meters:
                    return None
                meters[(x.bridge, x.meter_id)] = x
                continue
            k = x.key
            if k in desired:
                return None                    # two flows, one key: the first one wins
            desired[k] = x
            changed.add(k)
        return changed

    def _rebuild(self, lists) -> None:
        """compile_node's semantics, from scratch."""
        flows: dict[tuple, Flow] = {}
        meters: dict[tuple, Meter] = {}
        clashed: set = set()
        for items in lists:
            for it in items:
                if isinstance(it, Meter):
                    if meters.setdefault((it.bridge, it.meter_id), it) is not it:
                        clashed.add((it.bridge, it.meter_id))
                elif it.key in flows:
                    if flows[it.key] is not it:
                        clashed.add(it.key)
                    if flows[it.key] != it:
                        LOG.warning("flow key clash, keeping the first: %s / %s", flows[it.key], it)
                else:
                    flows[it.key] = it
        self.desired, self.meters, self._clashed = flows, meters, clashed
        self._occurrences = [Counter(map(id, items)) for items in lists]
        self._in_lists = dict(Counter(itertools.chain.from_iterable(self._occurrences)))


def _key(x) -> tuple:
    return (x.bridge, x.meter_id) if isinstance(x, Meter) else x.key


def _changed_middle(old: list, new: list) -> tuple[list, list]:
    """The parts of `old` and `new` between their common head and tail (the
    same objects at the same places from either end)."""
    n = min(len(old), len(new))
    # The first place where they differ, from the front, then from the back
    # (lazy, C speed: stops at the first difference).
    head = next(itertools.compress(itertools.count(), map(operator.is_not, old, new)), n)
    rest = n - head
    tail = next(itertools.compress(itertools.count(), map(operator.is_not, reversed(old), reversed(new))),
                rest)
    tail = min(tail, rest)
    return old[head:len(old) - tail], new[head:len(new) - tail]
