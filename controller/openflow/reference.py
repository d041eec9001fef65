"""Flow / Meter <-> os-ken OpenFlow 1.3 message objects.

`flow_mod(dp, flow, ADD|MODIFY|DELETE)` builds the os-ken message: the
reference encoding (the reconciler sends the same bytes written directly by
controller/openflow/wire.py, which falls back to this module for Nicira
actions); `decode_flow_stats_os_ken` turns a parsed flow-stats entry into the
Flow form the compilers produce, so desired and installed flows compare with
`==`; `meter_mod` / `decode_meter_config` do the same for meters. The round
trip is tested in tests/unit/test_flows_codec.py (os-ken serialise/parse, wire.py bytes) and on
real OVS in tests/e2e/test_reconciler.py.
"""
from __future__ import annotations

from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.flows.flow import Flow, Meter, ct, match
from controller.openflow.oxm import match_fields

ADD, MODIFY, DELETE = "add", "modify", "delete"          # flow_mod / meter_mod commands
_COMMANDS = {ADD: ofp.OFPFC_ADD, MODIFY: ofp.OFPFC_MODIFY_STRICT, DELETE: ofp.OFPFC_DELETE_STRICT}
ALL_ONES = 0xFFFFFFFFFFFFFFFF

# The Flow form's port names (flow.py) <-> OpenFlow port numbers.
NAMED_PORTS = {"in_port": ofp.OFPP_IN_PORT, "normal": ofp.OFPP_NORMAL, "flood": ofp.OFPP_FLOOD,
               "local": ofp.OFPP_LOCAL, "all": ofp.OFPP_ALL}
PORT_NAMES = {v: k for k, v in NAMED_PORTS.items()}
NX_CT_RECIRC_NONE = 0xFF
NX_IN_PORT = 0xFFF8          # OpenFlow 1.0 port numbers in NX resubmit


# --- encode (os-ken objects) ---------------------------------------------------
#
# The reconciler sends bytes written by controller/openflow/wire.py (building
# os-ken objects costs ~0.5 ms a flow). These os-ken messages are the
# reference that wire.py's bytes are tested against
# (tests/unit/test_flows_codec.py), and what other callers may still use.

def flow_mod(dp, flow: Flow, command: str = ADD) -> parser.OFPFlowMod:
    m = os_ken_match(flow.match)
    if command == DELETE:
        return parser.OFPFlowMod(dp, cookie=flow.cookie, cookie_mask=ALL_ONES, table_id=flow.table,
                                 command=ofp.OFPFC_DELETE_STRICT, priority=flow.priority,
                                 out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                                 match=m, instructions=[])
    return parser.OFPFlowMod(dp, cookie=flow.cookie, cookie_mask=0, table_id=flow.table,
                             command=_COMMANDS[command], idle_timeout=flow.idle_timeout,
                             priority=flow.priority, buffer_id=ofp.OFP_NO_BUFFER,
                             out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                             match=m, instructions=instructions(flow.actions))


def os_ken_match(m) -> parser.OFPMatch:
    """OFPMatch with the fields in oxm.py's wire order (os-ken's own order
    puts Nicira header fields such as nw_ttl before their eth_type
    prerequisite, which OVS refuses)."""
    return parser.OFPMatch(_ordered_fields=[ofp.oxm_normalize_user(k, v)
                                            for k, v in match_fields(m)])


def instructions(actions) -> list:
    out, apply = [], []
    for a in actions:
        op = a[0]
        if op == "meter":
            out.append(parser.OFPInstructionMeter(a[1], ofp.OFPIT_METER))
        elif op == "goto":
            pass
        elif op == "write_metadata":
            pass
        else:
            apply.append(encode_action(a))
    if apply:
        out.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, apply))
    for a in actions:
        if a[0] == "write_metadata":
            out.append(parser.OFPInstructionWriteMetadata(a[1], a[2]))
    for a in actions:
        if a[0] == "goto":
            out.append(parser.OFPInstructionGotoTable(a[1]))
    return out


def encode_action(a: tuple):
    op = a[0]
    if op == "output":
        port = NAMED_PORTS.get(a[1], a[1])
        if a[1] == "controller":
            return parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)
        return parser.OFPActionOutput(port, 0)
    if op == "controller":
        return parser.OFPActionOutput(ofp.OFPP_CONTROLLER, a[1] if len(a) > 1 else ofp.OFPCML_NO_BUFFER)
    if op == "set_field":
        return parser.OFPActionSetField(**{a[1]: a[2]})
    if op == "push_vlan":
        return parser.OFPActionPushVlan(a[1])
    if op == "pop_vlan":
        return parser.OFPActionPopVlan()
    if op == "dec_ttl":
        return parser.OFPActionDecNwTtl()
    if op == "move":
        src_ofs = a[4] if len(a) > 4 else 0
        dst_ofs = a[5] if len(a) > 5 else 0
        return parser.NXActionRegMove(src_field=a[1], dst_field=a[2], n_bits=a[3],
                                      src_ofs=src_ofs, dst_ofs=dst_ofs)
    if op == "resubmit":
        return parser.NXActionResubmitTable(in_port=NX_IN_PORT if a[1] is None else a[1],
                                            table_id=a[2])
    if op == "conjunction":
        return parser.NXActionConjunction(clause=a[2] - 1, n_clauses=a[3], id_=a[1])
    if op == "ct":
        o = dict(a[1])
        nat = [encode_action(x) for x in o.get("exec", ())]
        if o.get("nat") is not None:
            n = dict(o["nat"])
            nat.append(parser.NXActionNAT(flags=n.get("flags", 0),
                                          range_ipv4_min=n.get("ipv4_min", ""),
                                          range_ipv4_max=n.get("ipv4_max", ""),
                                          range_proto_min=n.get("proto_min"),
                                          range_proto_max=n.get("proto_max")))
        table = o.get("table")
        zone = o.get("zone", 0)
        if isinstance(zone, str):            # from a register: its bits 0..15
            zone_src, zone_ofs_nbits = zone, nicira_ext.ofs_nbits(0, 15)
        else:
            zone_src, zone_ofs_nbits = "", zone
        return parser.NXActionCT(flags=nicira_ext.NX_CT_F_COMMIT if o.get("commit") else 0,
                                 zone_src=zone_src, zone_ofs_nbits=zone_ofs_nbits,
                                 recirc_table=NX_CT_RECIRC_NONE if table is None else table,
                                 alg=0, actions=nat)
    raise ValueError(f"unknown action {a!r}")


def meter_mod(dp, meter: Meter, command: str = ADD) -> parser.OFPMeterMod:
    cmd = {ADD: ofp.OFPMC_ADD, MODIFY: ofp.OFPMC_MODIFY, DELETE: ofp.OFPMC_DELETE}[command]
    bands = [] if command == DELETE else [parser.OFPMeterBandDrop(rate=meter.rate_pps,
                                                                  burst_size=meter.burst)]
    flags = ofp.OFPMF_PKTPS | (ofp.OFPMF_BURST if meter.burst else 0)
    return parser.OFPMeterMod(dp, command=cmd, flags=flags, meter_id=meter.meter_id, bands=bands)


# --- decode ------------------------------------------------------------------

def decode_flow_stats_os_ken(bridge: str, st) -> Flow:
    """A parsed os-ken OFPFlowStats -> Flow (the reference decoder)."""
    return Flow(bridge=bridge, table=st.table_id, priority=st.priority,
                match=decode_match(st.match), actions=decode_instructions(st.instructions),
                cookie=st.cookie, idle_timeout=st.idle_timeout)


def decode_match(m) -> tuple:
    fields = {}
    for k, v in m.items():
        fields[k] = v
    return match(**fields)


def decode_instructions(insts) -> tuple:
    meter, apply, wmeta, goto = [], [], [], []
    for i in insts:
        if isinstance(i, parser.OFPInstructionMeter):
            meter.append(("meter", i.meter_id))
        elif isinstance(i, parser.OFPInstructionActions) and i.type == ofp.OFPIT_APPLY_ACTIONS:
            apply += [decode_action(a) for a in i.actions]
        elif isinstance(i, parser.OFPInstructionWriteMetadata):
            wmeta.append(("write_metadata", i.metadata, i.metadata_mask))
        elif isinstance(i, parser.OFPInstructionGotoTable):
            goto.append(("goto", i.table_id))
        else:
            apply.append(("unknown_instruction", type(i).__name__))
    return tuple(meter + apply + wmeta + goto)


def decode_action(a) -> tuple:
    if isinstance(a, parser.OFPActionOutput):
        if a.port == ofp.OFPP_CONTROLLER:
            return ("controller", a.max_len)
        return ("output", PORT_NAMES.get(a.port, a.port))
    if isinstance(a, parser.OFPActionSetField):
        return ("set_field", a.key, _norm(a.value))
    if isinstance(a, parser.OFPActionPushVlan):
        return ("push_vlan", a.ethertype)
    if isinstance(a, parser.OFPActionPopVlan):
        return ("pop_vlan",)
    if isinstance(a, parser.OFPActionDecNwTtl):
        return ("dec_ttl",)
    if isinstance(a, parser.NXActionRegMove):
        # OVS reports NXM headers (os-ken: "eth_src_nxm") for what we sent as OXM.
        out = ("move", _oxm_name(a.src_field), _oxm_name(a.dst_field), a.n_bits)
        if a.src_ofs or a.dst_ofs:
            out += (a.src_ofs, a.dst_ofs)
        return out
    if isinstance(a, parser.NXActionResubmitTable):
        return ("resubmit", None if a.in_port == NX_IN_PORT else a.in_port, a.table_id)
    if isinstance(a, parser.NXActionConjunction):
        return ("conjunction", a.id, a.clause + 1, a.n_clauses)
    if isinstance(a, parser.NXActionCT):
        nat, exec_ = None, []
        for inner in a.actions or ():
            if isinstance(inner, parser.NXActionNAT):
                nat = {"flags": inner.flags, "ipv4_min": inner.range_ipv4_min or None,
                       "ipv4_max": inner.range_ipv4_max or None,
                       "proto_min": inner.range_proto_min, "proto_max": inner.range_proto_max}
            else:
                exec_.append(decode_action(inner))
        zone = _oxm_name(a.zone_src) if a.zone_src else a.zone_ofs_nbits
        return ct(commit=bool(a.flags & nicira_ext.NX_CT_F_COMMIT), zone=zone,
                  table=None if a.recirc_table == NX_CT_RECIRC_NONE else a.recirc_table, nat=nat,
                  exec_=tuple(exec_))
    return ("unknown_action", type(a).__name__)


def decode_meter_config(bridge: str, st) -> Meter:
    band = st.bands[0] if st.bands else None
    return Meter(bridge=bridge, meter_id=st.meter_id, rate_pps=band.rate if band else 0,
                 burst=band.burst_size if band and st.flags & ofp.OFPMF_BURST else 0)


def _oxm_name(field: str) -> str:
    return field[:-4] if field.endswith("_nxm") else field


def _norm(v):
    if isinstance(v, str) and v.count(":") == 5:
        return v.lower()
    return v
