"""Reading switches for the console, always through the reconciler's own
connections (Reconciler.query): flows with their counters, table statistics,
the controller's OpenFlow role. And drift: desired versus installed."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from os_ken.ofproto import ofproto_v1_3 as ofp

from controller.flows import cookies
from controller.openflow import wire
from controller.flows.compiler import compile_node
from controller.flows.flow import Flow

TIMEOUT_S = 3.0
ROLE_NAMES = {ofp.OFPCR_ROLE_NOCHANGE: "NOCHANGE", ofp.OFPCR_ROLE_EQUAL: "EQUAL",
              ofp.OFPCR_ROLE_MASTER: "MASTER", ofp.OFPCR_ROLE_SLAVE: "SLAVE"}


@dataclass
class FlowRow:
    """A flow read from a switch, with its counters."""
    flow: Flow
    packets: int = 0
    bytes: int = 0
    duration_s: float = 0.0

    @property
    def fid(self) -> str:
        return flow_id(self.flow)


def flow_id(f: Flow) -> str:
    """A short stable id of a flow entry (its key), for the live refresh."""
    return hashlib.sha1(repr((f.table, f.priority, f.match)).encode()).hexdigest()[:12]


def _bridge(sw) -> str:
    return sw.bridge or f"{sw.dpid:016x}"


def dump_flows(rec, dpids=None) -> dict[int, list[FlowRow] | None]:
    """Every flow of every switch (or those in dpids), None where the switch did not answer."""
    bridges = {sw.dpid: _bridge(sw) for sw in rec.switch_list()}
    replies = rec.query(lambda dp: dp.ofproto_parser.OFPFlowStatsRequest(
        dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0, dp.ofproto_parser.OFPMatch()),
        dpids=dpids, timeout=TIMEOUT_S)
    out = {}
    for dpid, stats in replies.items():
        if stats is None:
            out[dpid] = None
            continue
        rows = [FlowRow(wire.decode_flow_stats(bridges.get(dpid, "?"), st), st.packet_count,
                        st.byte_count, st.duration_sec + st.duration_nsec / 1e9) for st in stats]
        out[dpid] = sorted(rows, key=lambda r: (r.flow.table, -r.flow.priority, r.flow.match))
    return out


def table_stats(rec, dpid: int) -> dict[int, dict] | None:
    """table id -> {active, lookup, matched} (OFPTableStats)."""
    stats = rec.query(lambda dp: dp.ofproto_parser.OFPTableStatsRequest(dp, 0),
                      dpids={dpid}, timeout=TIMEOUT_S).get(dpid)
    if stats is None:
        return None
    return {st.table_id: {"active": st.active_count, "lookup": st.lookup_count,
                          "matched": st.matched_count} for st in stats}


def roles(rec) -> dict[int, str]:
    """The controller's OpenFlow role on every switch (a role query that changes nothing)."""
    replies = rec.query(lambda dp: dp.ofproto_parser.OFPRoleRequest(dp, ofp.OFPCR_ROLE_NOCHANGE, 0),
                        timeout=TIMEOUT_S)
    return {dpid: ROLE_NAMES.get(msgs[0].role, str(msgs[0].role)) if msgs else "no answer"
            for dpid, msgs in replies.items()}


# --- drift ---------------------------------------------------------------------------

@dataclass
class Drift:
    missing: list[Flow]                  # desired, not on the switch
    extra: list[Flow]                    # ours on the switch, not desired
    differing: list[tuple[Flow, Flow]]   # (desired, installed): same entry, other cookie or actions
    foreign: int = 0                     # flows not ours (cookie kind unknown): left alone

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.differing)


def drift(desired: list[Flow], installed: list[Flow]) -> Drift:
    """Compare by entry key (bridge, table, priority, match) and body."""
    ours = [f for f in installed if cookies.is_ours(f.cookie)]
    have = {f.key: f for f in ours}
    want = {f.key: f for f in desired}
    missing = [f for k, f in want.items() if k not in have]
    extra = [f for k, f in have.items() if k not in want]
    differing = [(f, have[k]) for k, f in want.items()
                 if k in have and (have[k].cookie, have[k].actions) != (f.cookie, f.actions)]
    return Drift(sorted(missing), sorted(extra), sorted(differing),
                 len(installed) - len(ours))


def desired_by_switch(inv, switches) -> dict[int, list[Flow]]:
    """What the reconciler wants on each connected switch that belongs to a node."""
    compiled: dict[str, list[Flow]] = {}
    out = {}
    for sw in switches:
        node, bridge = inv.node_by_dpid(sw.dpid)
        if node is None or node["id"] not in inv.world.nodes:
            continue
        if node["id"] not in compiled:
            compiled[node["id"]] = compile_node(inv.world, inv.world.nodes[node["id"]]).flows
        out[sw.dpid] = [f for f in compiled[node["id"]] if f.bridge == bridge]
    return out
