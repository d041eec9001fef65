"""The DHCP codec against scapy: client frames scapy builds parse to the
right fields; replies we build decode in scapy to what we meant; hostile
input is refused with a reason and never raises anything else."""
from __future__ import annotations

import random
import struct

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from controller.dhcp import options as opt
from controller.dhcp import packet, reply
from controller.dhcp.packet import Malformed, parse
from tests.unit.test_dhcp_helpers import VM_MAC, client_frame


@pytest.mark.parametrize("name,code", [("discover", 1), ("request", 3), ("decline", 4),
                                       ("release", 7), ("inform", 8)])
def test_parses_every_client_message_type(name, code):
    req = parse(client_frame(name, xid=0xdeadbeef, flags=0x8000,
                             options=[("requested_addr", "10.0.0.5"),
                                      ("server_id", "10.0.0.2"),
                                      ("param_req_list", [1, 3, 6, 121, 26]),
                                      ("max_dhcp_size", 1400),
                                      ("hostname", b"vm1")]))
    assert req.msg_type == code and req.type_name == name
    assert req.xid == 0xdeadbeef
    assert req.broadcast_flag
    assert req.chaddr == VM_MAC and req.eth_src == VM_MAC
    assert req.requested_ip == "10.0.0.5"
    assert req.server_id == "10.0.0.2"
    assert req.parameter_request_list == (1, 3, 6, 121, 26)
    assert req.max_message_size == 1400
    assert req.options[opt.HOSTNAME] == b"vm1"
    assert req.ip_dst == "255.255.255.255"


def test_parses_a_renewal_and_a_vlan_tagged_frame():
    f = client_frame("request", ciaddr="10.0.0.5", src="10.0.0.5", dst="10.0.0.2")
    req = parse(f)
    assert (req.ciaddr, req.ip_src, req.ip_dst) == ("10.0.0.5", "10.0.0.5", "10.0.0.2")
    assert req.requested_ip is None and req.server_id is None
    tagged = f[:12] + struct.pack("!HH", 0x8100, 5) + f[12:]
    assert parse(tagged).ciaddr == "10.0.0.5"


def test_ethernet_padding_after_the_ip_packet_is_ignored():
    assert parse(client_frame() + bytes(60)).msg_type == opt.DISCOVER


def test_split_options_are_concatenated_and_overload_is_read():
    # RFC 3396: a parameter request list sent in two pieces.
    f = bytes(Ether(src=VM_MAC) / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
              / BOOTP(chaddr=bytes.fromhex("fa163e000011"))
              / DHCP(options=[("message-type", "discover"), ("param_req_list", [1, 3]),
                              ("param_req_list", [121]), "end"]))
    assert parse(f).parameter_request_list == (1, 3, 121)
    # Option 52 = 1: more options in the 'file' field.
    file_ = bytes((opt.REQUESTED_IP, 4, 10, 0, 0, 9, 255)).ljust(128, b"\0")
    f = bytes(Ether(src=VM_MAC) / IP() / UDP(sport=68, dport=67)
              / BOOTP(chaddr=bytes.fromhex("fa163e000011"), file=file_)
              / DHCP(options=[("message-type", "discover"), (52, b"\x01"), "end"]))
    assert parse(f).requested_ip == "10.0.0.9"


def _reason(frame) -> str:
    with pytest.raises(Malformed) as e:
        parse(frame)
    return e.value.reason


def test_refuses_with_a_reason():
    good = client_frame()
    assert _reason(b"") == "truncated_ethernet"
    assert _reason(good[:13]) == "truncated_ethernet"
    assert _reason(good[:12] + b"\x86\xdd" + good[14:]) == "not_ipv4"
    assert _reason(good[:12] + b"\x08\x06" + good[14:]) == "not_ipv4"
    assert _reason(good[:30]) == "truncated_ip"
    assert _reason(good[:200]) == "truncated_ip"      # IP total length > frame
    assert _reason(good + bytes(packet.MAX_FRAME)) == "too_big"
    assert _reason(bytes(Ether() / IP() / UDP(sport=68, dport=68) / BOOTP() / DHCP(options=["end"]))) \
        == "wrong_ports"
    assert _reason(bytes(Ether() / IP() / UDP(sport=67, dport=67) / BOOTP())) == "wrong_ports"
    assert _reason(bytes(Ether() / IP(proto=6) / UDP(sport=68, dport=67))) == "not_udp"
    assert _reason(bytes(Ether() / IP(flags="MF") / UDP(sport=68, dport=67) / BOOTP())) == "fragment"
    assert _reason(bytes(Ether() / IP(ihl=4) / UDP(sport=68, dport=67) / BOOTP())) == "bad_ip_header"
    assert _reason(bytes(Ether() / IP() / UDP(sport=68, dport=67) / Raw(bytes(239)))) == "truncated_bootp"
    no_cookie = bytes(Ether() / IP() / UDP(sport=68, dport=67) / BOOTP(options=b"XXXX\x35\x01\x01\xff"))
    assert _reason(no_cookie) == "no_magic_cookie"
    reply_op = bytes(Ether() / IP() / UDP(sport=68, dport=67) / BOOTP(op=2)
                     / DHCP(options=[("message-type", "offer"), "end"]))
    assert _reason(reply_op) == "not_bootrequest"
    assert _reason(bytes(Ether() / IP() / UDP(sport=68, dport=67) / BOOTP(hlen=16)
                         / DHCP(options=[("message-type", "discover"), "end"]))) == "not_ethernet_client"
    assert _reason(bytes(Ether() / IP() / UDP(sport=68, dport=67) / BOOTP()
                         / DHCP(options=[("hostname", b"x"), "end"]))) == "no_message_type"
    assert _reason(client_frame("offer")) == "bad_message_type"
    assert _reason(client_frame("ack")) == "bad_message_type"


def _with_options(raw: bytes) -> bytes:
    """A discover whose option bytes (after the cookie) are exactly `raw`."""
    return bytes(Ether(src=VM_MAC) / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
                 / BOOTP(chaddr=bytes.fromhex("fa163e000011"), options=packet.MAGIC_COOKIE + raw))


def test_option_lengths_are_bounds_checked():
    assert parse(_with_options(b"\x35\x01\x01\xff")).msg_type == opt.DISCOVER
    assert parse(_with_options(b"\x35\x01\x01")).msg_type == opt.DISCOVER      # no END: tolerated
    assert parse(_with_options(b"\x00\x00\x35\x01\x01\xff\x35")).msg_type == 1  # after END: ignored
    assert _reason(_with_options(b"\x35\x01\x01\x37\xff\x01\x02\xff")) == "bad_option_length"
    assert _reason(_with_options(b"\x35\x01\x01\x0c")) == "bad_option_length"   # code, no length
    assert _reason(_with_options(b"\x35\x02\x01\x01\xff")) == "bad_message_type"
    assert _reason(_with_options(b"\x35\x00\xff")) == "bad_message_type"
    assert _reason(_with_options(b"\x35\x01\x01\x34\x01\x07\xff")) == "bad_option_overload"
    # A short server id or requested address is ignored, not misread.
    req = parse(_with_options(b"\x35\x01\x03\x32\x03\x0a\x00\x00\x36\x02\x0a\x00\xff"))
    assert req.requested_ip is None and req.server_id is None


def test_udp_length_must_fit_in_the_ip_packet():
    f = bytearray(client_frame())
    struct.pack_into("!H", f, 14 + 20 + 4, 5000)
    assert _reason(bytes(f)) == "bad_udp_length"
    struct.pack_into("!H", f, 14 + 20 + 4, 7)
    assert _reason(bytes(f)) == "bad_udp_length"


def test_option_121_encoding_rfc3442_examples():
    # RFC 3442 section 3 examples of destination encodings.
    enc = opt.classless_routes([("0.0.0.0/0", "10.0.0.1"), ("10.0.0.0/8", "10.0.0.1"),
                                ("10.17.0.0/16", "10.0.0.1"), ("10.27.129.0/24", "10.0.0.1"),
                                ("10.229.0.128/25", "10.0.0.1"), ("10.198.122.47/32", "10.0.0.1")])
    gw = bytes((10, 0, 0, 1))
    assert enc == (b"\x00" + gw + b"\x08\x0a" + gw + b"\x10\x0a\x11" + gw
                   + b"\x18\x0a\x1b\x81" + gw + b"\x19\x0a\xe5\x00\x80" + gw
                   + b"\x20\x0a\xc6\x7a\x2f" + gw)
    assert opt.decode_classless_routes(enc)[0] == ("0.0.0.0/0", "10.0.0.1")
    assert opt.decode_classless_routes(enc)[-1] == ("10.198.122.47/32", "10.0.0.1")
    with pytest.raises(ValueError):
        opt.decode_classless_routes(b"\x21" + bytes(8))


def test_long_options_are_split_rfc3396():
    wire = opt.encode_options({opt.CLASSLESS_ROUTES: bytes(300)})
    assert wire[:2] == bytes((121, 255)) and wire[257:259] == bytes((121, 45)) and wire[-1] == 255
    found = {}
    packet._walk(wire, found)
    assert found[121] == bytes(300)


def test_reply_frame_decodes_in_scapy_with_valid_checksums():
    req = parse(client_frame(xid=77, flags=0))
    f = reply.build(req, opt.OFFER, yiaddr="10.0.0.5", ciaddr="0.0.0.0", server_ip="10.0.0.2",
                    server_mac="fa:16:3e:00:00:02", options=opt.encode_options({opt.SERVER_ID: opt.ip4("10.0.0.2")}))
    p = Ether(f)
    assert (p.src, p.dst) == ("fa:16:3e:00:00:02", VM_MAC)
    assert (p[IP].src, p[IP].dst, p[UDP].sport, p[UDP].dport) == ("10.0.0.2", "10.0.0.5", 67, 68)
    assert p[BOOTP].op == 2 and p[BOOTP].xid == 77 and p[BOOTP].yiaddr == "10.0.0.5"
    assert p[BOOTP].chaddr[:6] == bytes.fromhex("fa163e000011")
    assert len(bytes(p[BOOTP])) >= reply.BOOTP_MIN
    # Recompute the checksums with scapy and compare.
    ip_sum, udp_sum = p[IP].chksum, p[UDP].chksum
    del p[IP].chksum, p[UDP].chksum
    q = Ether(bytes(p))
    assert (q[IP].chksum, q[UDP].chksum) == (ip_sum, udp_sum)


def test_fuzz_thousands_of_mutated_packets_never_raise_anything_but_malformed():
    rng = random.Random(8)
    seeds = [client_frame(t, options=[("param_req_list", [1, 3, 6, 121]),
                                      ("requested_addr", "10.0.0.5"), ("server_id", "10.0.0.2")])
             for t in ("discover", "request", "inform", "release", "decline")]
    seeds.append(bytes(Ether() / Dot1Q(vlan=3) / IP() / UDP(sport=68, dport=67) / BOOTP()
                       / DHCP(options=[("message-type", "request"), "end"])))
    parsed = refused = 0
    for i in range(6000):
        f = bytearray(rng.choice(seeds))
        kind = i % 6
        if kind == 0:                 # flip random bytes anywhere
            for _ in range(rng.randint(1, 8)):
                f[rng.randrange(len(f))] = rng.randrange(256)
        elif kind == 1:               # truncate
            f = f[:rng.randrange(len(f))]
        elif kind == 2:               # garbage options after the cookie
            start = 14 + 20 + 8 + 240
            f = f[:start] + bytes(rng.randrange(256) for _ in range(rng.randrange(400)))
        elif kind == 3:               # lie in the length fields
            struct.pack_into("!H", f, 16, rng.randrange(65536))
            struct.pack_into("!H", f, 38, rng.randrange(65536))
        elif kind == 4:               # random bytes, random size (incl. giant)
            f = bytearray(rng.randbytes(rng.choice([0, 1, 60, 300, 1600, 9000])))
        else:                         # fuzz only the option area, keep headers sane
            start = 14 + 20 + 8 + 240
            for _ in range(rng.randint(1, 6)):
                if len(f) > start:
                    f[rng.randrange(start, len(f))] = rng.randrange(256)
        try:
            req = parse(bytes(f))
            parsed += 1
            assert req.msg_type in opt.CLIENT_MESSAGE_TYPES
        except Malformed as e:
            refused += 1
            assert e.reason != "internal", bytes(f).hex()
    assert parsed and refused and parsed + refused == 6000
