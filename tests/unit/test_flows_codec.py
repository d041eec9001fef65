"""Flow -> OFPFlowMod bytes -> parsed back -> Flow gives the same Flow, for
every flow the compilers produce and for the actions later concerns use."""
import dataclasses
import struct
import types

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.openflow import osken_patches, oxm, reference, wire
from controller.flows.flow import Flow, Meter, ct, match
from tests.unit.fakeoftable import compile_all, make_world
from tests.unit import test_flows_l2 as l2

DP = types.SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1)


def round_trip(f: Flow) -> Flow:
    msg = reference.flow_mod(DP, f)
    msg.set_xid(1)
    msg.serialize()
    back = parser.OFPFlowMod.parser(DP, ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, len(msg.buf), 1, bytes(msg.buf))
    st = types.SimpleNamespace(table_id=back.table_id, priority=back.priority, match=back.match,
                               instructions=back.instructions, cookie=back.cookie,
                               idle_timeout=back.idle_timeout)
    return wire.decode_flow_stats(f.bridge, st)


def test_every_compiled_flow_round_trips():
    for mode in ("gre", "vlan", "flat"):
        n = l2.mknet(mode)
        a = l2.port(n, l2.H1, 5, "fa:16:3e:00:00:01", "10.0.0.1",
                    allowed_address_pairs=(("10.1.0.0/24", "fa:16:3e:00:00:51"),))
        b = l2.port(n, l2.H2, 5, "fa:16:3e:00:00:02", "10.0.0.2")
        flows = [f for fl in compile_all(make_world([l2.H1, l2.H2], [n], [a, b])).values() for f in fl]
        assert len(flows) > 20
        for f in flows:
            assert round_trip(f) == f, str(f)


LATER_CONCERNS = [
    Flow("br-int", 21, 200, match(reg5=5, eth_type=0x0800, ip_proto=17, udp_src=68, udp_dst=67),
         (("meter", 7), ("controller", 0xffff)), 0x0400000000000001),
    Flow("br-int", 40, 100, match(metadata=3, eth_dst="fa:16:3e:aa:bb:cc", eth_type=0x0800,
                                  ipv4_dst=("10.0.1.0", "255.255.255.0")),
         (("set_field", "eth_src", "fa:16:3e:aa:bb:cc"), ("dec_ttl",),
          ("write_metadata", 4, reference.ALL_ONES), ("goto", 45)), 0x05000000000000aa),
    Flow("br-int", 45, 100, match(eth_type=0x0800, ct_state=(0x22, 0x22)),
         (ct(commit=True, zone=9, table=50, nat={"flags": 1, "ipv4_min": "192.0.2.10",
                                                  "ipv4_max": "192.0.2.10"}),), 0x0600000000000001),
    Flow("br-int", 45, 90, match(eth_type=0x0800), (ct(zone=9, table=46, nat={"flags": 0}),
                                                     ("resubmit", None, 50)), 0x0600000000000001),
    Flow("br-int", 50, 100, match(metadata=3, eth_type=0x86dd, ipv6_src="fe80::1"),
     (("move", "eth_src", "eth_dst", 48), ("output", "in_port")), 0x0300000000000002, idle_timeout=30),
]


def test_later_concerns_actions_round_trip():
    for f in LATER_CONCERNS:
        assert round_trip(f) == f, str(f)


def test_delete_is_strict_and_limited_to_the_cookie():
    f = Flow("br-int", 50, 100, match(metadata=1, eth_dst="fa:16:3e:00:00:01"), (), 0x0311)
    m = reference.flow_mod(DP, f, reference.DELETE)
    assert m.command == ofp.OFPFC_DELETE_STRICT
    assert (m.cookie, m.cookie_mask) == (0x0311, reference.ALL_ONES)


def test_meter_mod():
    m = reference.meter_mod(DP, Meter("br-int", 3, 50, 10))
    m.set_xid(1)
    m.serialize()
    assert m.bands[0].rate == 50 and m.flags & ofp.OFPMF_PKTPS


def test_match_bytes_equal_os_kens_own_encoding():
    """wire.py writes exactly what OFPMatch would (field order: prerequisites
    first, or OVS refuses the flow with BAD_PREREQ)."""
    m = match(reg5=5, eth_src="fa:16:3e:00:00:01", eth_type=0x0806, arp_sha="fa:16:3e:00:00:01",
              arp_spa=("10.1.0.0", "255.255.255.0"), metadata=3)
    b = bytearray()
    parser.OFPMatch(**dict(m)).serialize(b, 0)
    assert oxm.match_bytes(m) == bytes(b)


# --- wire.py: our bytes == os-ken's bytes, decode(encode(f)) == f ----------------------

def every_flow_shape() -> list[Flow]:
    """The flows every compiler produces on small but complete worlds (L2 in
    each mode, DHCP, metadata, L3 with SNAT and a floating IP on a gateway
    node), plus the hand-written actions of test_later_concerns_actions_round_trip."""
    from tests.unit import test_dhcp_flows as dhcp
    from tests.unit import test_l3_flows as l3
    from controller.flows.metadata import compile_metadata
    from controller.model.settings import Settings
    from tests.unit.test_metadata_flows import S
    flows = []
    for mode in ("gre", "vlan", "flat"):
        n = l2.mknet(mode)
        a = l2.port(n, l2.H1, 5, "fa:16:3e:00:00:01", "10.0.0.1",
                    allowed_address_pairs=(("10.1.0.0/24", "fa:16:3e:00:00:51"),))
        b = l2.port(n, l2.H2, 5, "fa:16:3e:00:00:02", "10.0.0.2")
        w = make_world([l2.H1, l2.H2], [n], [a, b])
        flows += [f for fl in compile_all(w).values() for f in fl]
        wm = dataclasses.replace(w, metadata_indexes={a.id: 5, b.id: 6})
        wm = dataclasses.replace(wm, settings=Settings(metadata=S))
        flows += [f for nd in wm.nodes.values() for f in compile_metadata(wm, nd)]
    for mode in ("gre", "vlan"):
        topo = l3.Topo(mode, gateway=True, fip=True)
        flows += [f for fl in compile_all(topo.world).values() for f in fl]
    flows += [f for fl in compile_all(dhcp.world()).values() for f in fl]
    flows += LATER_CONCERNS
    shapes = {}
    for f in flows:                  # one flow per (table, match fields, action ops) shape
        shape = (f.bridge, f.table, tuple(k for k, _ in f.match), tuple(a[0] for a in f.actions))
        shapes.setdefault(shape, []).append(f)
    return [f for fs in shapes.values() for f in fs[:3]]


def _os_ken_bytes(msg, xid) -> bytes:
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def test_enough_shapes_are_checked():
    shapes = every_flow_shape()
    tables = {(f.bridge, f.table) for f in shapes}
    ops = {a[0] for f in shapes for a in f.actions}
    assert len(shapes) > 60 and len(tables) > 12
    assert {"output", "set_field", "push_vlan", "pop_vlan", "move", "goto", "write_metadata",
            "meter", "controller", "ct", "dec_ttl", "resubmit"} <= ops


def test_flow_mod_bytes_equal_os_kens_encoding_for_every_flow_shape():
    for i, f in enumerate(every_flow_shape()):
        for cmd in (reference.ADD, reference.MODIFY, reference.DELETE):
            xid = 1000 + i
            assert wire.flow_mod_bytes(f, cmd, xid) == _os_ken_bytes(reference.flow_mod(DP, f, cmd), xid), \
                (cmd, str(f))


def test_bundle_messages_equal_os_kens_encoding():
    flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
    for i, f in enumerate(every_flow_shape()[:40]):
        want = _os_ken_bytes(parser.ONFBundleAddMsg(DP, 7, flags, reference.flow_mod(DP, f), []), 50 + i)
        assert wire.bundle_add_bytes(f, reference.ADD, 50 + i, 7, flags) == want, str(f)
    for ctrl in (ofp.ONF_BCT_OPEN_REQUEST, ofp.ONF_BCT_COMMIT_REQUEST, ofp.ONF_BCT_DISCARD_REQUEST):
        want = _os_ken_bytes(parser.ONFBundleCtrlMsg(DP, 7, ctrl, flags, []), 9)
        assert wire.bundle_ctrl_bytes(7, ctrl, flags, 9) == want
    assert wire.barrier_bytes(5) == _os_ken_bytes(parser.OFPBarrierRequest(DP), 5)


def stats_entry(f: Flow, packets=7, nbytes=700) -> bytes:
    """What a switch would report for `f`: ofp_flow_stats with the flow_mod's
    match and instructions."""
    fm = wire.flow_mod_bytes(f, reference.ADD, 1)
    tail = fm[48:]
    return struct.pack("!HBxIIHHHH4xQQQ", 48 + len(tail), f.table, 3, 500, f.priority, f.idle_timeout,
                       0, 0, f.cookie, packets, nbytes) + tail


def test_raw_decode_equals_os_ken_decode_and_the_original_flow():
    for f in every_flow_shape():
        raw = stats_entry(f)
        ours = wire.decode_flow_stats_entry(f.bridge, raw)
        theirs = reference.decode_flow_stats_os_ken(f.bridge, parser.OFPFlowStats.parser(raw, 0))
        assert ours == theirs == f, str(f)
        assert ours.idle_timeout == f.idle_timeout


def test_ipv6_matches_are_read_back_without_os_kens_parser(monkeypatch):
    """IPv6 anti-spoofing flows (one per port) decode on the fast path: os-ken's
    parser, the fallback, cost a third of a 10,000-flow read-back."""
    def fallback(*_a):
        raise AssertionError("os-ken fallback used")
    monkeypatch.setattr(reference, "decode_flow_stats_os_ken", fallback)
    for ip in ("fe80::f816:3eff:fe00:1", ("fe80::", "ffc0::"), "2001:db8::10"):
        f = Flow("br-int", 10, 100, match(reg5=5, eth_src="fa:16:3e:00:00:01", eth_type=0x86dd, ipv6_src=ip),
                 (("goto", 20),), 0x0300000000000002)
        assert wire.decode_flow_stats_entry(f.bridge, stats_entry(f)) == f


def test_flow_stats_reply_kept_as_bytes_and_parsed_on_demand():
    """With install_raw_flow_stats os-ken keeps each entry's bytes; the
    reconciler decodes them with wire.py, other readers (the console) still
    see OFPFlowStats attributes."""
    osken_patches.raw_flow_stats()
    flows = every_flow_shape()[:20]
    body = b"".join(stats_entry(f, packets=i) for i, f in enumerate(flows))
    head = struct.pack("!BBHIHH4x", ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, 16 + len(body), 77,
                       ofp.OFPMP_FLOW, 0)
    msg = parser.msg_parser(DP, ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, 16 + len(body), 77,
                            bytearray(head + body))
    assert isinstance(msg, parser.OFPFlowStatsReply) and len(msg.body) == len(flows)
    for i, (st, f) in enumerate(zip(msg.body, flows)):
        assert isinstance(st, wire.RawFlowStats)
        assert st.cookie == f.cookie
        assert wire.decode_flow_stats(f.bridge, st) == f
        assert (st.packet_count, st.byte_count, st.duration_sec, st.table_id) == (i, 700, 3, f.table)
        assert dict(st.match.items()) == dict(parser.OFPMatch(**dict(f.match)).items())


def test_packet_out_bytes_are_os_kens():
    data = bytes(range(60))
    msg = parser.OFPPacketOut(DP, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                              actions=[parser.OFPActionOutput(7, 0)], data=data)
    msg.set_xid(wire.PACKET_OUT_XID)
    msg.serialize()
    assert wire.packet_out_bytes(7, data) == bytes(msg.buf)


def _packet_in_bytes(match_bytes: bytes, data: bytes, total_len=None) -> bytes:
    body = struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER, len(data) if total_len is None else total_len,
                       ofp.OFPR_ACTION, 21, 0xAB00_0000_0000_0001) + match_bytes + b"\0\0" + data
    return struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, 8 + len(body), 9) + body


def _ofp_match(**fields) -> bytes:
    buf = bytearray()
    parser.OFPMatch(**fields).serialize(buf, 0)
    return bytes(buf)


def test_lean_packet_in_reads_what_os_ken_reads():
    data = bytes(range(200))
    for fields, total_len in (({"in_port": 5}, None),
                              ({"in_port": 5, "reg5": 1, "metadata": 7, "tunnel_id": 9}, None),
                              ({"in_port": 3, "eth_dst": "fa:16:3e:00:00:01"}, 100)):   # truncated to total_len
        raw = _packet_in_bytes(_ofp_match(**fields), data, total_len)
        ours = wire.OFPPacketIn.parser(DP, ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, len(raw), 9, bytearray(raw))
        ref = parser.OFPPacketIn.parser(DP, ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, len(raw), 9, bytearray(raw))
        assert type(ours) is wire.OFPPacketIn and type(ours).__name__ == "OFPPacketIn"
        for attr in ("buffer_id", "total_len", "reason", "table_id", "cookie", "xid"):
            assert getattr(ours, attr) == getattr(ref, attr), attr
        assert bytes(ours.data) == bytes(ref.data)
        assert ours.match == dict(ref.match.items())
        assert ours.match.get("in_port") == fields["in_port"]


def test_lean_packet_in_falls_back_to_os_ken_for_a_field_it_does_not_decode():
    raw = _packet_in_bytes(_ofp_match(in_port=5, tun_ipv4_src="192.0.2.1"), b"\x01" * 20)
    msg = wire.OFPPacketIn.parser(DP, ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, len(raw), 9, bytearray(raw))
    assert msg.match.get("in_port") == 5 and bytes(msg.data) == b"\x01" * 20
