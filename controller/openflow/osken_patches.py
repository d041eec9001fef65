"""Every change this project makes to os-ken at run time, in one place.

Checked against os-ken 4.2.2 (pyproject allows >=4.2,<5). Each patch
replaces one module attribute; before moving to another os-ken version,
check that attribute still exists and means the same (tests/unit/
test_flows_codec.py, test_guard.py and the switch channel's tests exercise
them). Each function is process-wide and idempotent.
"""
from __future__ import annotations

# os-ken's own import order: os_ken.controller.controller imported before
# app_manager fails on a circular import (a module that loads this one first).
import os_ken.base.app_manager  # noqa: F401
import os_ken.controller.controller as osken_controller
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.openflow import wire

CHECKED_VERSIONS = ("4.2.2",)


class TaskExit(BaseException):
    """Only raised to end a hub thread on purpose."""


def keep_apps_alive_on_errors() -> None:
    """os-ken's native hub defines `hub.TaskExit = Exception`, so its app
    event loop takes ANY handler exception for a normal exit and the app
    silently stops receiving events (docs/ARCHITECTURE.md "os-ken"). Give TaskExit its own
    class again (nothing in native mode raises it); controller.apps.guard
    then logs handler exceptions and the loop goes on."""
    if hub.HUB_TYPE == "native":
        hub.TaskExit = TaskExit


def lean_packet_in() -> None:
    """Packet-ins parsed with struct, the match as a dict (wire.OFPPacketIn;
    os-ken's parser took 0.15-0.2 ms of a DHCP reply's 1 ms)."""
    parser._MSG_PARSERS[ofp.OFPT_PACKET_IN] = wire.OFPPacketIn.parser


def raw_flow_stats() -> None:
    """Flow-stats reply entries kept as bytes (wire.RawFlowStats) instead of
    parsing every match and action into objects (seconds for a 10k-flow
    dump). Everything that reads OFPFlowStats attributes still works."""
    parser.OFPFlowStatsReply.cls_stats_body_cls = wire.RawFlowStats


_os_ken_listen = hub.listen


def set_listen_backlog(backlog: int) -> None:
    """The backlog os-ken's OpenFlow listener passes to listen(2). os-ken has
    no option for it (its StreamServer calls hub.listen() with the default of
    50), so hub.listen is given ours; nothing else in the process uses it.
    A socket opened early (controller/openflow/early_listen.py) is used as is."""
    from controller.openflow import early_listen

    def listen(addr, *args, **kwargs):
        # The socket controller.main opened at start-up, when it is this one.
        sock = early_listen.take(addr)
        if sock is not None:
            return sock
        return _os_ken_listen(addr, *args, **dict(kwargs, backlog=max(1, int(backlog))))
    hub.listen = listen


def accept_switches_with(serve_switch) -> None:
    """Every connection os-ken's OpenFlow listener accepts goes to
    `serve_switch(socket, address)` instead of os-ken's own
    datapath_connection_factory (controller/apps/switch_channel.py: TLS,
    the handshake's outcome)."""
    osken_controller.datapath_connection_factory = serve_switch
