"""The switch session: everything said to and heard from the connected switches.

    SwitchState     one connected switch: what it holds (ours), its counters
    SwitchSession   xids and the replies waited for, read-back (flow and meter
                    dumps), sending a SwitchPlan (flow_mods, in an ONF bundle
                    when large), barriers, errors; read-only queries for the
                    console and /metrics
    WRITE_GATE      the write gate: every flow_mod, meter_mod, bundle message
                    and packet-out of the process goes through send()/send_msg()

A bundle is: open, adds, barrier, check errors, commit, barrier (Open vSwitch
applies it atomically; why the barrier before the commit: docs/ARCHITECTURE.md
"Talking to switches").

Threads: os-ken's handlers (the app's event thread, see controller/apps/
reconciler.py) only record replies here; the scheduler's worker thread sends
and waits, with threading.Event (os-ken's hub.Event ignores timeouts,
docs/ARCHITECTURE.md "os-ken").
"""
from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from os_ken.controller import ofp_event
from os_ken.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.apps.guard import guarded
from controller.flows import cookies
from controller.openflow import osken_patches
from controller.openflow import reference as ofcodec
from controller.openflow import wire as ofwire
from controller.flows.flow import Flow, Meter
from controller.flows.plan import SwitchPlan, apply_plan
from controller.flows.tables import IntTable

LOG = logging.getLogger(__name__)

# Flow-stats replies stay bytes until decoded by ofwire (os-ken's object
# parsing of a 10k-flow dump cost seconds); see controller/openflow/wire.py.
osken_patches.raw_flow_stats()

REPLY_TIMEOUT_S = 30.0     # multipart / barrier replies
BUNDLE_MIN = 32            # at least this many flow_mods: send them in one bundle
# Security-group tables: a change there that both adds and removes (or
# modifies) goes in one bundle however small, so no packet meets a half
# old, half new rule set (controller/flows/security_groups.py).
ACL_TABLES = frozenset({IntTable.INGRESS_ACL, IntTable.INGRESS_ACL_CT, IntTable.EGRESS_ACL,
                        IntTable.EGRESS_ACL_CT})
SEND_CHUNK = 1000          # messages per socket write (~150 KB of flow_mods)
QUERY_TIMEOUT_S = 5.0      # read-only queries from the console / metrics
QUERY_XID_BASE = 0xF0000000   # their xids: never mistaken for the worker's flow_mods
_BUNDLE_FLAGS = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED


class WriteGate:
    """May this controller change a switch? The one gate every write passes.

    send()/send_msg() below check it for every flow_mod, meter_mod, bundle
    message and packet-out of the process (the session's pushes, DHCP
    replies, L3 ARP requests and ICMP answers), whichever thread sends; reads
    (stats, barriers, role requests) are never gated.

    `policy` is a predicate dpid -> bool that the HA app (always loaded; a
    lone controller holds every node's lease) sets: "the node of this switch
    has a lease generation now and the switch confirmed us as master"
    (controller/ha/mastership.py, docs/HA.md). `deny(dpid)` stops every write to a
    switch at once, e.g. on an IS_SLAVE error or a role-status message,
    until `allow(dpid)`. A push to a gated switch is not confirmed and
    leaves what the session believes the switch holds untouched."""

    def __init__(self):
        self.policy: Callable[[int], bool] | None = None
        self._denied: set[int] = set()
        self.dropped = 0                   # writes refused by the gate

    def may_write(self, dpid: int | None) -> bool:
        if dpid in self._denied:
            return False
        policy = self.policy
        return policy is None or policy(dpid)

    def allow(self, dpid: int) -> None:
        self._denied.discard(dpid)

    def deny(self, dpid: int) -> None:
        self._denied.add(dpid)


WRITE_GATE = WriteGate()


def send(dp, data: bytes) -> bool:
    """Write already-encoded OpenFlow messages (flow_mods, packet-outs) to
    `dp`, unless the write gate refuses it. -> whether it was sent."""
    if not WRITE_GATE.may_write(dp.id):
        WRITE_GATE.dropped += 1
        return False
    dp.send(data)
    return True


def send_msg(dp, msg) -> bool:
    """send() for an os-ken message object (meter_mod, packet-out, bundle control)."""
    if not WRITE_GATE.may_write(dp.id):
        WRITE_GATE.dropped += 1
        return False
    dp.send_msg(msg)
    return True


def on_connection(method):
    """Decorate an os-ken app's method `method(self, dp, up)` to be its
    handler of switch connections: called with up=True once a switch (with
    its datapath id) is ready, up=False when its connection is gone; guarded
    like every handler (controller/apps/guard.py)."""
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    @functools.wraps(method)
    def handler(self, ev):
        dp = ev.datapath
        if dp.id is not None:
            method(self, dp, ev.state == MAIN_DISPATCHER)
    return handler


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


class Reply:
    """What the worker waits for: a barrier, a multipart dump, a bundle reply."""

    def __init__(self):
        self.done = threading.Event()
        self.parts: list = []
        self.errors: list = []


class Push:
    """One switch's difference on its way. Planned just before it is sent, so
    the first switch parses its flow_mods while the next one is planned."""

    def __init__(self, sw: SwitchState, synced_to: tuple | None, make_plan: Callable[[], SwitchPlan]):
        self.sw, self.synced_to, self.make_plan = sw, synced_to, make_plan
        self.plan = SwitchPlan()
        self.bundle = False
        self.count = 0
        self.t0 = 0.0
        self.first_xid = 0
        self.barrier: Reply | None = None


class SwitchSession:
    """The connected switches and the conversation with them.

    `on_unconfirmed` is called when a switch did not confirm a push outside
    a bundle (the caller reads everything back and resyncs)."""

    def __init__(self, on_unconfirmed: Callable[[], None] = lambda: None):
        self.on_unconfirmed = on_unconfirmed
        self.switches: dict[int, SwitchState] = {}
        self.flow_mods_sent = 0            # total, all switches (read by tests and benchmarks)
        self._lock = threading.Lock()
        self._replies: dict[tuple[int, int], Reply] = {}
        self._errors_by_dp: dict[int, list] = {}
        self._query_xids = itertools.count(QUERY_XID_BASE)

    # --- connections (os-ken's event thread) -----------------------------------

    def connected(self, dp) -> None:
        with self._lock:
            self.switches[dp.id] = SwitchState(dp=dp, dpid=dp.id, address=dp.address)

    def disconnected(self, dp) -> None:
        with self._lock:
            sw = self.switches.get(dp.id)
            if sw is not None and sw.dp is dp:
                del self.switches[dp.id]
            # Nobody will answer what we are waiting for on this connection.
            for (dpid, _xid), r in list(self._replies.items()):
                if dpid == dp.id:
                    r.errors.append("disconnected")
                    r.done.set()

    def switch_list(self) -> list[SwitchState]:
        """The connected switches (SwitchState objects: read them, never write)."""
        with self._lock:
            return list(self.switches.values())

    # --- replies (os-ken's event thread: record and wake only) ------------------

    def multipart(self, msg) -> None:
        r = self._replies.get((msg.datapath.id, msg.xid))
        if r is None:
            return
        r.parts.extend(msg.body)
        if not msg.flags & ofp.OFPMPF_REPLY_MORE:
            r.done.set()

    def answered(self, msg, keep: bool = False) -> None:
        """A barrier or bundle reply (or, with keep, a role reply kept as the answer)."""
        r = self._replies.get((msg.datapath.id, msg.xid))
        if r is not None:
            if keep:
                r.parts.append(msg)
            r.done.set()

    def error(self, msg) -> None:
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

    # --- read-only queries (console, metrics; any thread) ------------------------

    def query(self, make_request, dpids=None, timeout: float = QUERY_TIMEOUT_S) -> dict:
        """Send `make_request(datapath)` (a stats request or a role query,
        never a modification: only the worker changes switches) to every
        connected switch, or those in `dpids`, and wait for the replies.
        -> {dpid: list of reply bodies, or None when refused or timed out}.
        Uses the session's own connections; xids from a range of their own."""
        sent = []
        for sw in self.switch_list():
            if dpids is not None and sw.dpid not in dpids:
                continue
            msg = make_request(sw.dp)
            msg.set_xid(next(self._query_xids) & 0xFFFFFFFF)
            r = Reply()
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

    # --- reading switches back (worker thread) ---------------------------------

    def ask_read_back(self, switches: list[SwitchState]) -> None:
        """Send the flow and meter dump requests of switches that need a
        read-back, unless already asked: the switch dumps while the caller
        loads the snapshot."""
        for sw in switches:
            if sw.installed is not None or sw.readback is not None:
                continue
            dp = sw.dp
            flows_req = parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                                   0, 0, parser.OFPMatch())
            meters_req = parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL)
            sw.readback = (self._request(sw, flows_req), self._request(sw, meters_req))

    def read_back(self, switches: list[SwitchState]) -> None:
        """Flow (and meter) dump of every switch, requests sent to all first."""
        self.ask_read_back(switches)
        pending = []
        for sw in switches:
            rf, rm = sw.readback
            sw.readback = None
            pending.append((sw, rf, rm))
        for sw, rf, rm in pending:
            got = rf.done.wait(REPLY_TIMEOUT_S) and not rf.errors
            rm.done.wait(REPLY_TIMEOUT_S)
            self._forget(rf, rm)
            if not got:
                LOG.warning("switch %016x: flow read-back failed", sw.dpid)
                continue
            installed, foreign = {}, 0
            decode = ofwire.decode_flow_stats
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

    def _request(self, sw: SwitchState, msg, write: bool = False) -> Reply:
        """Send `msg` and -> the Reply its answer will fill. A `write` (a
        bundle commit) passes the write gate; refused, its Reply fails at once."""
        sw.dp.set_xid(msg)
        r = Reply()
        self._replies[(sw.dpid, msg.xid)] = r
        if write:
            if not send_msg(sw.dp, msg):
                r.errors.append("not master")
                r.done.set()
        else:
            sw.dp.send_msg(msg)
        return r

    def _forget(self, *replies) -> None:
        for key, r in list(self._replies.items()):
            if r in replies:
                self._replies.pop(key, None)

    # --- sending the difference (worker thread) ---------------------------------

    def push(self, jobs: list[Push]) -> dict[int, bool]:
        """Send every job's difference, then wait for all the barriers (all
        switches' messages are on their way before the first wait).
        -> dpid: confirmed. A switch the write gate refuses is not confirmed
        and keeps what it holds."""
        started = []
        ok = {}
        for job in jobs:
            sw = job.sw
            if not WRITE_GATE.may_write(sw.dpid):
                ok[sw.dpid] = False
                continue
            job.plan = job.make_plan()
            if job.plan.nothing_to_do:
                sw.reconciles += 1
                sw.synced = job.synced_to
                self._resynced(sw, 0)
                ok[sw.dpid] = True
                continue
            p = job.plan
            job.t0 = time.time()
            self._send_meters(sw, p.meter_adds + p.meter_mods, ofcodec.ADD)
            mods = ([(f, ofwire.ADD) for f in p.adds] + [(f, ofwire.MODIFY) for f in p.mods]
                    + [(f, ofwire.DELETE) for f in p.dels])
            job.count = len(mods)
            job.bundle = len(mods) >= BUNDLE_MIN or _swaps_acl(p)
            job.first_xid = self._send_mods(sw, mods, job.bundle)
            job.barrier = self._barrier(sw)
            started.append(job)
        for job in started:
            ok[job.sw.dpid] = self._finish(job)
        return ok

    def _send_mods(self, sw: SwitchState, mods: list[tuple[Flow, str]], bundle: bool) -> int:
        """Encode the flow_mods (wrapped in an ONF bundle when `bundle`) straight
        to bytes (controller/openflow/wire.py), SEND_CHUNK messages to a
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
            parts.append(ofwire.bundle_ctrl_bytes(sw.bundle_id, ofp.ONF_BCT_OPEN_REQUEST, _BUNDLE_FLAGS,
                                                  xid))
            xid += 1
            encode = functools.partial(ofwire.bundle_add_bytes, bundle_id=sw.bundle_id, flags=_BUNDLE_FLAGS)
        else:
            encode = ofwire.flow_mod_bytes
        for f, cmd in mods:
            parts.append(encode(f, cmd, xid))
            xid += 1
            if len(parts) >= SEND_CHUNK:
                send(dp, b"".join(parts))
                parts = []
        if parts:
            send(dp, b"".join(parts))
        sw.flow_mods_sent += len(mods)
        with self._lock:
            self.flow_mods_sent += len(mods)
        return first

    def _send_meters(self, sw: SwitchState, meters: list[Meter], command: str) -> None:
        for x in meters:
            cmd = ofcodec.MODIFY if command != ofcodec.DELETE and x.meter_id in (sw.meters or {}) \
                else command
            send_msg(sw.dp, ofcodec.meter_mod(sw.dp, x, cmd))

    def _barrier(self, sw: SwitchState) -> Reply:
        return self._request(sw, parser.OFPBarrierRequest(sw.dp))

    def _finish(self, job: Push) -> bool:
        sw, p = job.sw, job.plan
        done = job.barrier.done.wait(REPLY_TIMEOUT_S) and not job.barrier.errors
        self._forget(job.barrier)
        errors = self._take_errors(sw.dpid, job.first_xid)
        if job.bundle:
            if not done or errors:
                LOG.error("switch %016x: %d flow_mod(s) refused in bundle %d; discarding it",
                          sw.dpid, len(errors), sw.bundle_id)
                send_msg(sw.dp, parser.ONFBundleCtrlMsg(sw.dp, sw.bundle_id, ofp.ONF_BCT_DISCARD_REQUEST,
                                                        _BUNDLE_FLAGS, []))
                sw.installed = None           # read back and try again next time
                return False
            commit = self._request(sw, parser.ONFBundleCtrlMsg(sw.dp, sw.bundle_id,
                                                                ofp.ONF_BCT_COMMIT_REQUEST, _BUNDLE_FLAGS, []),
                                   write=True)
            barrier = self._barrier(sw)
            done = (commit.done.wait(REPLY_TIMEOUT_S) and not commit.errors
                    and barrier.done.wait(REPLY_TIMEOUT_S) and not barrier.errors)
            self._forget(commit, barrier)
        elif errors:
            done = False
        if not done:
            LOG.error("switch %016x: flows not confirmed (%d refused); reading it back next round",
                      sw.dpid, len(errors))
            sw.installed = None
            self.on_unconfirmed()
            return False
        self._send_meters(sw, p.meter_dels, ofcodec.DELETE)   # after the flows using them went
        if LOG.isEnabledFor(logging.DEBUG):    # a flood flow lists every port: costly text
            for f in p.mods[:3]:
                LOG.debug("switch %016x: modified %s (was %s)", sw.dpid, f,
                          (sw.installed or {}).get(f.key))
        sw.installed, sw.meters = apply_plan(p, sw.installed, sw.meters)
        sw.synced = job.synced_to
        sw.reconciles += 1
        sw.last_reconcile_s = time.time() - job.t0
        sw.last_flow_mods = job.count
        self._resynced(sw, job.count)
        LOG.info("switch %016x (%s): +%d ~%d -%d flows%s in %.3fs", sw.dpid, sw.bridge,
                 len(p.adds), len(p.mods), len(p.dels), " (bundle)" if job.bundle else "",
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


def _swaps_acl(plan) -> bool:
    """Adds and removals (or modifies) together, one of them in a
    security-group table."""
    if not plan.adds or not (plan.dels or plan.mods):
        return False
    return any(f.bridge == "br-int" and f.table in ACL_TABLES
               for f in (*plan.adds, *plan.dels, *plan.mods))
