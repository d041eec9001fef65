"""A flow entry as plain, hashable data.

Flow compilers return lists of `Flow`; only the reconciler turns them into
OpenFlow messages (controller/openflow/) and sends them. A Flow read back
from a switch is decoded into the same form, so desired and installed flows
compare with `==`.

Match: a tuple of (field, value) pairs sorted by field, with os-ken OXM field
names (`in_port`, `eth_dst`, `vlan_vid`, `eth_type`, `ipv4_dst`, `tunnel_id`,
`reg6`, `metadata`, ...). A masked value is a (value, mask) tuple. Build it with
`match(...)`.

Actions: a tuple of small tuples, applied in order:
    ("output", port)             port may be an int or "in_port"/"controller"/"normal"/"flood"/"local"
    ("controller", max_len)      send to the controller (packet-in)
    ("set_field", field, value)  e.g. ("set_field", "vlan_vid", 0x1000 | 5)
    ("push_vlan", ethertype)     ("pop_vlan",)
    ("move", src_field, dst_field, n_bits)   NXM register move (ARP responder)
    ("dec_ttl",)
    ("ct", opts)                 build it with ct(commit=, zone=, table=, nat={"flags": 1, "ipv4_min": .., "ipv4_max": ..},
                                 exec_=(("set_field", "ct_mark", 1),)); zone may be a register name
    ("conjunction", id, k, n)    clause k (1-based) of n of conjunctive match id
    ("resubmit", port|None, table)  NX resubmit(port, table)
    ("meter", meter_id)          (an instruction in OF1.3; kept in order here)
    ("write_metadata", value, mask)  the write-metadata instruction
    ("goto", table)              must be last; becomes the goto-table instruction
An empty tuple drops the packet.

Canonical order (what the codec decodes from a switch): meter first, then the
apply-actions, then write_metadata, then goto. Compilers write actions in that
order so desired and installed flows compare equal.

Value forms (the codec reads them back in the same form): MAC addresses in
lower case; IPv4/IPv6 addresses as strings, masked ones as (addr, mask) string
tuples; vlan_vid with 0x1000 (OFPVID_PRESENT) for tagged, 0 for "no tag".

Cookie: the owner of the flow (see cookies.py), so stale flows can be found and
the console can say which network, port or router a flow serves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Match = tuple[tuple[str, Any], ...]
Actions = tuple[tuple, ...]

NO_BUFFER = 0xFFFF       # ("controller", NO_BUFFER): the whole packet in the packet-in (OFPCML_NO_BUFFER)


def match(**fields: Any) -> Match:
    """match(in_port=3, eth_type=0x0800) -> canonical sorted tuple."""
    return tuple(sorted((k, _freeze(v)) for k, v in fields.items() if v is not None))


def _freeze(v):
    if isinstance(v, list):
        return tuple(v)
    if isinstance(v, str) and v.count(":") == 5:
        return v.lower()             # MAC addresses in lower case, as switches report them
    if isinstance(v, tuple):
        return tuple(_freeze(x) for x in v)
    return v


def address_match(net):
    """An ipaddress network as a match value: the address for a host, an
    (address, mask) pair for a prefix, None (field left out: any address)
    for a /0."""
    if net.prefixlen == 0:
        return None
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return (str(net.network_address), str(net.netmask))


def dedupe(flows) -> list:
    """The flows in order, without later ones of an already seen key (and
    without Nones, which builders return for "nothing here")."""
    seen, out = set(), []
    for f in flows:
        if f is not None and f.key not in seen:
            seen.add(f.key)
            out.append(f)
    return out


def ct(commit: bool = False, zone: int | str = 0, table: int | None = None, nat: dict | None = None,
       exec_: tuple = ()) -> tuple:
    """The conntrack action in its canonical (hashable, comparable) form.
    zone: a number, or a register name ("reg5": the zone is its low 16 bits).
    nat: {"flags": NX_NAT_F_* bits (1 = SRC, 2 = DST), "ipv4_min": .., "ipv4_max": ..,
    "proto_min": .., "proto_max": ..}; None for no NAT.
    exec_: actions on the connection, e.g. (("set_field", "ct_mark", 1),) (with commit)."""
    nat_t = tuple(sorted((k, v) for k, v in nat.items() if v not in (None, ""))) if nat is not None else None
    opts = [("commit", bool(commit)), ("nat", nat_t), ("table", table),
            ("zone", zone if isinstance(zone, str) else int(zone))]
    if exec_:
        opts.insert(1, ("exec", tuple(exec_)))
    return ("ct", tuple(opts))


@dataclass(frozen=True, order=True)
class Flow:
    bridge: str        # bridge role on the node: "br-int", "br-tun", "br-ex" or a br-ethX name
    table: int
    priority: int
    match: Match
    actions: Actions = ()
    cookie: int = 0
    idle_timeout: int = field(default=0, compare=False)

    @property
    def key(self) -> tuple:
        """What makes two flows the same entry in an OpenFlow table."""
        return (self.bridge, self.table, self.priority, self.match)

    @property
    def body(self) -> tuple:
        """What a modify changes for an existing key."""
        return (self.cookie, self.actions)

    def __str__(self) -> str:
        return format_flow(self)


@dataclass(frozen=True, order=True)
class Meter:
    """An OpenFlow meter a compiler wants on a bridge (drop band, packets/s).
    Compilers may return Meters in their list next to Flows; the reconciler
    keeps the switch's meters equal to the desired ones like it does flows."""
    bridge: str
    meter_id: int
    rate_pps: int
    burst: int = 0


def format_match(m: Match) -> str:
    parts = []
    for k, v in m:
        if isinstance(v, tuple):
            parts.append(f"{k}={_fmt(k, v[0])}/{_fmt(k, v[1])}")
        else:
            parts.append(f"{k}={_fmt(k, v)}")
    return ",".join(parts)


def format_actions(actions: Actions) -> str:
    if not actions:
        return "drop"
    out = []
    for a in actions:
        op, args = a[0], a[1:]
        if op == "output":
            out.append(f"output:{args[0]}")
        elif op == "goto":
            out.append(f"goto_table:{args[0]}")
        elif op == "set_field":
            out.append(f"set_field:{_fmt(args[0], args[1])}->{args[0]}")
        elif op == "move":
            out.append(f"move:{args[0]}->{args[1]}")
        elif op == "controller":
            out.append("CONTROLLER" + (f":{args[0]}" if args else ""))
        elif op == "write_metadata":
            out.append(f"write_metadata:{args[0]:#x}/{args[1]:#x}")
        elif op == "conjunction":
            out.append(f"conjunction({args[0]},{args[1]}/{args[2]})")
        elif op == "ct":
            opts = dict(args[0])
            if "exec" in opts:
                opts["exec"] = "(" + format_actions(opts["exec"]) + ")"
            bits = [k if v is True else f"{k}={v}" for k, v in sorted(opts.items())
                    if v not in (None, False)]
            out.append(f"ct({','.join(bits)})")
        elif args:
            out.append(f"{op}:{','.join(str(x) for x in args)}")
        else:
            out.append(op)
    return ",".join(out)


def format_flow(f: Flow) -> str:
    m = format_match(f.match)
    return (f"{f.bridge} cookie=0x{f.cookie:x} table={f.table} priority={f.priority}"
            + (f",{m}" if m else "") + f" actions={format_actions(f.actions)}")


def _fmt(field_name: str, v) -> str:
    if isinstance(v, int) and (field_name in ("vlan_vid", "metadata", "tunnel_id", "eth_type")
                               or field_name.startswith("reg")):
        return hex(v)
    return str(v)
