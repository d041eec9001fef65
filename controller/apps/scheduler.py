"""The scheduler: when to reconcile, and which nodes.

One worker thread runs rounds. A round takes the changes collected since the
last one (the change bus, the change log of other processes, a switch that
connected), brings the World snapshot up to date, recompiles the affected
nodes (controller/flows/plan.py affected_nodes), plans each of their switches
(plan_switch), has the switch session send and confirm the difference, then
hands the confirmed nodes to the port-status writer.

Port-up latency (a port change is the common case) is kept O(change), not
O(ports): the World snapshot is cached and a port change re-reads only its
ports (snapshot.refresh_ports, a lock-free read; a write transaction only
when a local VLAN or metadata index must be allocated); each node has a
NodeCompiler that reports the flow keys that changed (memoized per-port
pieces, identity diff), and only those keys are compared with the switch's
flows. Other kinds of change, a (re)connected switch, a failure or a
compiler clash take the full path (whole reload, whole diff), as does a
periodic check that the cache still equals the database.

Held changes: while no switch is connected, changes are held (not even the
World is updated) until the round a switch connects; beyond MAX_DEFERRED of
them, one full reload instead.
"""
from __future__ import annotations

import gc
import logging
import threading
import time

from sqlalchemy import func, select

from controller.apps.port_status import PortStatusWriter
from controller.apps.switch_session import WRITE_GATE, Push, SwitchSession, SwitchState
from controller.db import models as m
from controller.events import Change
from controller.flows.compiler import NodeCompiler
from controller.flows.plan import affected_nodes, plan_switch
from controller.model.snapshot import allocate_stored, allocation_needed, load_world, refresh_ports
from controller.model.world import World

LOG = logging.getLogger(__name__)

DEBOUNCE_S = 0.01          # coalesce bursts of changes into one round (not for port changes alone)
INCREMENTAL_KINDS = {"port"}   # changes the cached World absorbs without a full reload
MAX_DEFERRED = 2000            # changes held while no switch is connected, beyond: full reload
VERIFY_WORLD_S = 60.0      # when idle, compare the cached World with a full reload this often
CHANGELOG_POLL_S = 1.0     # follow the DB change log (writes by other processes)
# Full garbage collections (automatic ones are off, controller/main.py
# tune_garbage_collection): one when idle at most this often, and between
# rounds at the latest every FULL_GC_MAX_S, so cyclic garbage stays bounded.
FULL_GC_IDLE_S = 30.0
FULL_GC_MAX_S = 300.0


class Scheduler:
    def __init__(self, rt, session: SwitchSession):
        self.rt, self.session = rt, session
        self.status = PortStatusWriter(rt.db, rt.bus)
        self.rounds = 0
        self.last_round_s = 0.0
        self.last_busy_round: dict | None = None   # the last round that sent flow_mods (or read back)
        self.round_seconds_total = 0.0             # sum of round durations (metrics)
        self.full_loads = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stopping = False
        self._dirty_changes: list[Change] = []
        self._dirty_all = True
        self._reread: set[int] = set()         # dpids to read back before the next round
        self._changelog_due = False            # another process committed (controller/ha/notify.py)
        self._changelog_read_at = time.monotonic()
        self._world: World | None = None
        self._world_loaded_at = 0.0            # monotonic time of the last full reload
        self._verify_world = False
        self._compilers: dict[str, NodeCompiler] = {}   # node id -> its incremental compiler
        self._last_full_gc = time.monotonic()
        self._changelog_rev = self._latest_revision()
        self._thread = threading.Thread(target=self._worker, name="reconciler", daemon=True)

    def start(self) -> None:
        self.rt.bus.subscribe(self.on_changes)
        self._thread.start()

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self.rt.bus.unsubscribe(self.on_changes)

    def wake(self) -> None:
        """Run a round soon (a switch connected: its node is looked at in the
        next round, as its installed flows are unknown)."""
        self._idle.clear()
        self._wake.set()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once no work is pending (for benchmarks and in-process tests)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self._idle.wait(0.05) and not self._wake.is_set():
                return True
        return False

    # --- sources of changes ------------------------------------------------------

    def on_changes(self, changes: list[Change]) -> None:
        """The change bus (the publisher's thread: just mark dirty)."""
        if threading.current_thread() is self._thread:
            return        # our own port status updates: flows never depend on a port's status
        with self._lock:
            self._dirty_changes.extend(changes)
            if not self.session.switches and self._world is not None:
                # Held for the round a switch connects (which wakes us):
                # waking the worker here cost the API a thread switch per write.
                self._bound_held()
                return
        self.wake()

    def _hold(self, changes: list[Change]) -> None:
        """Put a round's changes back for the round a switch connects."""
        with self._lock:
            self._dirty_changes[:0] = changes
            self._bound_held()

    def _bound_held(self) -> None:
        """Beyond MAX_DEFERRED held changes, one full reload instead (lock held)."""
        if len(self._dirty_changes) > MAX_DEFERRED:
            self._dirty_changes, self._dirty_all = [], True

    def resync_all(self) -> None:
        """Reload and compare everything in the next round."""
        with self._lock:
            self._dirty_all = True
        self.wake()

    def changelog_changed(self) -> None:
        """Another process committed changes: read the change log now rather
        than at the next idle poll (any thread)."""
        self._changelog_due = True
        self.wake()

    def reread(self, dpids) -> None:
        """Read these switches back and compare them whole in the next round:
        this controller just became their master (controller/ha), and another
        one may have changed them since we last looked."""
        with self._lock:
            self._reread |= set(dpids)
        self.wake()

    def _latest_revision(self) -> int:
        try:
            with self.rt.db.read() as s:
                return s.scalar(select(func.max(m.ChangeLog.revision))) or 0
        except Exception:
            LOG.exception("cannot read the change log")
            return 0

    def _follow_changelog(self) -> None:
        """Changes committed by other processes (API workers, tools) reach us
        through the change log; ours come through the bus as well, and a
        duplicate only costs an empty diff."""
        self._changelog_due = False
        self._changelog_read_at = time.monotonic()
        try:
            with self.rt.db.read() as s:
                rows = s.execute(select(m.ChangeLog.revision, m.ChangeLog.kind, m.ChangeLog.resource_id)
                                 .where(m.ChangeLog.revision > self._changelog_rev)
                                 .order_by(m.ChangeLog.revision).limit(10000)).all()
        except Exception:
            LOG.exception("cannot read the change log")
            return
        if rows:
            self._changelog_rev = rows[-1][0]
            own = self.status.own_revisions
            changes = [Change(kind, rid) for rev, kind, rid in rows if rev not in own]
            self.status.forget_revisions_through(self._changelog_rev)
            if changes:
                with self._lock:
                    self._dirty_changes.extend(changes)
                self.wake()
                # The process's other parts learn them too (DHCP facts cache,
                # OVSDB monitor's node list, L3 ARP): a write on another
                # controller is served here as promptly as a local one. Our
                # own on_changes ignores this thread.
                self.rt.bus.publish(changes)

    # --- the worker ------------------------------------------------------------

    def _worker(self):
        while not self._stopping:
            self._idle.set()
            if not self._wake.wait(CHANGELOG_POLL_S):
                self._follow_changelog()
                self._collect_garbage(FULL_GC_IDLE_S)
                if (self._world is not None and not self._wake.is_set()
                        and time.monotonic() - self._world_loaded_at > VERIFY_WORLD_S):
                    self._verify_world = True
                    self._wake.set()
                continue
            if self._stopping:
                return
            # Told so, or busy for a poll interval: a stream of local changes
            # must not keep other processes' changes waiting.
            if self._changelog_due or time.monotonic() - self._changelog_read_at >= CHANGELOG_POLL_S:
                self._follow_changelog()
            with self._lock:
                ports_only = not self._dirty_all and all(c.kind in INCREMENTAL_KINDS
                                                         for c in self._dirty_changes)
            if not ports_only:
                time.sleep(DEBOUNCE_S)   # a port change goes at once: it is cheap now
            self._wake.clear()
            with self._lock:
                changes, self._dirty_changes = self._dirty_changes, []
                everything, self._dirty_all = self._dirty_all, False
            try:
                self._round(changes, everything)
            except Exception:
                LOG.exception("reconcile round failed; retrying everything shortly")
                time.sleep(0.5)
                self.resync_all()
            self._collect_garbage(FULL_GC_MAX_S)

    def _collect_garbage(self, every_s: float) -> None:
        """A full collection if the last one is `every_s` old (see FULL_GC_IDLE_S)."""
        if time.monotonic() - self._last_full_gc >= every_s:
            t = time.perf_counter()
            gc.collect()
            self._last_full_gc = time.monotonic()
            LOG.debug("full garbage collection in %.3fs", time.perf_counter() - t)

    def _round(self, changes: list[Change], everything: bool) -> None:
        t0, cpu0 = time.time(), time.thread_time()    # wall and this thread's CPU (load-proof)
        phases = {}
        switches = self.session.switch_list()
        with self._lock:
            reread, self._reread = self._reread, set()
        for sw in switches:
            if sw.dpid in reread:
                sw.installed = sw.synced = None
        if not switches and not everything and self._world is not None:
            # Nothing to program: the World is brought up to date in the round
            # a switch connects, not after every API write (each cost several
            # ms of GIL, O(ports), taken from the API threads).
            self._hold(changes)
            return
        # Switches dump their flows while we load the snapshot.
        self.session.ask_read_back([sw for sw in switches
                                    if sw.installed is None and WRITE_GATE.may_write(sw.dpid)])
        old = self._world
        world, full = self._load(changes, everything)
        phases["load_world"] = time.time() - t0
        if full and old is not None and not everything and not changes:
            # The periodic check: nothing was announced; anything that differs was missed.
            if world == old:
                world = old            # keep the objects: memoized pieces stay valid
            else:
                LOG.warning("the cached snapshot differed from the database; recomputing every node")
                everything = True
        self._world = world
        by_node = self._map_switches(world)
        nodes = set(world.nodes) if everything or old is None else affected_nodes(old, world, changes)
        # Switches that (re)connected are always looked at.
        reconnected = {sw.node_id for sws in by_node.values() for sw in sws if sw.installed is None}
        nodes |= reconnected
        nodes &= set(by_node)
        for gone in self._compilers.keys() - world.nodes.keys():
            del self._compilers[gone]
        # Port status: every port after a full load, else the ports this round is about.
        candidates = None if full else ({c.id for c in changes if c.kind == "port"}
                                        | self.status.pending
                                        | {p.id for n in reconnected for p in world.ports_on(n)})
        if not nodes:
            if candidates is not None:
                self.status.pending = candidates
            return
        t = time.time()
        reread = [sw for n in nodes for sw in by_node[n] if sw.installed is None]
        self.session.read_back(reread)
        phases["read_back"] = time.time() - t
        t, cpu = time.time(), time.thread_time()
        jobs, complete = [], {}
        for node_id in sorted(nodes):
            nc = self._compilers.get(node_id)
            if nc is None:
                nc = self._compilers[node_id] = NodeCompiler()
            before = nc.generation
            compiled, changed = nc.update(world, world.nodes[node_id])
            complete[node_id] = compiled.complete
            for sw in by_node[node_id]:
                if sw.installed is None:
                    continue       # read-back failed; it comes again on reconnect
                # The changed keys are enough only if the switch matched the previous generation.
                in_step = changed is not None and sw.synced is not None and \
                    sw.synced[0] is nc and sw.synced[1] == before
                jobs.append(push_for(sw, nc, compiled.complete, changed if in_step else None))
        phases["compile"] = time.time() - t
        phases["compile_cpu"] = time.thread_time() - cpu
        t = time.time()
        sent_before = self.session.flow_mods_sent
        ok = self.session.push(jobs)
        phases["push"] = time.time() - t
        t = time.time()
        confirmed = {n for n in nodes if complete[n]
                     and all(ok.get(sw.dpid) for sw in by_node[n])
                     and "br-int" in {sw.bridge for sw in by_node[n]}}
        self.status.update(world, confirmed, candidates)
        phases["port_status"] = time.time() - t
        phases["cpu"] = time.thread_time() - cpu0
        self.rounds += 1
        self.last_round_s = time.time() - t0
        self.round_seconds_total += self.last_round_s
        sent = self.session.flow_mods_sent - sent_before
        if sent or reread:
            # Kept apart from last_round_s, which the next (often empty) round overwrites.
            self.last_busy_round = {"at": t0, "seconds": self.last_round_s, "flow_mods": sent,
                                    "nodes": len(nodes), "switches": len(jobs),
                                    "read_back": len(reread), "full_load": full,
                                    "phases": {k: round(v, 4) for k, v in phases.items()}}
        LOG.info("round: nodes=%d switches=%d flow_mods=%d total=%d in %.3fs (%s%s)", len(nodes),
                 len(jobs), sent, self.session.flow_mods_sent, self.last_round_s,
                 "full " if full else "", " ".join(f"{k}={v:.3f}" for k, v in phases.items()))

    def _load(self, changes: list[Change], everything: bool) -> tuple[World, bool]:
        """The World for this round -> (world, whether it was reloaded whole).
        Port changes refresh the cached World (those ports' rows only); any
        other kind, a resync or the periodic check reloads it whole. Reads
        take no lock; a write transaction only when something must be
        allocated (local VLANs, metadata indexes)."""
        verify, self._verify_world = self._verify_world, False
        ports = {c.id for c in changes if c.kind in INCREMENTAL_KINDS}
        full = (everything or verify or self._world is None
                or any(c.kind not in INCREMENTAL_KINDS for c in changes))
        with self.rt.db.read() as s:
            if full:
                world = load_world(s, allocate=False)
            else:
                world = refresh_ports(s, self._world, ports)
        if full:
            self._world_loaded_at = time.monotonic()
            self.full_loads += 1
        if allocation_needed(world, None if full else ports):
            world = allocate_stored(self.rt.db, world)
        return world, full

    def _map_switches(self, world: World) -> dict[str, list[SwitchState]]:
        """node id -> its connected switches, placed by the nodes' registered
        bridges (dpid -> node and bridge)."""
        where = {dpid: (n.id, br) for n in world.nodes.values() for br, dpid in n.bridges}
        by_node: dict[str, list[SwitchState]] = {}
        for sw in self.session.switch_list():
            loc = where.get(sw.dpid)
            if loc is None:
                if sw.node_id is not None or sw.reconciles == 0:
                    LOG.info("switch %016x belongs to no registered node (yet)", sw.dpid)
                sw.node_id = sw.bridge = None
                sw.reconciles = max(sw.reconciles, 1)
                continue
            if (sw.node_id, sw.bridge) != loc:
                sw.node_id, sw.bridge = loc
                sw.synced = None           # its flows were diffed as another bridge: all again
                LOG.info("switch %016x is %s of node %s", sw.dpid, sw.bridge,
                         world.nodes[sw.node_id].hostname)
            by_node.setdefault(sw.node_id, []).append(sw)
        # Only nodes whose switches we may all write (HA: we are their
        # master). A slave neither reads back nor plans; becoming master
        # brings the switches back through reread().
        gate = WRITE_GATE.may_write
        return {n: sws for n, sws in by_node.items() if all(gate(sw.dpid) for sw in sws)}


def push_for(sw: SwitchState, nc: NodeCompiler, complete: bool, keys: set | None = None) -> Push:
    """The Push of one switch of a node: planned from the node's compiler when
    sent. With `keys` (the keys its NodeCompiler changed since the generation
    the switch matched) only those are compared; without, all of the bridge's
    flows. Once confirmed, `installed` matches the compiler's generation
    (an incomplete compile leaves stale flows: no generation then)."""
    synced_to = (nc, nc.generation) if complete else None
    return Push(sw, synced_to, lambda: plan_switch(sw.bridge, nc.desired, nc.meters, sw.installed,
                                                   sw.meters, complete, keys))
