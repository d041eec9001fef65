"""Flow -> OFPFlowMod bytes -> parsed back -> Flow gives the same Flow, for
every flow the compilers produce and for the actions later concerns use."""
import types

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.flows import ofcodec
from controller.flows.flow import Flow, Meter, ct, match
from tests.unit.fakeoftable import compile_all, make_world
from tests.unit import test_flows_l2 as l2

DP = types.SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1)


def round_trip(f: Flow) -> Flow:
    msg = ofcodec.flow_mod(DP, f)
    msg.set_xid(1)
    msg.serialize()
    back = parser.OFPFlowMod.parser(DP, ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, len(msg.buf), 1, bytes(msg.buf))
    st = types.SimpleNamespace(table_id=back.table_id, priority=back.priority, match=back.match,
                               instructions=back.instructions, cookie=back.cookie,
                               idle_timeout=back.idle_timeout)
    return ofcodec.decode_flow_stats(f.bridge, st)


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


def test_later_concerns_actions_round_trip():
    flows = [
        Flow("br-int", 21, 200, match(reg5=5, eth_type=0x0800, ip_proto=17, udp_src=68, udp_dst=67),
             (("meter", 7), ("controller", 0xffff)), 0x0400000000000001),
        Flow("br-int", 40, 100, match(metadata=3, eth_dst="fa:16:3e:aa:bb:cc", eth_type=0x0800,
                                      ipv4_dst=("10.0.1.0", "255.255.255.0")),
             (("set_field", "eth_src", "fa:16:3e:aa:bb:cc"), ("dec_ttl",),
              ("write_metadata", 4, ofcodec.ALL_ONES), ("goto", 45)), 0x05000000000000aa),
        Flow("br-int", 45, 100, match(eth_type=0x0800, ct_state=(0x22, 0x22)),
             (ct(commit=True, zone=9, table=50, nat={"flags": 1, "ipv4_min": "192.0.2.10",
                                                      "ipv4_max": "192.0.2.10"}),), 0x0600000000000001),
        Flow("br-int", 45, 90, match(eth_type=0x0800), (ct(zone=9, table=46, nat={"flags": 0}),
                                                         ("resubmit", None, 50)), 0x0600000000000001),
    ]
    for f in flows:
        assert round_trip(f) == f, str(f)


def test_delete_is_strict_and_limited_to_the_cookie():
    f = Flow("br-int", 50, 100, match(metadata=1, eth_dst="fa:16:3e:00:00:01"), (), 0x0311)
    m = ofcodec.flow_mod(DP, f, ofcodec.DELETE)
    assert m.command == ofp.OFPFC_DELETE_STRICT
    assert (m.cookie, m.cookie_mask) == (0x0311, ofcodec.ALL_ONES)


def test_meter_mod():
    m = ofcodec.meter_mod(DP, Meter("br-int", 3, 50, 10))
    m.set_xid(1)
    m.serialize()
    assert m.bands[0].rate == 50 and m.flags & ofp.OFPMF_PKTPS


def test_raw_match_bytes_equal_os_kens_own_encoding():
    """The cached fast path writes exactly what OFPMatch would (field order:
    prerequisites first, or OVS refuses the flow with BAD_PREREQ)."""
    m = match(reg5=5, eth_src="fa:16:3e:00:00:01", eth_type=0x0806, arp_sha="fa:16:3e:00:00:01",
              arp_spa=("10.1.0.0", "255.255.255.0"), metadata=3)
    a, b = bytearray(), bytearray()
    ofcodec._RawMatch(m).serialize(a, 0)
    parser.OFPMatch(**dict(m)).serialize(b, 0)
    assert a == b
