"""Connection tracking as the trace (controller/flows/trace.py) models it,
and why a security-group table dropped a packet, in words.

The model keeps what the security groups need: per (node, zone) the
connections committed, by their 5-tuple in both directions; a lookup gives
+trk and +new (unknown), +est (known, original direction) or +est+rpl
(known, reply direction), and the connection's ct_mark. NAT is not modelled
(the router's zones see every packet as new, which no NAT flow matches on).
"""
from __future__ import annotations

from controller.flows import tables as t
from controller.flows.security_groups import EST, NEW, RPL, TRK

SG_TABLES = (t.IntTable.INGRESS_ACL_CT, t.IntTable.EGRESS_ACL_CT)

_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp"}
_ECHO = {8: 0, 128: 129}                 # ICMP echo request -> reply type


def five_tuple(pkt: dict) -> tuple | None:
    """(src, dst, proto, a, b) of an IP packet; ICMP echo keeps the pair
    the same for request and reply."""
    src = pkt.get("ipv4_src") or pkt.get("ipv6_src")
    dst = pkt.get("ipv4_dst") or pkt.get("ipv6_dst")
    if src is None or dst is None:
        return None
    proto = pkt.get("ip_proto", 0)
    for a, b in (("tcp_src", "tcp_dst"), ("udp_src", "udp_dst"), ("sctp_src", "sctp_dst")):
        if a in pkt:
            return (src, dst, proto, pkt[a], pkt.get(b, 0))
    return (src, dst, proto, 0, 0)


class Conntrack:
    def __init__(self):
        self.entries: dict[tuple, dict] = {}      # (node, zone, tuple) -> {"mark", "reply"}

    def flush(self) -> None:
        self.entries.clear()

    def execute(self, node: str, pkt: dict, opts: dict) -> dict:
        """The ct action: -> the ct_* fields the packet carries afterwards
        (committing and running exec on the connection as asked)."""
        zone = opts.get("zone", 0)
        if isinstance(zone, str):
            zone = int(pkt.get(zone, 0)) & 0xFFFF
        key = five_tuple(pkt)
        if key is None:
            return {"ct_state": TRK | 0x10, "ct_zone": zone, "ct_mark": 0}      # +inv: not IP
        entry = self.entries.get((node, zone, key))
        if entry is None:
            state, mark = TRK | NEW, 0
        else:
            state = TRK | EST | (RPL if entry["reply"] else 0)
            mark = entry["conn"]["mark"]
        if opts.get("commit"):
            if entry is None:
                conn = {"mark": 0}
                src, dst, proto, a, b = key
                self.entries[(node, zone, key)] = {"conn": conn, "reply": False}
                self.entries[(node, zone, (dst, src, proto, b, a))] = {"conn": conn, "reply": True}
                entry = self.entries[(node, zone, key)]
            for x in opts.get("exec", ()):
                if x[0] == "set_field" and x[1] == "ct_mark":
                    entry["conn"]["mark"] = x[2]
        return {"ct_state": state, "ct_zone": zone, "ct_mark": mark}


def describe(pkt: dict) -> str:
    proto = pkt.get("ip_proto")
    name = _PROTO_NAMES.get(proto, f"protocol {proto}" if proto is not None else "ip")
    for f in ("tcp_dst", "udp_dst", "sctp_dst"):
        if f in pkt:
            return f"{name}/{pkt[f]}"
    if "icmpv4_type" in pkt:
        return f"{name} type {pkt['icmpv4_type']}"
    return name


def sg_drop_reason(world, node: str, table: int, pkt: dict) -> str:
    """"dropped by security group web, no rule allows tcp/22 from 10.0.1.5"."""
    to_port = table == t.IntTable.EGRESS_ACL_CT
    ofport = pkt.get(t.REG_OUT_PORT if to_port else t.REG_IN_PORT)
    port = next((p for p in world.ports_on(node) if p.ofport == ofport), None)
    if port is None:
        names = "?"
    else:
        names = ", ".join(world.security_groups[g].name or g[:8] for g in port.security_groups
                          if g in world.security_groups) or "(the port has no security group)"
    remote = (pkt.get("ipv4_src") or pkt.get("ipv6_src")) if to_port else \
        (pkt.get("ipv4_dst") or pkt.get("ipv6_dst"))
    way = f"from {remote} to the port" if to_port else f"from the port to {remote}"
    state = "new connection" if pkt.get("ct_state", 0) & NEW else "packet"
    return f"dropped by security group {names}: no rule allows {describe(pkt)} {way} ({state})"
