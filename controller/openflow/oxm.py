"""OXM match fields on the wire: one TLV per field, written and read with
`struct` (controller/openflow/wire.py uses them for flow_mods, flow stats
and packet-ins; controller/openflow/reference.py for the field order).

Coverage: fields of the OpenFlow basic and NXM classes with integer, MAC,
IPv4 and IPv6 values (IPv6 text through os-ken's own conversion). Anything
else (experimenter-class fields, CIDR text) is encoded by os-ken's
`oxm_from_user`/`oxm_serialize`, cached by value; a decoder meeting it
raises Unsupported and its caller falls back to os-ken's parser.
"""
from __future__ import annotations

import socket
import struct

from os_ken.lib import type_desc
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import oxx_fields

_HH = struct.Struct("!HH")
_I = struct.Struct("!I")
CACHE_MAX = 200_000
_PAD = [bytes(n) for n in range(8)]

class Unsupported(Exception):
    """Something these codecs do not handle themselves: use os-ken for it."""


# --- OXM TLVs ------------------------------------------------------------------------

def _field_table():
    """name -> (num, size, kind) for fields of non-experimenter classes;
    num -> name as os-ken reports it (its oxm_to_user_header)."""
    by_name, by_num = {}, {}
    for f in ofp.oxm_types:
        if f._class == oxx_fields.OFPXXC_EXPERIMENTER or not isinstance(f.num, int):
            continue
        t = f.type
        if t is type_desc.MacAddr:
            kind = "mac"
        elif t is type_desc.IPv4Addr:
            kind = "ipv4"
        elif t is type_desc.IPv6Addr:
            kind = "ipv6"
        elif isinstance(t, type_desc.IntDescr):
            kind = "int"
        else:
            continue                                   # anything else: os-ken
        by_name[f.name] = (f.num, t.size, kind)
    for name, (num, _size, _kind) in by_name.items():
        by_num[num] = ofp.oxm_to_user_header(num)
    return by_name, by_num


_FIELDS, _NAMES = _field_table()
_BY_NUM = {num: (name, _FIELDS[name][1], _FIELDS[name][2]) for num, name in _NAMES.items()
           if name in _FIELDS}


def _value_bytes(kind: str, size: int, v) -> bytes:
    if kind == "int":
        return v.to_bytes(size, "big")
    if kind == "mac":
        b = bytes.fromhex(v.replace(":", ""))
        if len(b) != 6:
            raise ValueError(v)
        return b
    if "/" in v:                                       # CIDR notation: os-ken's reading
        raise Unsupported(v)
    if kind == "ipv6":
        return type_desc.IPv6Addr.from_user(v)         # os-ken's own conversion: same bytes
    return socket.inet_pton(socket.AF_INET, v)


_tlv_cache: dict = {}


def oxm_tlv(k: str, v) -> bytes:
    """One OXM TLV (header, value, mask) for a match field or a set-field."""
    key = (k, v)
    b = _tlv_cache.get(key)
    if b is not None:
        return b
    info = _FIELDS.get(k)
    try:
        if info is None:
            raise Unsupported(k)
        num, size, kind = info
        if isinstance(v, tuple):
            value, mask = v
            b = (_I.pack((num << 9) | 0x100 | (2 * size)) + _value_bytes(kind, size, value)
                 + _value_bytes(kind, size, mask))
        else:
            b = _I.pack((num << 9) | size) + _value_bytes(kind, size, v)
    except (Unsupported, OverflowError, ValueError, OSError, AttributeError, TypeError):
        n, value, mask = ofp.oxm_from_user(k, v)
        buf = bytearray()
        ofp.oxm_serialize(n, value, mask, buf, 0)
        b = bytes(buf)
    if len(_tlv_cache) > CACHE_MAX:
        _tlv_cache.clear()
    _tlv_cache[key] = b
    return b


_order_cache: dict = {}

# Nicira (NXM class 0x0001) packet-header fields: their numbers sort before
# every OpenFlow basic field, i.e. before their own prerequisites (eth_type,
# ip_proto), and OVS checks prerequisites field by field as it parses a
# match: `reg6, nw_ttl, eth_type` is refused with OFPBMC_BAD_PREREQ. They go
# after the basic fields. (Registers, metadata-like and tunnel/ct fields have
# no prerequisite and keep os-ken's order.)
_AFTER_BASIC = frozenset({
    "nw_ttl", "ip_ecn_nxm", "ip_frag", "mpls_ttl", "tcp_flags_nxm", "arp_sha_nxm", "arp_tha_nxm",
    "ipv6_src_nxm", "ipv6_dst_nxm", "ipv6_label", "icmpv6_type_nxm", "icmpv6_code_nxm",
    "nd_target", "nd_sll", "nd_tll"})


def _order(k: str):
    """A match field's place on the wire: os-ken's OXM order (by field
    number, which puts prerequisites first within a class), except that the
    Nicira header fields of _AFTER_BASIC follow the basic fields."""
    o = _order_cache.get(k)
    if o is None:
        n = ofp.oxm_from_user_header(k)
        o = _order_cache[k] = (k in _AFTER_BASIC, n[0] if isinstance(n, tuple) else n)
    return o


_perm_cache: dict = {}


def _wire_permutation(m) -> tuple:
    """The indexes of a match tuple's fields in wire order; it depends on
    the field names only, so it is computed once per shape of match."""
    names = tuple([kv[0] for kv in m])
    p = _perm_cache.get(names)
    if p is None:
        p = _perm_cache[names] = tuple(sorted(range(len(names)), key=lambda i: _order(names[i])))
    return p


def match_fields(m) -> list:
    """A Flow's match tuple as (field, value) pairs in wire order."""
    return [m[i] for i in _wire_permutation(m)]


def match_bytes(m) -> bytes:
    """ofp_match (OXM type), padded to 8 bytes, for a Flow's match tuple."""
    get = _tlv_cache.get                       # keyed by the (field, value) pair itself
    tlvs = [get(m[i]) or oxm_tlv(*m[i]) for i in _wire_permutation(m)]
    length = 4 + sum(map(len, tlvs))
    return b"".join([_HH.pack(ofp.OFPMT_OXM, length), *tlvs, _PAD[-length % 8]])



def decode_tlv(buf: bytes, off: int):
    """-> (name, value in the Flow's canonical form, length of the TLV)."""
    (header,) = _I.unpack_from(buf, off)
    info = _BY_NUM.get(header >> 9)
    if info is None:
        raise Unsupported(header >> 9)
    name, size, kind = info
    p = off + 4
    if kind == "int":
        v = int.from_bytes(buf[p:p + size], "big")
        if header & 0x100:
            v = (v, int.from_bytes(buf[p + size:p + 2 * size], "big"))
    elif kind == "mac":
        v = buf[p:p + 6].hex(":")
        if header & 0x100:
            v = (v, buf[p + 6:p + 12].hex(":"))
    elif kind == "ipv6":      # os-ken's text form (what its parser, the reference, gives)
        v = type_desc.IPv6Addr.to_user(bytes(buf[p:p + 16]))
        if header & 0x100:
            v = (v, type_desc.IPv6Addr.to_user(bytes(buf[p + 16:p + 32])))
    else:
        v = socket.inet_ntop(socket.AF_INET, buf[p:p + 4])
        if header & 0x100:
            v = (v, socket.inet_ntop(socket.AF_INET, buf[p + 4:p + 8]))
    return name, v, 4 + (header & 0xFF)


def decode_match_bytes(buf: bytes, off: int):
    """ofp_match at `off` -> (canonical match tuple, padded length). The
    values come out in flow.match()'s canonical form already (MACs in lower
    case, masked values as (value, mask) tuples), so sorting is all it takes."""
    _type, length = _HH.unpack_from(buf, off)
    fields = []
    p, end = off + 4, off + length
    while p < end:
        name, v, n = decode_tlv(buf, p)
        fields.append((name, v))
        p += n
    fields.sort()
    return tuple(fields), (length + 7) // 8 * 8
