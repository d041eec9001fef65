"""OpenFlow echo requests to every switch from ONE thread.

os-ken checks each connection with a thread of its own that sleeps between
echo requests: with 100 switches that was 100 of the process's 306 threads
(the others: each connection's reader and its sender). The launcher turns
os-ken's loop off (maximum_unreplied_echo_requests = 0) and this app applies
the same rule to all connections at once: every `[openflow] echo_interval`
seconds an echo request; a connection (handshake included) with more than
MAX_UNREPLIED of them unanswered is closed. os-ken's own echo-reply handler
clears `unreplied_echo_requests` as replies arrive.
"""
from __future__ import annotations

import logging
import threading

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import DEAD_DISPATCHER, HANDSHAKE_DISPATCHER, set_ev_cls

from controller.apps.guard import guarded
from controller.runtime import Runtime

LOG = logging.getLogger(__name__)

MAX_UNREPLIED = 3


class Liveness(app_manager.OSKenApp):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.interval = float(Runtime.current().cfg.get("openflow.echo_interval"))
        self._dps: dict[int, object] = {}      # id(datapath) -> datapath
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="echo", daemon=True)
        self._thread.start()

    def close(self):
        self._stop.set()

    @set_ev_cls(ofp_event.EventOFPStateChange, [HANDSHAKE_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def _on_state(self, ev):
        with self._lock:
            if ev.state == HANDSHAKE_DISPATCHER:
                self._dps[id(ev.datapath)] = ev.datapath
            else:
                self._dps.pop(id(ev.datapath), None)

    def _loop(self):
        while not self._stop.wait(self.interval):
            with self._lock:
                dps = list(self._dps.items())
            for key, dp in dps:
                try:
                    self._probe(key, dp)
                except Exception:
                    LOG.exception("echo request to %s failed", dp.address)

    def _probe(self, key, dp) -> None:
        if dp.state == DEAD_DISPATCHER or dp.send_q is None:
            with self._lock:
                self._dps.pop(key, None)
            return
        if len(dp.unreplied_echo_requests) > MAX_UNREPLIED:
            LOG.warning("switch %s (%s): %d echo requests unanswered; closing the connection",
                        f"{dp.id:016x}" if dp.id else "?", dp.address, len(dp.unreplied_echo_requests))
            with self._lock:
                self._dps.pop(key, None)
            dp.close()
            return
        if dp.send_q.full():
            return      # never block the other switches' probes; a stuck send times out in os-ken
        req = dp.ofproto_parser.OFPEchoRequest(dp)
        dp.unreplied_echo_requests.append(dp.set_xid(req))
        dp.send_msg(req)
