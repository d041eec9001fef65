"""The reconciler: the one os-ken app that programs the switches.

For every node it computes the desired flows (controller/flows/compiler.py on a
World snapshot), compares them with what each of the node's switches has,
and sends only the difference, then a barrier. Restart, reconnect, resync and
ordinary updates are one code path:

  connect     -> read the switch's flows back (multipart flow stats) -> diff -> repair
  DB change   -> recompute the affected nodes only -> diff -> send
  nothing new -> zero flow_mods

Its parts, each in its own module:

  controller/apps/switch_session.py  the switches: xids, read-back, bundles,
                                     barriers, errors, queries, the write gate
  controller/flows/plan.py           desired vs installed, affected nodes (pure)
  controller/apps/scheduler.py       rounds, held changes, the change log
  controller/apps/port_status.py     ports ACTIVE once their node is confirmed

This module is only the os-ken glue: the handlers (on os-ken's event thread)
record replies in the session and wake the scheduler; the public methods are
what the console, /metrics, tests and benchmarks read.

Rules: flows are never wiped; only flows whose cookie kind is ours are ever
deleted; a compiler that fails makes the round add/modify only.
"""
from __future__ import annotations

import logging

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3 as ofp

from controller.apps.guard import guarded
from controller.apps.scheduler import Scheduler
from controller.apps.switch_session import QUERY_TIMEOUT_S, SwitchSession, SwitchState, on_connection
from controller.runtime import Runtime

LOG = logging.getLogger(__name__)


class Reconciler(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rt = Runtime.current()
        self.session = SwitchSession()
        self.scheduler = Scheduler(self.rt, self.session)
        self.session.on_unconfirmed = self.scheduler.resync_all
        self.scheduler.start()

    def close(self):
        self.scheduler.close()

    # --- public: stats and waiting (console, metrics, tests, benchmarks) ------

    @property
    def flow_mods_sent(self) -> int:
        return self.session.flow_mods_sent

    @property
    def rounds(self) -> int:
        return self.scheduler.rounds

    @property
    def last_round_s(self) -> float:
        return self.scheduler.last_round_s

    @property
    def round_seconds_total(self) -> float:
        return self.scheduler.round_seconds_total

    def stats(self) -> dict:
        sc = self.scheduler
        return {"flow_mods_sent": self.session.flow_mods_sent, "rounds": sc.rounds,
                "last_round_s": sc.last_round_s, "last_busy_round": sc.last_busy_round,
                "full_loads": sc.full_loads,
                "switches": [s.as_dict() for s in self.session.switch_list()]}

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once no work is pending (for benchmarks and in-process tests)."""
        return self.scheduler.wait_idle(timeout)

    def reread(self, dpids) -> None:
        """Read these switches back and reconcile them (we became their master)."""
        self.scheduler.reread(dpids)

    def switch_list(self) -> list[SwitchState]:
        """The connected switches (SwitchState objects: read them, never write)."""
        return self.session.switch_list()

    def query(self, make_request, dpids=None, timeout: float = QUERY_TIMEOUT_S) -> dict:
        """Read-only requests to the switches (SwitchSession.query)."""
        return self.session.query(make_request, dpids, timeout)

    # --- os-ken handlers (record and wake only) -------------------------------

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _on_features(self, ev):
        dp = ev.msg.datapath
        LOG.info("switch connected: dpid=%016x from %s", dp.id, dp.address)

    @on_connection
    def _on_state(self, dp, up: bool):
        if up:
            self.session.connected(dp)
            # Its node is looked at in the next round (installed is None): no
            # need to recompile every node when one of 100 switches connects.
            self.scheduler.wake()
        else:
            self.session.disconnected(dp)
            LOG.info("switch disconnected: dpid=%016x", dp.id)

    @set_ev_cls([ofp_event.EventOFPFlowStatsReply, ofp_event.EventOFPMeterConfigStatsReply,
                 ofp_event.EventOFPTableStatsReply, ofp_event.EventOFPMeterStatsReply], MAIN_DISPATCHER)
    @guarded
    def _on_multipart(self, ev):
        self.session.multipart(ev.msg)

    @set_ev_cls(ofp_event.EventOFPRoleReply, MAIN_DISPATCHER)
    @guarded
    def _on_role_reply(self, ev):
        self.session.answered(ev.msg, keep=True)

    @set_ev_cls([ofp_event.EventOFPBarrierReply, ofp_event.EventONFBundleCtrlMsg], MAIN_DISPATCHER)
    @guarded
    def _on_answer(self, ev):
        self.session.answered(ev.msg)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def _on_error(self, ev):
        self.session.error(ev.msg)
