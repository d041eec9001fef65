"""Parse a DHCP client message from the raw Ethernet frame of a packet-in.

`parse(frame)` returns a `DhcpRequest` or raises `Malformed(reason)`; the
reason is a short code the app counts (drops by reason). Only `Malformed`
ever leaves this module: every read is bounds-checked, and `parse` also turns
any unexpected error into `Malformed("internal")`, so a hostile frame cannot
take the packet-in handler down.

Checksums are not verified: with checksum offload a VM's UDP checksum is
often left unfilled (docs/LAB.md section 3), and the frame came straight from a
local port, not from a lossy wire.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from controller.dhcp import options as opt
from controller.protocols import DHCP_CLIENT_PORT as CLIENT_PORT
from controller.protocols import DHCP_SERVER_PORT as SERVER_PORT
from controller.protocols import ETH_TYPE_8021Q, ETH_TYPE_IP, IPPROTO_UDP

ETH_HEADER = 14
BOOTP_FIXED = 236             # op .. file, before the magic cookie
MAGIC_COOKIE = b"\x63\x82\x53\x63"
# Largest frame we accept: a 1500-byte IP packet plus an Ethernet header and
# one VLAN tag. Clients' DHCP messages are a few hundred bytes.
MAX_FRAME = 1518
BOOTREQUEST = 1


class Malformed(Exception):
    """The frame is not a DHCP client message we serve; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DhcpRequest:
    msg_type: int
    xid: int
    secs: int
    flags: int
    ciaddr: str
    yiaddr: str
    giaddr: str
    chaddr: str                     # client MAC "aa:bb:cc:dd:ee:ff" (from the BOOTP header)
    chaddr_raw: bytes               # the 16 raw bytes, echoed in replies
    eth_src: str
    ip_src: str
    ip_dst: str
    options: dict[int, bytes] = field(default_factory=dict, compare=False)

    @property
    def broadcast_flag(self) -> bool:
        return bool(self.flags & 0x8000)

    @property
    def requested_ip(self) -> str | None:
        v = self.options.get(opt.REQUESTED_IP)
        return _ip(v) if v is not None and len(v) == 4 else None

    @property
    def server_id(self) -> str | None:
        v = self.options.get(opt.SERVER_ID)
        return _ip(v) if v is not None and len(v) == 4 else None

    @property
    def parameter_request_list(self) -> tuple[int, ...]:
        return tuple(self.options.get(opt.PARAMETER_REQUEST_LIST, b""))

    @property
    def max_message_size(self) -> int | None:
        v = self.options.get(opt.MAX_MESSAGE_SIZE)
        return struct.unpack("!H", v)[0] if v is not None and len(v) == 2 else None

    @property
    def type_name(self) -> str:
        return opt.MESSAGE_TYPE_NAMES.get(self.msg_type, str(self.msg_type))


def parse(frame: bytes) -> DhcpRequest:
    try:
        return _parse(bytes(frame))
    except Malformed:
        raise
    except Exception:   # a bug of ours must not become a crash either
        raise Malformed("internal") from None


def _parse(frame: bytes) -> DhcpRequest:
    if len(frame) > MAX_FRAME:
        raise Malformed("too_big")
    if len(frame) < ETH_HEADER:
        raise Malformed("truncated_ethernet")
    eth_src = _mac(frame[6:12])
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    off = ETH_HEADER
    if ethertype == ETH_TYPE_8021Q:        # one 802.1Q tag at most
        if len(frame) < off + 4:
            raise Malformed("truncated_ethernet")
        ethertype = struct.unpack_from("!H", frame, off + 2)[0]
        off += 4
    if ethertype != ETH_TYPE_IP:
        raise Malformed("not_ipv4")

    # IPv4
    if len(frame) < off + 20:
        raise Malformed("truncated_ip")
    ver_ihl = frame[off]
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < 20:
        raise Malformed("bad_ip_header")
    total_len = struct.unpack_from("!H", frame, off + 2)[0]
    if total_len < ihl + 8 or off + total_len > len(frame):
        raise Malformed("truncated_ip")
    frag = struct.unpack_from("!H", frame, off + 6)[0]
    if frag & 0x3FFF:                      # MF set or a non-zero offset
        raise Malformed("fragment")
    if frame[off + 9] != IPPROTO_UDP:
        raise Malformed("not_udp")
    ip_src = _ip(frame[off + 12:off + 16])
    ip_dst = _ip(frame[off + 16:off + 20])
    ip_end = off + total_len                # ignore Ethernet padding after the IP packet
    off += ihl

    # UDP
    sport, dport, udp_len = struct.unpack_from("!HHH", frame, off)
    if sport != CLIENT_PORT or dport != SERVER_PORT:
        raise Malformed("wrong_ports")
    if udp_len < 8 or off + udp_len > ip_end:
        raise Malformed("bad_udp_length")
    end = off + udp_len
    off += 8

    # BOOTP fixed header + magic cookie
    if end - off < BOOTP_FIXED + 4:
        raise Malformed("truncated_bootp")
    op, htype, hlen, _hops, xid, secs, flags = struct.unpack_from("!BBBBIHH", frame, off)
    if op != BOOTREQUEST:
        raise Malformed("not_bootrequest")
    if htype != 1 or hlen != 6:
        raise Malformed("not_ethernet_client")
    ciaddr, yiaddr, _siaddr, giaddr = (_ip(frame[off + i:off + i + 4]) for i in (12, 16, 20, 24))
    chaddr_raw = frame[off + 28:off + 44]
    sname = frame[off + 44:off + 108]
    file_ = frame[off + 108:off + 236]
    if frame[off + 236:off + 240] != MAGIC_COOKIE:
        raise Malformed("no_magic_cookie")

    options = _options(frame[off + 240:end], sname, file_)
    mt = options.get(opt.MESSAGE_TYPE)
    if mt is None:
        raise Malformed("no_message_type")
    if len(mt) != 1 or mt[0] not in opt.CLIENT_MESSAGE_TYPES:
        raise Malformed("bad_message_type")
    return DhcpRequest(msg_type=mt[0], xid=xid, secs=secs, flags=flags, ciaddr=ciaddr,
                       yiaddr=yiaddr, giaddr=giaddr, chaddr=_mac(chaddr_raw[:6]),
                       chaddr_raw=chaddr_raw, eth_src=eth_src, ip_src=ip_src, ip_dst=ip_dst,
                       options=options)


def _options(data: bytes, sname: bytes, file_: bytes) -> dict[int, bytes]:
    """Options area, then 'file' and 'sname' if option 52 says they are
    overloaded (RFC 2131 4.1). Repeated options are concatenated (RFC 3396)."""
    found: dict[int, bytes] = {}
    _walk(data, found)
    overload = found.get(opt.OPTION_OVERLOAD)
    if overload is not None:
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            raise Malformed("bad_option_overload")
        if overload[0] & 1:
            _walk(file_, found)
        if overload[0] & 2:
            _walk(sname, found)
    return found


def _walk(data: bytes, found: dict[int, bytes]) -> None:
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == opt.PAD:
            i += 1
            continue
        if code == opt.END:
            return
        if i + 1 >= n:
            raise Malformed("bad_option_length")
        length = data[i + 1]
        if i + 2 + length > n:
            raise Malformed("bad_option_length")
        found[code] = found.get(code, b"") + data[i + 2:i + 2 + length]
        i += 2 + length
    # No END option: tolerated (some embedded clients omit it) as long as
    # every option was complete.


def _ip(b: bytes) -> str:
    return socket.inet_ntoa(b)          # callers pass exactly 4 bytes


def _mac(b: bytes) -> str:
    return b.hex(":")
