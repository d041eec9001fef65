"""DHCP option codes (RFC 2132 and friends) and the encoders of option values.

Everything here returns bytes and never looks at a packet; `encode_options`
turns an ordered {code: value bytes} into the wire form, splitting values
longer than 255 bytes into several instances of the same option (RFC 3396).
"""
from __future__ import annotations

import ipaddress
import socket
import struct

PAD = 0
SUBNET_MASK = 1
ROUTER = 3
DNS_SERVERS = 6
HOSTNAME = 12
DOMAIN_NAME = 15
INTERFACE_MTU = 26
BROADCAST_ADDRESS = 28
REQUESTED_IP = 50
LEASE_TIME = 51
OPTION_OVERLOAD = 52
MESSAGE_TYPE = 53
SERVER_ID = 54
PARAMETER_REQUEST_LIST = 55
MESSAGE = 56
MAX_MESSAGE_SIZE = 57
RENEWAL_TIME = 58      # T1
REBINDING_TIME = 59    # T2
CLIENT_ID = 61
CLASSLESS_ROUTES = 121
MS_CLASSLESS_ROUTES = 249   # the same format, for Windows XP/2003 era clients
END = 255

# Message types (option 53).
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_TYPE_NAMES = {DISCOVER: "discover", OFFER: "offer", REQUEST: "request",
                      DECLINE: "decline", ACK: "ack", NAK: "nak", RELEASE: "release",
                      INFORM: "inform"}
CLIENT_MESSAGE_TYPES = frozenset({DISCOVER, REQUEST, DECLINE, RELEASE, INFORM})


def ip4(addr: str) -> bytes:
    # inet_pton is strict (no "10.1" shorthand) and ~10x faster than ipaddress.
    return socket.inet_pton(socket.AF_INET, addr)


def ip4_list(addrs) -> bytes:
    return b"".join(ip4(a) for a in addrs)


def u32(n: int) -> bytes:
    return struct.pack("!I", n)


def u16(n: int) -> bytes:
    return struct.pack("!H", n)


def classless_routes(routes) -> bytes:
    """RFC 3442: each route is <prefix length><significant octets of the
    destination><router>. `routes` is an iterable of (destination CIDR, router)."""
    out = bytearray()
    for destination, router in routes:
        net = ipaddress.IPv4Network(destination, strict=False)
        width = net.prefixlen
        out.append(width)
        out += net.network_address.packed[:(width + 7) // 8]
        out += ip4(router)
    return bytes(out)


def decode_classless_routes(data: bytes) -> list[tuple[str, str]]:
    """The inverse of classless_routes (for tests and the console); raises
    ValueError on a malformed value."""
    routes, i = [], 0
    while i < len(data):
        width = data[i]
        if width > 32:
            raise ValueError(f"prefix length {width}")
        n = (width + 7) // 8
        if i + 1 + n + 4 > len(data):
            raise ValueError("truncated route")
        dest = data[i + 1:i + 1 + n] + bytes(4 - n)
        router = data[i + 1 + n:i + 5 + n]
        routes.append((f"{ipaddress.IPv4Address(dest)}/{width}", str(ipaddress.IPv4Address(router))))
        i += 5 + n
    return routes


def encode_options(options: dict[int, bytes]) -> bytes:
    """Ordered {code: value} -> TLVs followed by END."""
    out = bytearray()
    for code, value in options.items():
        if not value and code != END:
            out += bytes((code, 0))
            continue
        for i in range(0, len(value), 255):
            chunk = value[i:i + 255]
            out += bytes((code, len(chunk))) + chunk
    out.append(END)
    return bytes(out)
