"""One controller's mastership: which nodes it programs now, driven by
`tick()` every `[ha] renew_interval` (controller/ha/app.py runs it).

Each tick reads the leases (controller/ha/leases.py); every `duration / 3`
it also heartbeats and renews what it holds. Then, with the placement of
the warm controllers (controller/ha/placement.py):
  - a node placed on us whose lease is free or expired: acquire it;
  - a node we hold that is placed on another live controller: hand it over
    (the listener hears `lost` first, then the lease is released);
  - a node whose lease stayed expired for a further lease duration (its
    placed controller does not take it, e.g. not connected to it): anyone
    connected takes it.
A controller is warm `join_delay` seconds after its first heartbeat, so its
switches have connected before nodes are handed to it. Likewise a node whose
switches reached us only just now (a new node, or every node at a cold
start) is taken only once every warm controller reaches it or `join_delay`
has passed: it then goes straight to its placed controller, instead of to
whichever its switches reached first and on by a hand-over a moment later.
A node we have reached for longer (a failover) is taken at once.

`generation(node)` is the gate: the role generation while we may write to
the node's switches, else None. It turns None by itself when the lease's
local deadline passes (a paused process that wakes up never trusts an old
lease), before the database's expiry: the deadline counts from the
monotonic time read before the renewing transaction.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable, Protocol

from controller.ha import placement
from controller.ha.leases import LeaseStore, View

LOG = logging.getLogger(__name__)


class Listener(Protocol):
    def gained(self, node_id: str, generation: int) -> None: ...
    def lost(self, node_id: str) -> None: ...


class _NoListener:
    def gained(self, node_id, generation):
        pass

    def lost(self, node_id):
        pass


class Mastership:
    def __init__(self, store: LeaseStore, *, join_delay: float = 2.0,
                 listener: Listener | None = None, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.me = store.me
        self.duration = store.duration
        self.join_delay = join_delay
        self.listener = listener or _NoListener()
        self.clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}            # node -> generation
        self._valid_until: dict[str, float] = {}   # node -> local monotonic deadline
        self._last_write = float("-inf")
        self._handed_over: dict[str, float] = {}   # node -> when (no orphan take-back for a while)
        self._reached_since: dict[str, float] = {}  # node -> when its switches reached us
        self.view: View | None = None
        self.changes = 0                           # gained + lost (metrics)

    # --- the gate ----------------------------------------------------------------

    def generation(self, node_id: str) -> int | None:
        with self._lock:
            gen = self._held.get(node_id)
            if gen is not None and self.clock() < self._valid_until[node_id]:
                return gen
        return None

    def held(self) -> dict[str, int]:
        """node -> generation of the leases we may use now."""
        now = self.clock()
        with self._lock:
            return {n: g for n, g in self._held.items() if now < self._valid_until[n]}

    def lease_of(self, node_id: str):
        """The node's lease as last read (any holder), or None."""
        v = self.view
        return v.leases.get(node_id) if v else None

    # --- one step ----------------------------------------------------------------

    def tick(self, reachable: Iterable[str] | None = None) -> View | None:
        """Renew, detect losses, acquire and hand over. `reachable`: the nodes
        whose switches are connected to us (None: every node)."""
        t0 = self.clock()
        write = t0 - self._last_write >= self.duration / 3
        with self._lock:
            held = dict(self._held)
        try:
            view = self.store.beat(held, write, None if reachable is None else sorted(reachable))
        except Exception:
            LOG.exception("mastership: cannot reach the database; our leases run out on their own")
            self._expire_local()
            return None
        self.view = view
        if write:
            self._last_write = t0
        lost = [n for n, g in held.items() if view.renewed.get(n) != g or
                (not write and self._taken(view, n, g))]
        for n in lost:
            self._drop(n, "taken by another controller" if self._taken(view, n, held[n]) else "expired")
        if write:
            with self._lock:
                for n in view.renewed:
                    if n in self._held:
                        self._valid_until[n] = t0 + self.duration
        self._expire_local()
        if reachable is not None:
            reachable = set(reachable)
            self._reached_since = {n: self._reached_since.get(n, t0) for n in reachable}
        self._place(view, reachable)
        return view

    def _taken(self, view: View, node_id: str, gen: int) -> bool:
        lease = view.leases.get(node_id)
        return lease is None or lease.holder != self.me or lease.generation != gen

    def _expire_local(self) -> None:
        now = self.clock()
        with self._lock:
            late = [n for n in self._held if now >= self._valid_until[n]]
        for n in late:
            self._drop(n, "not renewed in time")

    def _drop(self, node_id: str, why: str) -> None:
        with self._lock:
            if self._held.pop(node_id, None) is None:
                return
            self._valid_until.pop(node_id, None)
            self.changes += 1
        LOG.warning("mastership of node %s lost: %s", node_id, why)
        self.listener.lost(node_id)

    def _place(self, view: View, reachable: set[str] | None) -> None:
        live = view.controllers
        warm = [c for c, started in live.items() if started <= view.now - self.join_delay]
        if not warm:
            warm = list(live)          # a cold start: everyone is new
        plan = placement.assign(view.nodes, warm, view.reach)
        now_local = self.clock()
        for node_id in sorted(view.nodes):
            want = plan.get(node_id)
            gen = self.generation(node_id)
            if gen is not None:
                if want is not None and want != self.me and want in live:
                    self._hand_over(node_id, gen, want)
                continue
            if reachable is not None and node_id not in reachable:
                continue
            lease = view.leases.get(node_id)
            if lease is not None and not lease.free(view.now):
                if lease.holder != self.me:
                    continue
                # Ours in the database but no longer trusted here (a pause):
                # taken again below with a new generation once it expires.
                continue
            orphan = lease is not None and lease.holder is not None and \
                lease.expires_at <= view.now - self.duration
            recently_given = now_local - self._handed_over.get(node_id, float("-inf")) < 10 * self.duration
            if (want == self.me or want is None or (orphan and not recently_given)) \
                    and (reachable is None or self._settled(node_id, view, warm)):
                self._acquire(node_id)

    def _settled(self, node_id: str, view: View, warm: list[str]) -> bool:
        """Whether a node whose lease is free may be placed now: every warm
        controller reaches it, or it has reached us for `join_delay`."""
        if all(node_id in view.reach.get(c, ()) for c in warm if c != self.me):
            return True
        return self.clock() - self._reached_since.get(node_id, self.clock()) >= self.join_delay

    def _acquire(self, node_id: str) -> None:
        t0 = self.clock()
        try:
            lease = self.store.acquire(node_id)
        except Exception:
            LOG.exception("mastership: acquiring node %s failed", node_id)
            return
        if lease is None:
            return
        with self._lock:
            self._held[node_id] = lease.generation
            self._valid_until[node_id] = t0 + self.duration
            self.changes += 1
        self._handed_over.pop(node_id, None)
        LOG.info("mastership of node %s gained (generation %d)", node_id, lease.generation)
        self.listener.gained(node_id, lease.generation)

    def _hand_over(self, node_id: str, gen: int, to: str) -> None:
        self._drop(node_id, f"handed over to {to}")        # the gate closes first
        self._handed_over[node_id] = self.clock()
        try:
            self.store.release(node_id, gen)
        except Exception:
            LOG.exception("mastership: releasing node %s failed (it expires instead)", node_id)

    def stop(self) -> None:
        """Leave the cluster: gates closed, then every lease released."""
        with self._lock:
            nodes = list(self._held)
        for n in nodes:
            self._drop(n, "controller stopping")
        try:
            self.store.leave()
        except Exception:
            LOG.exception("mastership: could not release our leases (they expire instead)")
