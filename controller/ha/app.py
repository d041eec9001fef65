"""The os-ken app that turns mastership leases into OpenFlow roles.

A thread ticks the Mastership (controller/ha/mastership.py) every
`[ha] renew_interval`, then makes every connected switch's role match:
  - the switches of a node whose lease we hold: ROLE_REQUEST MASTER with
    the lease's generation id (Open vSwitch demotes the previous master to
    SLAVE, and refuses a generation id older than one it has seen: a
    controller that lost its lease can never become master again with it);
  - every other switch: SLAVE with the newest generation we read, so that
    only the master receives packet-ins (a fresh connection is EQUAL).

`may_write(dpid)` is the write gate: true only while we hold the node's
lease (local deadline, see mastership.py) AND the switch answered our MASTER
request with that generation. Flow_mods, meter_mods, bundles and
packet-outs pass it (the switch session's send gate); reads never need it.

Role requests use xids of their own (ROLE_XID_BASE and up), above the
reconciler's query range, so no reply or error is mistaken for another's.
"""
from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from dataclasses import dataclass

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.apps import switch_session
from controller.apps.guard import guarded
from controller.ha.leases import LeaseStore
from controller.ha.mastership import Mastership
from controller.ha.notify import ChangeLogListener
from controller.runtime import Runtime

LOG = logging.getLogger(__name__)

ROLE_XID_BASE = 0xF8000000
RESEND_S = 1.0               # an unanswered role request is sent again after this
ROLE_NAMES = {ofp.OFPCR_ROLE_MASTER: "master", ofp.OFPCR_ROLE_SLAVE: "slave",
              ofp.OFPCR_ROLE_EQUAL: "equal"}


def controller_id(cfg) -> str:
    return cfg.get("ha.controller_id") or f"{socket.gethostname()}:{cfg.get('openflow.listen_port')}"


@dataclass
class SwitchRole:
    dp: object
    asked: tuple | None = None        # (role, generation) last requested
    asked_at: float = 0.0
    confirmed: tuple | None = None    # (role, generation) the switch answered
    refused: int = 0                  # stale-generation refusals


class HaRoles(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rt = Runtime.current()
        cfg = self.rt.cfg
        self.me = controller_id(cfg)
        api = f"http://{cfg.get('DEFAULT.bind_host')}:{cfg.get('DEFAULT.bind_port')}"
        store = LeaseStore(self.rt.db, self.me, cfg.get("ha.lease_duration"), api_url=api)
        self.mastership = Mastership(store, join_delay=cfg.get("ha.join_delay"), listener=self)
        self.interval = float(cfg.get("ha.renew_interval"))
        self._lock = threading.Lock()
        self._switches: dict[int, SwitchRole] = {}
        self._node_of: dict[int, str] = {}          # dpid -> node id (from the nodes' bridges)
        self._bridges: dict[str, list[int]] = {}    # node id -> dpids
        self._pending: dict[int, tuple] = {}        # xid -> (dpid, role, generation)
        self._xids = itertools.count(ROLE_XID_BASE)
        self.subscribers: list = []                 # objects with gained(node, gen) / lost(node)
        self.role_requests = 0
        self.stale_refusals = 0
        self.last_gained: dict[str, float] = {}     # node -> time.time() of the gain (benchmarks)
        self._stop = threading.Event()
        switch_session.WRITE_GATE.policy = self.may_write
        self.listener = ChangeLogListener(self.rt.db, self._changelog_changed).start()
        self._thread = threading.Thread(target=self._loop, name="ha-mastership", daemon=True)
        self._thread.start()

    def close(self):
        self.listener.stop()
        self._stop.set()
        self._thread.join(5)
        self.mastership.stop()          # our writes stop before the leases are released
        super().close()

    # --- the gate --------------------------------------------------------------------

    def may_write(self, dpid: int | None) -> bool:
        node = self._node_of.get(dpid)
        if node is None:
            return False
        gen = self.mastership.generation(node)
        sw = self._switches.get(dpid)
        return gen is not None and sw is not None and sw.confirmed == (ofp.OFPCR_ROLE_MASTER, gen)

    def is_master_of_node(self, node_id: str) -> bool:
        return self.mastership.generation(node_id) is not None

    def _changelog_changed(self) -> None:
        rec = app_manager.lookup_service_brick("Reconciler")
        if rec is not None:
            rec.scheduler.changelog_changed()

    # --- Mastership listener (tick thread) ---------------------------------------------

    def gained(self, node_id: str, generation: int) -> None:
        self.last_gained[node_id] = time.time()
        for dpid in self._bridges.get(node_id, ()):
            self._ask(dpid, ofp.OFPCR_ROLE_MASTER, generation)
        self._tell("gained", node_id, generation)

    def lost(self, node_id: str) -> None:
        self._tell("lost", node_id)

    def _tell(self, what: str, *args) -> None:
        for sub in list(self.subscribers):
            try:
                getattr(sub, what)(*args)
            except Exception:
                LOG.exception("mastership subscriber %r failed on %s", sub, what)

    # --- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                self._step()
            except Exception:
                LOG.exception("mastership step failed")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def _step(self) -> None:
        with self._lock:
            connected = set(self._switches)
        reachable = {n for n, dpids in self._bridges.items() if connected & set(dpids)}
        # The map first: a node registered since the last tick is known to reachable next time.
        view = self.mastership.tick(reachable)
        if view is None:
            return
        self._bridges = {n: list(b) for n, b in view.nodes.items()}
        self._node_of = {dpid: n for n, dpids in self._bridges.items() for dpid in dpids}
        self._align_roles()

    def _align_roles(self) -> None:
        """Ask every connected switch for the role it should have."""
        now = time.monotonic()
        with self._lock:
            switches = list(self._switches.items())
        for dpid, sw in switches:
            want = self._wanted_role(dpid)
            if want is None or sw.confirmed == want:
                continue
            if sw.asked == want and now - sw.asked_at < RESEND_S:
                continue
            self._ask(dpid, *want)

    def _wanted_role(self, dpid: int) -> tuple | None:
        node = self._node_of.get(dpid)
        if node is None:
            return None
        gen = self.mastership.generation(node)
        if gen is not None:
            return (ofp.OFPCR_ROLE_MASTER, gen)
        lease = self.mastership.lease_of(node)
        if lease is None or lease.generation == 0:
            return None
        return (ofp.OFPCR_ROLE_SLAVE, lease.generation)

    def _ask(self, dpid: int, role: int, generation: int) -> None:
        sw = self._switches.get(dpid)
        if sw is None:
            return
        req = parser.OFPRoleRequest(sw.dp, role, generation)
        req.set_xid(next(self._xids) & 0xFFFFFFFF)
        self._pending[req.xid] = (dpid, role, generation)
        sw.asked, sw.asked_at = (role, generation), time.monotonic()
        if role != ofp.OFPCR_ROLE_MASTER and sw.confirmed and sw.confirmed[0] == ofp.OFPCR_ROLE_MASTER:
            sw.confirmed = None         # closes the gate before the demotion is even sent
        self.role_requests += 1
        LOG.info("switch %016x: role request %s generation %d", dpid, ROLE_NAMES[role], generation)
        sw.dp.send_msg(req)

    # --- os-ken handlers ---------------------------------------------------------------

    @switch_session.on_connection
    def _on_state(self, dp, up: bool):
        if up:
            with self._lock:
                self._switches[dp.id] = SwitchRole(dp)
            want = self._wanted_role(dp.id)
            if want is not None:
                self._ask(dp.id, *want)      # before the first packet-in reaches an EQUAL us
        else:
            with self._lock:
                sw = self._switches.get(dp.id)
                if sw is not None and sw.dp is dp:
                    del self._switches[dp.id]

    @set_ev_cls(ofp_event.EventOFPRoleReply, MAIN_DISPATCHER)
    @guarded
    def _on_role_reply(self, ev):
        msg = ev.msg
        asked = self._pending.pop(msg.xid, None)
        if asked is None:
            return
        dpid, role, generation = asked
        sw = self._switches.get(dpid)
        if sw is None or sw.dp is not msg.datapath:
            return
        sw.confirmed = (msg.role, msg.generation_id)
        LOG.info("switch %016x: role %s generation %d confirmed", dpid,
                 ROLE_NAMES.get(msg.role, msg.role), msg.generation_id)
        if msg.role == ofp.OFPCR_ROLE_MASTER:
            # Another master may have changed the switch since we last read it.
            rec = app_manager.lookup_service_brick("Reconciler")
            if rec is not None:
                rec.reread([dpid])

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def _on_error(self, ev):
        msg = ev.msg
        asked = self._pending.pop(msg.xid, None)
        if asked is None:
            if msg.type == ofp.OFPET_BAD_REQUEST and msg.code == ofp.OFPBRC_IS_SLAVE:
                sw = self._switches.get(msg.datapath.id)
                if sw is not None:
                    sw.confirmed = None     # we are not master there (any more)
            return
        dpid, role, generation = asked
        sw = self._switches.get(dpid)
        if sw is not None:
            sw.refused += 1
            if role == ofp.OFPCR_ROLE_MASTER:
                sw.confirmed = None
        self.stale_refusals += 1
        LOG.warning("switch %016x refused role %s generation %d (type=%s code=%s): a newer "
                    "generation exists", dpid, ROLE_NAMES[role], generation, msg.type, msg.code)

    # --- the console and /metrics ---------------------------------------------------------

    def status(self) -> dict:
        view = self.mastership.view
        leases = view.leases if view else {}
        with self._lock:
            switches = list(self._switches.items())
        out = []
        for dpid, sw in sorted(switches):
            node = self._node_of.get(dpid)
            lease = leases.get(node) if node else None
            role = sw.confirmed[0] if sw.confirmed else ofp.OFPCR_ROLE_EQUAL
            out.append({"dpid": f"{dpid:016x}", "node_id": node, "role": ROLE_NAMES.get(role, str(role)),
                        "generation": sw.confirmed[1] if sw.confirmed else None,
                        "master": lease.holder if lease and lease.holder and
                        lease.expires_at > view.now else None})
        nodes = {n: {"master": lease.holder if lease.holder and lease.expires_at > view.now else None,
                     "generation": lease.generation} for n, lease in leases.items()}
        return {"controller_id": self.me,
                "controllers": sorted(view.controllers) if view else [],
                "nodes": nodes,
                "nodes_mastered": len(self.mastership.held()),
                "mastership_changes": self.mastership.changes,
                "role_requests": self.role_requests, "stale_refusals": self.stale_refusals,
                "switches": out}
