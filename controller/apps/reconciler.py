"""The one component that talks OpenFlow to the switches.

For every node it computes the desired flows (controller/flows/compiler.py on a
World snapshot), compares them with what each of the node's switches has,
and sends only the difference, then a barrier. Restart, reconnect, resync and
ordinary updates are one code path:

  connect     -> read the switch's flows back (multipart flow stats) -> diff -> repair
  DB change   -> recompute the affected nodes only -> diff -> send
  nothing new -> zero flow_mods

Port-up latency (a port change is the common case) is kept O(change), not
O(ports): the World snapshot is cached and a port change re-reads only its
ports (snapshot.refresh_ports, a lock-free read; a write transaction only
when a local VLAN or metadata index must be allocated); each node has a
NodeCompiler that reports the flow keys that changed (memoized per-port
pieces, identity diff), and only those keys are compared with the switch's
flows. Other kinds of change, a (re)connected switch, a failure or a
compiler clash take the full path (whole reload, whole diff), as does a
periodic check that the cache still equals the database.

Rules: flows are never wiped; only flows whose cookie kind is ours are ever
deleted; a compiler that fails makes the round add/modify only. Many changes
go in one ONF bundle (OF1.3 extension): open, adds, barrier, check errors,
commit (shared/LAB.md 10). After the barrier that confirms a node's flows, its
bound ports become ACTIVE (and unbound ones DOWN) and the change is published.

Threads: os-ken handlers (the app's event thread) only record replies and wake
the worker; the worker thread does the DB reads, compiling and sending, and
waits on replies with threading.Event (hub.Event ignores timeouts, LAB.md P4).
"""
from __future__ import annotations

import functools
import gc
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from sqlalchemy import bindparam, func, select, update

from controller.apps.guard import guarded
from controller.db import models as m
from controller.events import Change
from controller.flows import cookies, ofcodec, ofwire
from controller.flows.compiler import NodeCompiler
from controller.flows.flow import Flow, Meter
from controller.flows.snapshot import allocate, allocation_needed, load_world, read_session, refresh_ports
from controller.flows.world import World
from controller.runtime import Runtime

LOG = logging.getLogger(__name__)

# Flow-stats replies stay bytes until decoded by ofwire (os-ken's object
# parsing of a 10k-flow dump cost seconds); see controller/flows/ofwire.py.
ofwire.install_raw_flow_stats()

DEBOUNCE_S = 0.01          # coalesce bursts of changes into one round (not for port changes alone)
INCREMENTAL_KINDS = {"port"}   # changes the cached World absorbs without a full reload
MAX_DEFERRED = 2000            # changes held while no switch is connected, beyond: full reload
VERIFY_WORLD_S = 60.0      # when idle, compare the cached World with a full reload this often
# Python's full (generation 2) garbage collections paused the whole process
# for 60-400 ms at a few hundred ports (the World, memoized flows, SQLAlchemy),
# at random points of the port-up path. The automatic ones are turned off for
# the process; the worker runs one when idle (FULL_GC_IDLE_S at most this
# often), and between rounds at the latest every FULL_GC_MAX_S, so cyclic
# garbage stays bounded. Generations 0 and 1 are left as they are.
FULL_GC_IDLE_S = 30.0
FULL_GC_MAX_S = 300.0
CHANGELOG_POLL_S = 1.0     # follow the DB change log (writes by other processes)
REPLY_TIMEOUT_S = 30.0     # multipart / barrier replies
BUNDLE_MIN = 32            # at least this many flow_mods: send them in one bundle
SEND_CHUNK = 1000          # messages per socket write (~150 KB of flow_mods)
ALL_NODES = "*"
QUERY_TIMEOUT_S = 5.0      # read-only queries from the console / metrics
QUERY_XID_BASE = 0xF0000000   # their xids: never mistaken for the worker's flow_mods


@dataclass
class SwitchState:
    dp: object
    dpid: int
    address: str
    connected_since: float = field(default_factory=time.time)
    node_id: str | None = None
    bridge: str | None = None
    installed: dict | None = None          # key -> Flow (ours only); None: read it back first
    meters: dict | None = None             # meter_id -> Meter
    foreign_flows: int = 0
    flow_mods_sent: int = 0
    last_reconcile_s: float = 0.0          # the last push that changed something: send -> barrier
    last_flow_mods: int = 0                # flow_mods of that push
    resync_s: float | None = None          # connect -> read back, compared, repaired, confirmed
    resync_flow_mods: int | None = None    # flow_mods that first round after connect sent
    reconciles: int = 0
    errors: int = 0
    synced: tuple | None = None            # (NodeCompiler, generation) `installed` matches
    bundle_id: int = 0
    readback: tuple | None = None          # (flows, meters) dump requests in flight

    def as_dict(self) -> dict:
        return {"dpid": f"{self.dpid:016x}", "address": str(self.address), "node_id": self.node_id,
                "bridge": self.bridge, "installed_flows": len(self.installed or {}),
                "foreign_flows": self.foreign_flows, "meters": len(self.meters or {}),
                "flow_mods_sent": self.flow_mods_sent, "last_reconcile_s": self.last_reconcile_s,
                "last_flow_mods": self.last_flow_mods, "resync_s": self.resync_s,
                "resync_flow_mods": self.resync_flow_mods,
                "reconciles": self.reconciles, "errors": self.errors,
                "connected_since": self.connected_since}


class _Reply:
    """What the worker waits for: a barrier, a multipart dump, a bundle reply."""

    def __init__(self):
        self.done = threading.Event()
        self.parts: list = []
        self.errors: list = []


class Reconciler(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rt = Runtime.current()
        self.switches: dict[int, SwitchState] = {}
        self.flow_mods_sent = 0            # total, all switches (read by tests and benchmarks)
        self.rounds = 0
        self.last_round_s = 0.0
        self.last_busy_round: dict | None = None   # the last round that sent flow_mods (or read back)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._dirty_changes: list[Change] = []
        self._dirty_all = True
        self._replies: dict[tuple[int, int], _Reply] = {}
        self._errors_by_dp: dict[int, list] = {}
        self._world: World | None = None
        self._world_loaded_at = 0.0            # monotonic time of the last full reload
        self._verify_world = False
        self._compilers: dict[str, NodeCompiler] = {}   # node id -> its incremental compiler
        self._status_pending: set[str] = set()  # ports whose node was not confirmed yet
        self.full_loads = 0
        self._last_full_gc = time.monotonic()
        gen0, gen1, _ = gc.get_threshold()
        gc.set_threshold(gen0, gen1, 1_000_000)
        self._idle = threading.Event()
        self._stopping = False
        self._query_xids = itertools.count(QUERY_XID_BASE)
        self.round_seconds_total = 0.0             # sum of round durations (metrics)
        self._changelog_rev = self._latest_revision()
        self._own_revisions: set[int] = set()     # change-log rows of our own status updates
        self.rt.bus.subscribe(self._on_changes)
        self._thread = threading.Thread(target=self._worker, name="reconciler", daemon=True)
        self._thread.start()

    def close(self):
        self._stopping = True
        self._wake.set()
        self.rt.bus.unsubscribe(self._on_changes)

    # --- public: stats and waiting (console, metrics, tests) ----------------

    def stats(self) -> dict:
        with self._lock:
            sw = [s.as_dict() for s in self.switches.values()]
        return {"flow_mods_sent": self.flow_mods_sent, "rounds": self.rounds,
                "last_round_s": self.last_round_s, "last_busy_round": self.last_busy_round,
                "full_loads": self.full_loads,
                "switches": sw}

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once no work is pending (for benchmarks and in-process tests)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self._idle.wait(0.05) and not self._wake.is_set():
                return True
        return False

    # --- public: read-only switch queries (console, metrics) -----------------

    def switch_list(self) -> list[SwitchState]:
        """The connected switches (SwitchState objects: read them, never write)."""
        with self._lock:
            return list(self.switches.values())

    def query(self, make_request, dpids=None, timeout: float = QUERY_TIMEOUT_S) -> dict:
        """Send `make_request(datapath)` (a stats request or a role query,
        never a modification: only the worker changes switches) to every
        connected switch, or those in `dpids`, and wait for the replies.
        -> {dpid: list of reply bodies, or None when refused or timed out}.
        Uses the reconciler's own connections; xids from a range of their own."""
        sent = []
        for sw in self.switch_list():
            if dpids is not None and sw.dpid not in dpids:
                continue
            msg = make_request(sw.dp)
            msg.set_xid(next(self._query_xids) & 0xFFFFFFFF)
            r = _Reply()
            self._replies[(sw.dpid, msg.xid)] = r
            sw.dp.send_msg(msg)
            sent.append((sw.dpid, msg.xid, r))
        deadline = time.time() + timeout
        out = {}
        for dpid, xid, r in sent:
            ok = r.done.wait(max(0.0, deadline - time.time())) and not r.errors
            self._replies.pop((dpid, xid), None)
            out[dpid] = list(r.parts) if ok else None
        return out

    # --- change bus (publisher's thread: just mark dirty) --------------------

    def _on_changes(self, changes: list[Change]) -> None:
        if threading.current_thread() is self._thread:
            return        # our own port status updates: flows never depend on a port's status
        with self._lock:
            self._dirty_changes.extend(changes)
            if not self.switches and self._world is not None:
                # Held for the round a switch connects (_on_state wakes us):
                # waking the worker here cost the API a thread switch per write.
                self._bound_held()
                return
        self._idle.clear()
        self._wake.set()

    def _hold(self, changes: list[Change]) -> None:
        """Put a round's changes back for the round a switch connects."""
        with self._lock:
            self._dirty_changes[:0] = changes
            self._bound_held()

    def _bound_held(self) -> None:
        """Beyond MAX_DEFERRED held changes, one full reload instead (lock held)."""
        if len(self._dirty_changes) > MAX_DEFERRED:
            self._dirty_changes, self._dirty_all = [], True

    def _resync_all(self):
        with self._lock:
            self._dirty_all = True
        self._idle.clear()
        self._wake.set()

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
            own = self._own_revisions
            changes = [Change(kind, rid) for rev, kind, rid in rows if rev not in own]
            self._own_revisions = {r for r in own if r > self._changelog_rev}
            if changes:
                with self._lock:
                    self._dirty_changes.extend(changes)
                self._idle.clear()
                self._wake.set()

    # --- os-ken handlers (record and wake only) -------------------------------

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _on_features(self, ev):
        dp = ev.msg.datapath
        LOG.info("switch connected: dpid=%016x from %s", dp.id, dp.address)

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def _on_state(self, ev):
        dp = ev.datapath
        if dp.id is None:
            return
        if ev.state == MAIN_DISPATCHER:
            with self._lock:
                self.switches[dp.id] = SwitchState(dp=dp, dpid=dp.id, address=dp.address)
            # Its node is looked at in the next round (installed is None): no
            # need to recompile every node when one of 100 switches connects.
            self._idle.clear()
            self._wake.set()
        elif ev.state == DEAD_DISPATCHER:
            with self._lock:
                sw = self.switches.get(dp.id)
                if sw is not None and sw.dp is dp:
                    del self.switches[dp.id]
                # Nobody will answer what we are waiting for on this connection.
                for (dpid, _xid), r in list(self._replies.items()):
                    if dpid == dp.id:
                        r.errors.append("disconnected")
                        r.done.set()
            LOG.info("switch disconnected: dpid=%016x", dp.id)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def _on_flow_stats(self, ev):
        self._multipart(ev.msg)

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    @guarded
    def _on_meter_config(self, ev):
        self._multipart(ev.msg)

    def _multipart(self, msg):
        r = self._replies.get((msg.datapath.id, msg.xid))
        if r is None:
            return
        r.parts.extend(msg.body)
        if not msg.flags & ofp.OFPMPF_REPLY_MORE:
            r.done.set()

    @set_ev_cls(ofp_event.EventOFPTableStatsReply, MAIN_DISPATCHER)
    @guarded
    def _on_table_stats(self, ev):
        self._multipart(ev.msg)

    @set_ev_cls(ofp_event.EventOFPMeterStatsReply, MAIN_DISPATCHER)
    @guarded
    def _on_meter_stats(self, ev):
        self._multipart(ev.msg)

    @set_ev_cls(ofp_event.EventOFPRoleReply, MAIN_DISPATCHER)
    @guarded
    def _on_role_reply(self, ev):
        r = self._replies.get((ev.msg.datapath.id, ev.msg.xid))
        if r is not None:
            r.parts.append(ev.msg)
            r.done.set()

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @guarded
    def _on_barrier(self, ev):
        r = self._replies.get((ev.msg.datapath.id, ev.msg.xid))
        if r is not None:
            r.done.set()

    @set_ev_cls(ofp_event.EventONFBundleCtrlMsg, MAIN_DISPATCHER)
    @guarded
    def _on_bundle_reply(self, ev):
        r = self._replies.get((ev.msg.datapath.id, ev.msg.xid))
        if r is not None:
            r.done.set()

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def _on_error(self, ev):
        msg = ev.msg
        dpid = msg.datapath.id
        LOG.warning("switch %016x refused xid %s: type=%s code=%s", dpid or 0, msg.xid,
                    msg.type, msg.code)
        with self._lock:
            if msg.xid < QUERY_XID_BASE:      # a refused query is no flow_mod error
                self._errors_by_dp.setdefault(dpid, []).append(msg.xid)
            sw = self.switches.get(dpid)
            if sw is not None:
                sw.errors += 1
        r = self._replies.get((dpid, msg.xid))
        if r is not None:          # an error answers a request (e.g. a bad bundle commit)
            r.errors.append((msg.type, msg.code))
            r.done.set()

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
                self._resync_all()
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
        with self._lock:
            fresh = [sw for sw in self.switches.values() if sw.installed is None]
            no_switch = not self.switches
        if no_switch and not everything and self._world is not None:
            # Nothing to program: the World is brought up to date in the round
            # a switch connects, not after every API write (each cost several
            # ms of GIL, O(ports), taken from the API threads).
            self._hold(changes)
            return
        self._ask_read_back(fresh)       # switches dump their flows while we load the snapshot
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
                                        | self._status_pending
                                        | {p.id for n in reconnected for p in world.ports_on(n)})
        if not nodes:
            if candidates is not None:
                self._status_pending = candidates
            return
        t = time.time()
        reread = [sw for n in nodes for sw in by_node[n] if sw.installed is None]
        self._read_back(reread)
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
                jobs.append(_Job(sw, nc, compiled.complete, changed if in_step else None))
        phases["compile"] = time.time() - t
        phases["compile_cpu"] = time.thread_time() - cpu
        t = time.time()
        sent_before = self.flow_mods_sent
        ok = self._push(jobs)
        phases["push"] = time.time() - t
        t = time.time()
        confirmed = {n for n in nodes if complete[n]
                     and all(ok.get(sw.dpid) for sw in by_node[n])
                     and "br-int" in {sw.bridge for sw in by_node[n]}}
        self._update_port_status(world, confirmed, candidates)
        phases["port_status"] = time.time() - t
        phases["cpu"] = time.thread_time() - cpu0
        self.rounds += 1
        self.last_round_s = time.time() - t0
        self.round_seconds_total += self.last_round_s
        sent = self.flow_mods_sent - sent_before
        if sent or reread:
            # Kept apart from last_round_s, which the next (often empty) round overwrites.
            self.last_busy_round = {"at": t0, "seconds": self.last_round_s, "flow_mods": sent,
                                    "nodes": len(nodes), "switches": len(jobs),
                                    "read_back": len(reread), "full_load": full,
                                    "phases": {k: round(v, 4) for k, v in phases.items()}}
        LOG.info("round: nodes=%d switches=%d flow_mods=%d total=%d in %.3fs (%s%s)", len(nodes),
                 len(jobs), sent, self.flow_mods_sent, self.last_round_s,
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
        with read_session(self.rt.db) as s:
            if full:
                world = load_world(s, allocate=False)
            else:
                world = refresh_ports(s, self._world, ports)
        if full:
            self._world_loaded_at = time.monotonic()
            self.full_loads += 1
        if allocation_needed(world, None if full else ports):
            world = self.rt.db.run_in_transaction(allocate, world)
        return world, full

    def _map_switches(self, world: World) -> dict[str, list[SwitchState]]:
        """dpid -> (node, bridge) from the nodes' registered bridges."""
        where = {dpid: (n.id, br) for n in world.nodes.values() for br, dpid in n.bridges}
        by_node: dict[str, list[SwitchState]] = {}
        with self._lock:
            switches = list(self.switches.values())
        for sw in switches:
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
        return by_node

    # --- reading switches back -------------------------------------------------

    def _ask_read_back(self, switches: list[SwitchState]) -> None:
        """Send the flow and meter dump requests of switches that need a
        read-back, unless already asked: the switch dumps while we load the
        snapshot."""
        for sw in switches:
            if sw.installed is not None or sw.readback is not None:
                continue
            dp = sw.dp
            flows_req = parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                                   0, 0, parser.OFPMatch())
            meters_req = parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL)
            sw.readback = (self._request(sw, flows_req), self._request(sw, meters_req))

    def _read_back(self, switches: list[SwitchState]) -> None:
        """Flow (and meter) dump of every switch, requests sent to all first."""
        self._ask_read_back(switches)
        pending = []
        for sw in switches:
            rf, rm = sw.readback
            sw.readback = None
            pending.append((sw, rf, rm))
        for sw, rf, rm in pending:
            got = rf.done.wait(REPLY_TIMEOUT_S) and not rf.errors
            rm.done.wait(REPLY_TIMEOUT_S)
            self._forget(sw, rf, rm)
            if not got:
                LOG.warning("switch %016x: flow read-back failed", sw.dpid)
                continue
            installed, foreign = {}, 0
            decode = ofcodec.decode_flow_stats
            for st in rf.parts:       # ofwire.RawFlowStats: bytes, decoded without os-ken objects
                if cookies.is_ours(st.cookie):
                    f = decode(sw.bridge, st)
                    installed[f.key] = f
                else:
                    foreign += 1
            sw.installed, sw.foreign_flows = installed, foreign
            sw.meters = {} if rm.errors else {
                st.meter_id: ofcodec.decode_meter_config(sw.bridge, st) for st in rm.parts}
            LOG.info("switch %016x (%s): read back %d flows of ours, %d others, %d meters",
                     sw.dpid, sw.bridge, len(installed), foreign, len(sw.meters))

    def _request(self, sw: SwitchState, msg) -> _Reply:
        sw.dp.set_xid(msg)
        r = _Reply()
        self._replies[(sw.dpid, msg.xid)] = r
        sw.dp.send_msg(msg)
        return r

    def _forget(self, sw: SwitchState, *replies) -> None:
        for key, r in list(self._replies.items()):
            if r in replies:
                self._replies.pop(key, None)

    # --- sending the difference -------------------------------------------------

    def _push(self, jobs: list["_Job"]) -> dict[int, bool]:
        """Send every job's difference, then wait for all the barriers (all
        switches' messages are on their way before the first wait)."""
        started = []
        ok = {}
        for job in jobs:
            job.plan()
            if job.nothing_to_do:
                job.sw.reconciles += 1
                job.sw.synced = job.synced_to
                self._resynced(job.sw, 0)
                ok[job.sw.dpid] = True
                continue
            job.t0 = time.time()
            self._send_meters(job, job.meter_adds + job.meter_mods, ofcodec.ADD)
            mods = ([(f, ofwire.ADD) for f in job.adds] + [(f, ofwire.MODIFY) for f in job.mods]
                    + [(f, ofwire.DELETE) for f in job.dels])
            job.count = len(mods)
            job.bundle = len(mods) >= BUNDLE_MIN
            job.first_xid = self._send_mods(job.sw, mods, job.bundle)
            job.barrier = self._barrier(job.sw)
            started.append(job)
        for job in started:
            ok[job.sw.dpid] = self._finish(job)
        return ok

    def _send_mods(self, sw: SwitchState, mods: list[tuple[Flow, str]], bundle: bool) -> int:
        """Encode the flow_mods (wrapped in an ONF bundle when `bundle`) straight
        to bytes (controller/flows/ofwire.py), SEND_CHUNK messages to a
        buffer and a send: vswitchd parses a chunk while the next one is
        encoded (on two cores, 10,000 flows cost about the longer of the two
        instead of their sum). -> the first xid used (errors with a later
        xid are this batch's)."""
        dp = sw.dp
        n = len(mods) + (1 if bundle else 0)
        first = dp.xid + 1
        dp.xid = (dp.xid + n) & dp.ofproto.MAX_XID     # xids first..first+n-1 are ours
        xid = first
        parts = []
        if bundle:
            sw.bundle_id += 1
            flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
            parts.append(ofwire.bundle_ctrl_bytes(sw.bundle_id, ofp.ONF_BCT_OPEN_REQUEST, flags, xid))
            xid += 1
            encode = functools.partial(ofwire.bundle_add_bytes, bundle_id=sw.bundle_id, flags=flags)
        else:
            encode = ofwire.flow_mod_bytes
        for f, cmd in mods:
            parts.append(encode(f, cmd, xid))
            xid += 1
            if len(parts) >= SEND_CHUNK:
                dp.send(b"".join(parts))
                parts = []
        if parts:
            dp.send(b"".join(parts))
        sw.flow_mods_sent += len(mods)
        with self._lock:
            self.flow_mods_sent += len(mods)
        return first

    def _send_meters(self, job: "_Job", meters: list[Meter], command: str) -> None:
        for x in meters:
            cmd = ofcodec.MODIFY if command != ofcodec.DELETE and x.meter_id in (job.sw.meters or {}) \
                else command
            job.sw.dp.send_msg(ofcodec.meter_mod(job.sw.dp, x, cmd))

    def _barrier(self, sw: SwitchState) -> _Reply:
        return self._request(sw, parser.OFPBarrierRequest(sw.dp))

    def _finish(self, job: "_Job") -> bool:
        sw = job.sw
        done = job.barrier.done.wait(REPLY_TIMEOUT_S) and not job.barrier.errors
        self._forget(sw, job.barrier)
        errors = self._take_errors(sw.dpid, job.first_xid)
        if job.bundle:
            flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
            if not done or errors:
                LOG.error("switch %016x: %d flow_mod(s) refused in bundle %d; discarding it",
                          sw.dpid, len(errors), sw.bundle_id)
                sw.dp.send_msg(parser.ONFBundleCtrlMsg(sw.dp, sw.bundle_id, ofp.ONF_BCT_DISCARD_REQUEST,
                                                       flags, []))
                sw.installed = None           # read back and try again next time
                return False
            commit = self._request(sw, parser.ONFBundleCtrlMsg(sw.dp, sw.bundle_id,
                                                                ofp.ONF_BCT_COMMIT_REQUEST, flags, []))
            barrier = self._barrier(sw)
            done = (commit.done.wait(REPLY_TIMEOUT_S) and not commit.errors
                    and barrier.done.wait(REPLY_TIMEOUT_S) and not barrier.errors)
            self._forget(sw, commit, barrier)
        elif errors:
            done = False
        if not done:
            LOG.error("switch %016x: flows not confirmed (%d refused); reading it back next round",
                      sw.dpid, len(errors))
            sw.installed = None
            self._resync_all()
            return False
        self._send_meters(job, job.meter_dels, ofcodec.DELETE)   # after the flows using them went
        if LOG.isEnabledFor(logging.DEBUG):    # a flood flow lists every port: costly text
            for f in job.mods[:3]:
                LOG.debug("switch %016x: modified %s (was %s)", sw.dpid, f,
                          (sw.installed or {}).get(f.key))
        job.apply_to_model()
        sw.synced = job.synced_to
        sw.reconciles += 1
        sw.last_reconcile_s = time.time() - job.t0
        sw.last_flow_mods = job.count
        self._resynced(sw, job.count)
        LOG.info("switch %016x (%s): +%d ~%d -%d flows%s in %.3fs", sw.dpid, sw.bridge,
                 len(job.adds), len(job.mods), len(job.dels), " (bundle)" if job.bundle else "",
                 sw.last_reconcile_s)
        return True

    @staticmethod
    def _resynced(sw: SwitchState, flow_mods: int) -> None:
        """The first confirmed round after a connect: record how long the
        resync took (connect -> read back, diffed, repaired, confirmed)."""
        if sw.resync_s is None:
            sw.resync_s = time.time() - sw.connected_since
            sw.resync_flow_mods = flow_mods
            LOG.info("switch %016x (%s): resynced in %.3fs after connect, %d flow_mods", sw.dpid,
                     sw.bridge, sw.resync_s, flow_mods)

    def _take_errors(self, dpid: int, first_xid: int) -> list:
        with self._lock:
            errs = self._errors_by_dp.pop(dpid, [])
        return [x for x in errs if x >= first_xid]

    # --- port status -----------------------------------------------------------

    def _update_port_status(self, world: World, confirmed: set[str], candidates=None) -> None:
        """ACTIVE for bound, admin-up ports whose node's flows are confirmed;
        DOWN for VM ports that are no longer bound (or admin down). Looks at
        `candidates` (port ids), or every port when None; candidates on a
        node not confirmed this round are kept for the next one. One short
        write transaction, plain SQL (the ORM's per-row loading made this
        0.05-0.4 s with a few hundred ports)."""
        def want_of(pid):
            info = world.ports.get(pid)
            if info is None:
                return None
            net = world.networks.get(info.network_id)
            if info.node_id in confirmed:
                return "ACTIVE" if info.admin_state_up and net and net.admin_state_up else "DOWN"
            if info.node_id is None and not info.device_owner.startswith("network:"):
                return "DOWN"
            if candidates is not None:
                pending.add(pid)
            return None

        def txn(s):
            own_revisions.clear()          # a retried transaction starts over
            if candidates is None:
                rows = s.execute(_ALL_STATUSES).all()
            else:
                rows = s.execute(_STATUSES, {"ids": sorted(wants)}).all()
            changed = [pid for pid, status in rows if wants.get(pid) not in (None, status)]
            for pid in changed:
                s.execute(_SET_STATUS, {"pid": pid, "status": wants[pid]})
                r = s.execute(_LOG_PORT, {"resource_id": pid})
                own_revisions.add(r.inserted_primary_key[0])
            return changed

        pending: set[str] = set()
        ids = world.ports.keys() if candidates is None else candidates
        wants = {pid: w for pid in ids if (w := want_of(pid)) is not None}
        self._status_pending = pending
        if not wants:
            return
        own_revisions: set[int] = set()
        changed = self.rt.db.run_in_transaction(txn)
        self._own_revisions |= own_revisions
        if changed:
            LOG.info("port status changed: %d port(s)", len(changed))
            self.rt.bus.publish([Change("port", pid, "update") for pid in changed])


# Port status statements, built once (building them cost more than running them).
_PORTS, _CHANGES = m.Port.__table__, m.ChangeLog.__table__
_ALL_STATUSES = select(_PORTS.c.id, _PORTS.c.status)
_STATUSES = _ALL_STATUSES.where(_PORTS.c.id.in_(bindparam("ids", expanding=True)))
_SET_STATUS = update(_PORTS).where(_PORTS.c.id == bindparam("pid")).values(
    status=bindparam("status"), revision_number=func.coalesce(_PORTS.c.revision_number, 0) + 1)
_LOG_PORT = _CHANGES.insert().values(kind="port")


class _Job:
    """One switch's difference: desired vs installed, by key and body. With
    `keys` (the keys its NodeCompiler changed since the generation the switch
    matched) only those are compared; without, all of the bridge's flows."""

    def __init__(self, sw: SwitchState, nc: NodeCompiler, complete: bool, keys: set | None = None):
        self.sw, self.nc, self.complete, self.keys = sw, nc, complete, keys
        # What `installed` will match once this job is confirmed (an
        # incomplete compile leaves stale flows: no generation then).
        self.synced_to = (nc, nc.generation) if complete else None
        self.adds: list[Flow] = []
        self.mods: list[Flow] = []
        self.dels: list[Flow] = []
        self.meter_adds = self.meter_mods = self.meter_dels = []
        self.bundle = False
        self.count = 0
        self.t0 = 0.0

    def plan(self) -> None:
        bridge, desired, installed = self.sw.bridge, self.nc.desired, self.sw.installed or {}
        if self.keys is None:
            flows = [f for f in desired.values() if f.bridge == bridge]
            self.adds, self.mods, self.dels = diff(installed, flows, self.complete)
        else:
            for k in self.keys:
                if k[0] != bridge:
                    continue
                want, have = desired.get(k), installed.get(k)
                if want is None:
                    if have is not None:
                        self.dels.append(have)
                elif have is None or have.cookie != want.cookie:
                    self.adds.append(want)
                elif have.actions != want.actions or have.idle_timeout != want.idle_timeout:
                    self.mods.append(want)
        have = self.sw.meters or {}
        want = {i: x for (b, i), x in self.nc.meters.items() if b == bridge}
        self.meter_adds = [x for i, x in want.items() if i not in have]
        self.meter_mods = [x for i, x in want.items() if i in have and have[i] != x]
        self.meter_dels = [x for i, x in have.items() if i not in want] if self.complete else []

    @property
    def nothing_to_do(self) -> bool:
        return not (self.adds or self.mods or self.dels or self.meter_adds or self.meter_mods
                    or self.meter_dels)

    def apply_to_model(self) -> None:
        inst = self.sw.installed if self.sw.installed is not None else {}
        for f in self.dels:
            inst.pop(f.key, None)
        for f in self.adds + self.mods:
            inst[f.key] = f
        self.sw.installed = inst
        if self.meter_adds or self.meter_mods or self.meter_dels:
            meters = dict(self.sw.meters or {})
            for x in self.meter_dels:
                meters.pop(x.meter_id, None)
            for x in self.meter_adds + self.meter_mods:
                meters[x.meter_id] = x
            self.sw.meters = meters
        elif self.sw.meters is None:
            self.sw.meters = {}


def diff(installed: dict, desired: list[Flow], allow_delete: bool = True):
    """-> (adds, modifies, deletes). A changed cookie needs an add (OpenFlow
    1.3 modify keeps the old cookie); changed actions alone a modify_strict."""
    want = {f.key: f for f in desired}
    adds, mods = [], []
    for k, f in want.items():
        have = installed.get(k)
        if have is None or have.cookie != f.cookie:
            adds.append(f)
        elif have.actions != f.actions or have.idle_timeout != f.idle_timeout:
            mods.append(f)
    dels = [f for k, f in installed.items() if k not in want] if allow_delete else []
    return adds, mods, dels


def affected_nodes(old: World, new: World, changes: list[Change]) -> set[str]:
    """The nodes whose flows a batch of changes can touch: where the port is
    (was) plugged and every node with a port on its network (br-tun unicast,
    ARP answers). Node changes and kinds we do not know touch every node."""
    out: set[str] = set()
    for c in changes:
        if c.kind == "port":
            for w in (old, new):
                p = w.ports.get(c.id)
                if p is not None:
                    if p.node_id:
                        out.add(p.node_id)
                    out |= w.nodes_of_network(p.network_id)
                    # routers deliver into the network wherever it has a local VLAN
                    out |= {n for (n, nid) in w.local_vlans if nid == p.network_id}
        elif c.kind in ("network", "subnet"):
            for w in (old, new):
                net_id = c.id
                if c.kind == "subnet":
                    sub = w.subnets.get(c.id)
                    if sub is None:
                        continue
                    net_id = sub.network_id
                out |= w.nodes_of_network(net_id)
                out |= {n for (n, nid) in w.local_vlans if nid == net_id}
        else:
            return set(old.nodes) | set(new.nodes)
    return out
