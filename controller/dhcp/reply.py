"""Build a server reply frame: Ethernet / IPv4 / UDP 67->68 / BOOTP.

Where the reply goes follows RFC 2131 4.1 (no relay agents here, giaddr is 0):
  - DHCPNAK: broadcast;
  - the client has an address (ciaddr set: renew, rebind, inform): unicast to it;
  - the client set the broadcast bit: broadcast;
  - otherwise: unicast to chaddr / yiaddr (the client accepts an IP packet
    for an address it does not have yet).
The packet-out only goes to the client's own port, so "broadcast" never
reaches another VM.
"""
from __future__ import annotations

import struct

from controller.dhcp import options as opt
from controller.dhcp.packet import CLIENT_PORT, MAGIC_COOKIE, SERVER_PORT, DhcpRequest
from controller.protocols import ETH_TYPE_IP, IPPROTO_UDP

BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
BROADCAST_IP = "255.255.255.255"
ZERO_IP = "0.0.0.0"
BOOTP_MIN = 300          # RFC 1542: some old clients drop shorter BOOTP messages
BOOTREPLY = 2


def destination(req: DhcpRequest, msg_type: int, yiaddr: str) -> tuple[str, str]:
    """-> (eth_dst, ip_dst) of the reply."""
    if msg_type == opt.NAK:
        return BROADCAST_MAC, BROADCAST_IP
    if req.ciaddr != ZERO_IP:
        return req.chaddr, req.ciaddr
    if req.broadcast_flag or yiaddr == ZERO_IP:
        return BROADCAST_MAC, BROADCAST_IP
    return req.chaddr, yiaddr


def build(req: DhcpRequest, msg_type: int, *, yiaddr: str, ciaddr: str,
          server_ip: str, server_mac: str, options: bytes) -> bytes:
    """The whole frame. `options`: encoded (options.encode_options), without
    53 (added first here)."""
    eth_dst, ip_dst = destination(req, msg_type, yiaddr)
    bootp = (struct.pack("!BBBBIHH", BOOTREPLY, 1, 6, 0, req.xid, 0, req.flags)
             + opt.ip4(ciaddr) + opt.ip4(yiaddr) + opt.ip4(ZERO_IP) + opt.ip4(req.giaddr)
             + req.chaddr_raw.ljust(16, b"\0")[:16]
             + bytes(64 + 128)                       # sname, file
             + MAGIC_COOKIE + bytes((opt.MESSAGE_TYPE, 1, msg_type)) + options)
    bootp = bootp.ljust(BOOTP_MIN, b"\0")
    return ethernet(eth_dst, server_mac, ipv4_udp(server_ip, ip_dst, bootp))


def ipv4_udp(src: str, dst: str, payload: bytes) -> bytes:
    udp_len = 8 + len(payload)
    pseudo = opt.ip4(src) + opt.ip4(dst) + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", SERVER_PORT, CLIENT_PORT, udp_len, 0) + payload
    csum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0x10, 20 + udp_len, 0, 0, 64, IPPROTO_UDP, 0,
                         opt.ip4(src), opt.ip4(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + udp


def ethernet(dst: str, src: str, payload: bytes) -> bytes:
    return _mac(dst) + _mac(src) + struct.pack("!H", ETH_TYPE_IP) + payload


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _mac(m: str) -> bytes:
    return bytes.fromhex(m.replace(":", ""))
