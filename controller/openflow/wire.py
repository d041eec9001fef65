"""Flow <-> OpenFlow 1.3 wire bytes, straight, without os-ken message objects.

Hand-written for a measured reason: building os-ken objects (OFPMatch,
actions, OFPFlowMod, ONFBundleAddMsg) and serialising them cost 0.3-0.5 ms a
flow, and parsing a flow-stats reply into os-ken objects about as much; with
10,000 flows per switch that was the whole time of a programming round or a
resync. This module writes and reads the bytes with `struct` and keeps
os-ken (controller/openflow/reference.py) as the reference and the fallback:

  encode  flow_mod_bytes(flow, command, xid)       one OFPT_FLOW_MOD
          bundle_add_bytes(flow, command, xid, bundle_id, flags)
                                                    ONF bundle-add wrapping it
          bundle_ctrl_bytes(bundle_id, type, flags, xid)
          -> bytes; the reconciler joins a switch's messages into one buffer
          and hands it to `datapath.send()` in one call (one socket write).
          packet_out_bytes(port, data)              a DHCP reply's packet-out
  decode  decode_flow_stats(bridge, st)            a flow-stats entry -> Flow
          decode_flow_stats_entry(bridge, raw)      one ofp_flow_stats (bytes) -> Flow
          RawFlowStats: the flow-stats reply body kept as bytes per entry
          (any other attribute access parses the entry with os-ken on demand,
          so the console's use of OFPFlowStats attributes keeps working).
          OFPPacketIn: packet-ins parsed with struct, the match as a dict.
          Both are made os-ken's parsers by controller/openflow/osken_patches.py.

Match fields are controller/openflow/oxm.py's; Nicira actions (move,
resubmit, ct, ...) and unknown instructions go through os-ken's own
encoder/parser (reference.py), cached by value.
tests/unit/test_flows_codec.py checks that these bytes equal os-ken's
encoding for every flow shape the compilers produce, and that decoding them
gives back the same Flow as os-ken's parser does.
"""
from __future__ import annotations

import struct

from os_ken.ofproto import ofproto_common
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.flows.flow import Flow
from controller.openflow import reference
from controller.openflow.oxm import CACHE_MAX, Unsupported, decode_match_bytes, decode_tlv, match_bytes, oxm_tlv
from controller.openflow.reference import ADD, ALL_ONES, DELETE, MODIFY, NAMED_PORTS, PORT_NAMES  # noqa: F401

_COMMANDS = {ADD: ofp.OFPFC_ADD, MODIFY: ofp.OFPFC_MODIFY_STRICT, DELETE: ofp.OFPFC_DELETE_STRICT}

_HDR = struct.Struct("!BBHI")                       # ofp_header
_FLOW_MOD = struct.Struct("!BBHIQQBBHHHIIIH2x")     # header + ofp_flow_mod up to the match
_BUNDLE_ADD = struct.Struct("!BBHIIIIxxH")          # header + experimenter + ONF bundle add
_BUNDLE_CTRL = struct.Struct("!BBHIIIIHH")          # header + experimenter + ONF bundle ctrl
_FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQ")      # ofp_flow_stats up to the match
_PACKET_OUT = struct.Struct("!BBHIIIH6xHHIH6x")    # header + ofp_packet_out + one output action
_PACKET_IN = struct.Struct("!IHBBQ")                 # ofp_packet_in after the header, up to the match
_HH = struct.Struct("!HH")
_I = struct.Struct("!I")
_OF13 = ofp.OFP_VERSION



# --- actions and instructions ---------------------------------------------------------

_action_cache: dict = {}


def _action_bytes(a: tuple) -> bytes:
    """One action's bytes, cached by value: a port's flows differ in a few
    actions (its ofport, its MAC) and share the rest."""
    b = _action_cache.get(a)
    if b is None:
        if len(_action_cache) > CACHE_MAX:
            _action_cache.clear()
        b = _action_cache[a] = _encode_action(a)
    return b


def _encode_action(a: tuple) -> bytes:
    op = a[0]
    if op == "output":
        if a[1] == "controller":
            return struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)
        return struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, NAMED_PORTS.get(a[1], a[1]), 0)
    if op == "controller":
        max_len = a[1] if len(a) > 1 else ofp.OFPCML_NO_BUFFER
        return struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, ofp.OFPP_CONTROLLER, max_len)
    if op == "set_field" and not isinstance(a[2], tuple):
        tlv = oxm_tlv(a[1], a[2])
        length = (4 + len(tlv) + 7) // 8 * 8
        return _HH.pack(ofp.OFPAT_SET_FIELD, length) + tlv + bytes(length - 4 - len(tlv))
    if op == "push_vlan":
        return struct.pack("!HHH2x", ofp.OFPAT_PUSH_VLAN, 8, a[1])
    if op == "pop_vlan":
        return struct.pack("!HH4x", ofp.OFPAT_POP_VLAN, 8)
    if op == "dec_ttl":
        return struct.pack("!HH4x", ofp.OFPAT_DEC_NW_TTL, 8)
    # Nicira actions (move, resubmit, ct, ...): os-ken's encoder, once per action.
    buf = bytearray()
    act = reference.encode_action(a)
    act.serialize(buf, 0)
    return bytes(buf) + bytes(max(0, act.len - len(buf)))   # os-ken leaves trailing padding unwritten


_inst_cache: dict = {}


def instructions_bytes(actions: tuple) -> bytes:
    """The instruction list for a Flow's actions, in the codec's canonical
    order: meter, apply-actions, write-metadata, goto."""
    b = _inst_cache.get(actions)
    if b is not None:
        return b
    meters, apply, wmeta, goto = [], [], [], []
    for a in actions:
        op = a[0]
        if op == "meter":
            meters.append(struct.pack("!HHI", ofp.OFPIT_METER, 8, a[1]))
        elif op == "goto":
            goto.append(struct.pack("!HHB3x", ofp.OFPIT_GOTO_TABLE, 8, a[1]))
        elif op == "write_metadata":
            wmeta.append(struct.pack("!HH4xQQ", ofp.OFPIT_WRITE_METADATA, 24, a[1], a[2]))
        else:
            apply.append(_action_bytes(a))
    out = meters
    if apply:
        body = b"".join(apply)
        out.append(struct.pack("!HH4x", ofp.OFPIT_APPLY_ACTIONS, 8 + len(body)) + body)
    b = b"".join(out + wmeta + goto)
    if len(_inst_cache) > CACHE_MAX:
        _inst_cache.clear()
    _inst_cache[actions] = b
    return b


# --- messages ------------------------------------------------------------------------

def flow_mod_bytes(flow: Flow, command: str, xid: int) -> bytes:
    """OFPT_FLOW_MOD for `flow`: add, modify-strict, or delete-strict limited
    to the flow's cookie (the same fields os-ken's OFPFlowMod would carry)."""
    return b"".join(_flow_mod_parts(flow, command, xid)[1:])


def _flow_mod_parts(flow: Flow, command: str, xid: int) -> tuple:
    """(length, header, match, instructions) of a flow_mod: joined once by
    the caller, with or without a bundle-add header in front."""
    m = match_bytes(flow.match)
    if command == DELETE:
        inst, cookie_mask, idle = b"", ALL_ONES, 0
    else:
        inst, cookie_mask, idle = instructions_bytes(flow.actions), 0, flow.idle_timeout
    length = 48 + len(m) + len(inst)
    return (length, _FLOW_MOD.pack(_OF13, ofp.OFPT_FLOW_MOD, length, xid, flow.cookie, cookie_mask,
                                   flow.table, _COMMANDS[command], idle, 0, flow.priority,
                                   ofp.OFP_NO_BUFFER, ofp.OFPP_ANY, ofp.OFPG_ANY, 0), m, inst)


def bundle_add_bytes(flow: Flow, command: str, xid: int, bundle_id: int, flags: int) -> bytes:
    """ONF bundle-add (OF1.3 extension) carrying the flow_mod; the inner
    message has the outer message's xid (OF1.3 bundle extension 3.3)."""
    length, header, m, inst = _flow_mod_parts(flow, command, xid)
    return b"".join((_BUNDLE_ADD.pack(_OF13, ofp.OFPT_EXPERIMENTER, 24 + length, xid,
                                      ofproto_common.ONF_EXPERIMENTER_ID, ofp.ONF_ET_BUNDLE_ADD_MESSAGE,
                                      bundle_id, flags), header, m, inst))


def bundle_ctrl_bytes(bundle_id: int, ctrl_type: int, flags: int, xid: int) -> bytes:
    return _BUNDLE_CTRL.pack(_OF13, ofp.OFPT_EXPERIMENTER, 24, xid, ofproto_common.ONF_EXPERIMENTER_ID,
                             ofp.ONF_ET_BUNDLE_CONTROL, bundle_id, ctrl_type, flags)


def barrier_bytes(xid: int) -> bytes:
    return _HDR.pack(_OF13, ofp.OFPT_BARRIER_REQUEST, 8, xid)


# Above the reconciler's QUERY_XID_BASE: an error about a packet-out is never
# taken for a refused flow_mod of the batch in flight.
PACKET_OUT_XID = 0xFFFFFFFE


def packet_out_bytes(out_port: int, data: bytes, xid: int = PACKET_OUT_XID) -> bytes:
    """OFPT_PACKET_OUT of `data` (no buffer, in_port CONTROLLER), one output action."""
    return _PACKET_OUT.pack(_OF13, ofp.OFPT_PACKET_OUT, _PACKET_OUT.size + len(data), xid,
                            ofp.OFP_NO_BUFFER, ofp.OFPP_CONTROLLER, 16,
                            ofp.OFPAT_OUTPUT, 16, out_port, 0) + data


# --- decode --------------------------------------------------------------------------


_nx_action_cache: dict = {}


def _decode_actions(buf, off: int, end: int) -> list:
    out = []
    while off < end:
        atype, alen = _HH.unpack_from(buf, off)
        if alen < 8:
            raise Unsupported("bad action length")
        if atype == ofp.OFPAT_OUTPUT:
            port, max_len = struct.unpack_from("!IH", buf, off + 4)
            out.append(("controller", max_len) if port == ofp.OFPP_CONTROLLER
                       else ("output", PORT_NAMES.get(port, port)))
        elif atype == ofp.OFPAT_SET_FIELD:
            name, v, _n = decode_tlv(buf, off + 4)
            if isinstance(v, tuple):
                raise Unsupported("masked set_field")
            out.append(("set_field", name, v))
        elif atype == ofp.OFPAT_PUSH_VLAN:
            out.append(("push_vlan", struct.unpack_from("!H", buf, off + 4)[0]))
        elif atype == ofp.OFPAT_POP_VLAN:
            out.append(("pop_vlan",))
        elif atype == ofp.OFPAT_DEC_NW_TTL:
            out.append(("dec_ttl",))
        elif atype == ofp.OFPAT_EXPERIMENTER:
            raw = bytes(buf[off:off + alen])
            a = _nx_action_cache.get(raw)
            if a is None:
                a = reference.decode_action(parser.OFPAction.parser(raw, 0))
                if len(_nx_action_cache) > CACHE_MAX:
                    _nx_action_cache.clear()
                _nx_action_cache[raw] = a
            out.append(a)
        else:
            raise Unsupported(atype)
        off += alen
    return out


def decode_instructions_bytes(buf, off: int, end: int) -> tuple:
    meter, apply, wmeta, goto = [], [], [], []
    while off < end:
        itype, ilen = _HH.unpack_from(buf, off)
        if ilen < 8:
            raise Unsupported("bad instruction length")
        if itype == ofp.OFPIT_GOTO_TABLE:
            goto.append(("goto", buf[off + 4]))
        elif itype == ofp.OFPIT_WRITE_METADATA:
            wmeta.append(("write_metadata",) + struct.unpack_from("!QQ", buf, off + 8))
        elif itype == ofp.OFPIT_APPLY_ACTIONS:
            apply += _decode_actions(buf, off + 8, off + ilen)
        elif itype == ofp.OFPIT_METER:
            meter.append(("meter", _I.unpack_from(buf, off + 4)[0]))
        else:
            raise Unsupported(itype)
        off += ilen
    return tuple(meter + apply + wmeta + goto)


def decode_flow_stats_entry(bridge: str, raw) -> Flow:
    """One ofp_flow_stats (bytes) -> Flow, the same Flow reference.py's os-ken
    based decoder gives (it is the fallback for what is not handled here)."""
    try:
        length, table, _ds, _dn, prio, idle, _hard, _flags, cookie, _pc, _bc = \
            _FLOW_STATS.unpack_from(raw, 0)
        m, mlen = decode_match_bytes(raw, 48)
        actions = decode_instructions_bytes(raw, 48 + mlen, length)
        return Flow(bridge=bridge, table=table, priority=prio, match=m, actions=actions,
                    cookie=cookie, idle_timeout=idle)
    except (Unsupported, struct.error, ValueError, IndexError, OSError, KeyError):
        return reference.decode_flow_stats_os_ken(bridge, parser.OFPFlowStats.parser(bytes(raw), 0))


def decode_flow_stats(bridge: str, st) -> Flow:
    """A flow-stats entry -> Flow (same canonical form as the compilers
    produce): RawFlowStats from their bytes, parsed os-ken entries by the
    reference decoder."""
    if isinstance(st, RawFlowStats):
        return decode_flow_stats_entry(bridge, st.raw)
    return reference.decode_flow_stats_os_ken(bridge, st)


def flow_stats_cookie(raw) -> int:
    return struct.unpack_from("!Q", raw, 24)[0]


class OFPPacketIn(parser.OFPPacketIn):
    """A packet-in parsed with `struct` (os-ken's parser took 0.15-0.2 ms of a
    DHCP reply's 1 ms in the controller, bench_dhcp). Same attributes, except
    `match`: a plain dict of the OXM fields (msg.match.get("in_port") works
    as with os-ken's OFPMatch). A match this module cannot decode falls back
    to os-ken's parser. Named as os-ken's class on purpose: os-ken picks the
    event class (EventOFPPacketIn) by the message class's name."""

    def __init__(self, datapath):      # noqa: the parser fills every attribute
        self.datapath = datapath

    @classmethod
    def parser(cls, datapath, version, msg_type, msg_len, xid, buf):
        try:
            msg = cls(datapath)
            msg.version, msg.msg_type, msg.msg_len, msg.xid, msg.buf = version, msg_type, msg_len, xid, buf
            msg.buffer_id, msg.total_len, msg.reason, msg.table_id, msg.cookie = \
                _PACKET_IN.unpack_from(buf, 8)
            fields, mlen = decode_match_bytes(buf, 24)
            msg.match = dict(fields)
            data = buf[24 + mlen + 2:]
            msg.data = data[:msg.total_len] if msg.total_len < len(data) else data
            return msg
        except (Unsupported, struct.error, ValueError, IndexError, OSError, KeyError):
            return parser.OFPPacketIn.parser(datapath, version, msg_type, msg_len, xid, buf)



class RawFlowStats(parser.OFPFlowStats):
    """One entry of a flow-stats reply kept as bytes (`raw`, `length`,
    `cookie`). Any other OFPFlowStats attribute parses the entry with os-ken
    the first time it is read."""

    def __init__(self, raw: bytes):      # noqa: OFPFlowStats.__init__ is the slow part
        self.__dict__["raw"] = raw
        self.__dict__["length"] = len(raw)

    @property
    def cookie(self) -> int:
        return flow_stats_cookie(self.raw)

    @classmethod
    def parser(cls, buf, offset):
        (length,) = struct.unpack_from("!H", buf, offset)
        return cls(bytes(buf[offset:offset + length]))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        full = parser.OFPFlowStats.parser(self.__dict__["raw"], 0)
        for k, v in vars(full).items():
            self.__dict__.setdefault(k, v)
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(name) from None
