"""The one receiver of packet-ins: counts them and hands each to the app its
cookie names.

  cookie kind "port", table DHCP -> DhcpResponder.on_packet_in, at once, in
                                    the switch's receive thread
  cookie kind "router"           -> L3Arp.on_packet_in (ARP replies, TTL
                                    expiry), on this app's worker thread

Why the receive thread: os-ken hands an event to an observing app through a
queue, and the app's thread wakes to take it. On these machines that hop
(a futex wake, then the interpreter lock passed between threads) cost 0.3-0.4
ms of a DHCP reply that takes about 1 ms inside the controller (bench_dhcp,
measured with timestamps in the process). So this app is not an observer: it
registers its handler with os-ken's OpenFlow brick, whose handlers the
receive loop calls synchronously (os-ken's own handshake handlers run the
same way). A DHCP answer needs no blocking call once the port's facts are
cached, and a cache miss is a few reads (controller/apps/dhcp.py).

Router packet-ins may write (a learned gateway MAC goes to the database), so
they wait on a bounded queue for the worker instead: a switch's receive loop
never waits for the database's write lock. A full queue drops the packet-in
(counted, `router_dropped`).

Owners that are not loaded (tests and benchmarks load subsets) are skipped.
"""
from __future__ import annotations

import logging
import queue
import threading

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_handler
from os_ken.ofproto import ofproto_v1_3 as ofp

from controller.apps.guard import guarded
from controller.flows import cookies
from controller.openflow import osken_patches
from controller.flows.tables import IntTable

LOG = logging.getLogger(__name__)

REASONS = {ofp.OFPR_NO_MATCH: "no_match", ofp.OFPR_ACTION: "action",
           ofp.OFPR_INVALID_TTL: "invalid_ttl"}
ROUTER_QUEUE = 1000

osken_patches.lean_packet_in()      # packet-ins parsed with struct, match as a dict


class PacketInDispatcher(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.packet_ins: dict[str, int] = {}     # by OpenFlow reason (metrics)
        self.router_dropped = 0                   # router packet-ins refused by a full queue (metrics)
        self._count_lock = threading.Lock()      # one receive thread per switch counts here
        self._router_queue: queue.Queue = queue.Queue(ROUTER_QUEUE)
        self._worker = threading.Thread(target=self._router_worker, name="packet-in-router", daemon=True)
        self._worker.start()

    def start(self):
        super().start()
        brick = app_manager.lookup_service_brick("ofp_event")
        if brick is not None:                     # None only in unit tests without os-ken's controller
            brick.register_handler(ofp_event.EventOFPPacketIn, self._on_packet_in)

    def close(self):
        try:
            self._router_queue.put_nowait(None)
        except queue.Full:
            pass                                  # a daemon thread: it ends with the process
        super().close()

    @set_ev_handler(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def _on_packet_in(self, ev):
        msg = ev.msg
        self._count(REASONS.get(msg.reason, str(msg.reason)))
        kind, prefix = cookies.decode(msg.cookie)
        if kind == "port" and msg.table_id == IntTable.DHCP:
            owner = app_manager.lookup_service_brick("DhcpResponder")
            if owner is not None:
                owner.on_packet_in(msg, prefix)
        elif kind == "router":
            try:
                self._router_queue.put_nowait((msg, prefix))
            except queue.Full:
                with self._count_lock:
                    self.router_dropped += 1

    def _count(self, key: str) -> None:
        with self._count_lock:
            self.packet_ins[key] = self.packet_ins.get(key, 0) + 1

    def _router_worker(self) -> None:
        while (item := self._router_queue.get()) is not None:
            owner = app_manager.lookup_service_brick("L3Arp")
            if owner is not None:
                owner.on_packet_in(*item)           # guarded: logs and carries on
