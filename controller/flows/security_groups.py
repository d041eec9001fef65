"""Security groups as stateful conntrack flows on br-int (tables 30/31 and 60/61).

A VM port with port security gets its own conntrack zone, its ofport (OVS
numbers the ports it picks itself 1..32767; routers' NAT zones are the upper
half, world.ROUTER_ZONE_MIN). Both directions of the port use that zone, two
ports never share one: on one host a packet from A to B is tracked in A's
zone by A's egress rules and again in B's zone by B's ingress rules, so each
side's rules really see the connection (one zone per network would let A's
commit make the packet look established to B's check).

    from the port (Neutron "egress" rules)      to the port ("ingress" rules)
    30 INGRESS_ACL   reg5=<port>, ip/ipv6        60 EGRESS_ACL   reg7=<port>, ip/ipv6
                     -> ct(zone=<port>, table=31)                -> ct(zone=<port>, table=61)
    31 INGRESS_ACL_CT  (state + rules)           61 EGRESS_ACL_CT  (state + rules)
                     -> goto 40                                  -> goto 70

Before conntrack (30 / 60): a VM's DHCP / DHCPv6 server replies and router
advertisements drop (310); IPv6 neighbour discovery and MLD pass untracked.
In 31 and 61 (same layout):

    300  +inv, or ct_mark=1 (a connection cut by a rule change): drop
    250  +est+rpl, +rel: the reply of an allowed connection: pass
    100  a rule of one of the port's groups: ct(commit), pass
     90  remote_group_id rules as conjunctions: (the member's address) x (port, protocol, ports)
     80  conj_id=K: ct(commit), pass
     10  +est, original direction, no rule allows it any more: mark the
         connection (ct_mark=1, its replies drop too) and drop
      0  drop

Original-direction packets are checked against the rules every time (not
only +new), so removing a rule cuts the connections it allowed, while an
unrelated change leaves them alone; the bundle that carries a change makes
it atomic (controller/apps/reconciler.py). remote_group_id: one flow per
member address (shared by every local port whose rules name the group) and
one per (port, rule) - flows grow as members + ports x rules, never ports x
members.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress

from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.flow import Flow, ct, match
from controller.flows.memo import latest_per, per_object
from controller.protocols import protocol_number
from controller.model.world import NodeInfo, PortInfo, SecurityGroupInfo, SecurityGroupRuleInfo, World

T = t.IntTable
ETH = {"IPv4": 0x0800, "IPv6": 0x86DD}
TCP, UDP, SCTP, ICMP, ICMPV6 = 6, 17, 132, 1, 58
PORT_FIELDS = {TCP: "tcp_dst", UDP: "udp_dst", SCTP: "sctp_dst"}

# ct_state bits (OVS): new, established, related, reply, invalid, tracked.
NEW, EST, REL, RPL, INV, TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
CT_MARK_CUT = 1            # a connection no rule allows any more

PRIO_SERVER_DROP, PRIO_DROP, PRIO_REPLY = 310, 300, 250
PRIO_RULE, PRIO_CONJ, PRIO_CONJ_ACCEPT, PRIO_CUT = 100, 90, 80, 10
PRIO_ND = 310              # IPv6 neighbour discovery passes before conntrack

# (direction, table of the ct lookup, table after it, where an accepted packet
# goes, the register holding the port, the remote end's address fields)
FROM_PORT = ("egress", T.INGRESS_ACL, T.INGRESS_ACL_CT, T.L3, t.REG_IN_PORT,
             {"IPv4": "ipv4_dst", "IPv6": "ipv6_dst"})
TO_PORT = ("ingress", T.EGRESS_ACL, T.EGRESS_ACL_CT, T.OUTPUT, t.REG_OUT_PORT,
           {"IPv4": "ipv4_src", "IPv6": "ipv6_src"})


def compile_security_groups(world: World, node: NodeInfo) -> list[Flow]:
    if "br-int" not in dict(node.bridges):
        return []
    ports = [p for p in world.ports_on(node.id) if is_filtered(p)]
    out = list(state_flows(node.id))
    wanted: dict[tuple, tuple[str, ...]] = {}       # (direction, ethertype, group) -> members
    for p in ports:
        groups = tuple(world.security_groups[g] for g in p.security_groups if g in world.security_groups)
        out += port_flows(p, groups)
        for g in groups:
            for r in g.rules:
                if r.remote_group_id:
                    key = (r.direction, r.ethertype, r.remote_group_id)
                    wanted.setdefault(key, world.group_members(r.remote_group_id))
    for side in (FROM_PORT, TO_PORT):
        refs = tuple(sorted((k, v) for k, v in wanted.items() if k[0] == side[0]))
        out += member_flows(node.id, side[0], refs)
    return out


def is_filtered(p: PortInfo) -> bool:
    """VM ports with port security; the network's own ports are trusted."""
    return bool(p.ofport) and p.port_security_enabled and not p.device_owner.startswith("network:")


# --- per node -------------------------------------------------------------------

@latest_per(lambda node_id: node_id)
def state_flows(node_id: str) -> list[Flow]:
    """What does not depend on any rule: conntrack states, the VM-as-server
    drops, neighbour discovery."""
    c = cookies.cookie("infra", node_id)
    out = []
    for direction, _ct_table, table, nxt, reg, _f in (FROM_PORT, TO_PORT):
        commit_cut = ct(commit=True, zone=reg, exec_=(("set_field", "ct_mark", CT_MARK_CUT),))
        out += [
            Flow("br-int", table, PRIO_DROP, match(ct_state=(INV | TRK, INV | TRK)), (), c),
            Flow("br-int", table, PRIO_DROP, match(ct_state=(TRK, TRK), ct_mark=CT_MARK_CUT), (), c),
            Flow("br-int", table, PRIO_REPLY, match(ct_state=(EST | RPL | TRK, EST | RPL | TRK)),
                 (("goto", int(nxt)),), c),
            Flow("br-int", table, PRIO_REPLY, match(ct_state=(REL | TRK, REL | TRK)),
                 (("goto", int(nxt)),), c),
        ]
        # (ct needs the IP version in the match)
        out += [Flow("br-int", table, PRIO_CUT, match(ct_state=(EST | TRK, EST | RPL | TRK), eth_type=eth),
                     (commit_cut,), c) for eth in ETH.values()]
    # Neighbour discovery and MLD are not connections: they pass untracked.
    for icmp_type in (130, 131, 132, 133, 135, 136, 143):
        m = match(eth_type=0x86DD, ip_proto=ICMPV6, icmpv6_type=icmp_type)
        out.append(Flow("br-int", T.INGRESS_ACL, PRIO_ND, m, (("goto", int(T.L3)),), c))
        out.append(Flow("br-int", T.EGRESS_ACL, PRIO_ND, m, (("goto", int(T.OUTPUT)),), c))
    out.append(Flow("br-int", T.EGRESS_ACL, PRIO_ND, match(eth_type=0x86DD, ip_proto=ICMPV6, icmpv6_type=134),
                    (("goto", int(T.OUTPUT)),), c))
    return out


@latest_per(lambda node_id, direction, refs: (node_id, direction))
def member_flows(node_id: str, direction: str, refs: tuple) -> list[Flow]:
    """The remote-group dimension: one flow per member address, carrying a
    conjunction clause for every (group, ethertype) that lists it. refs:
    sorted ((direction, ethertype, group), members)."""
    side = FROM_PORT if direction == "egress" else TO_PORT
    by_match: dict[tuple, list] = {}
    cookie_of: dict[tuple, int] = {}
    for (_d, ethertype, group), members in refs:
        conj = conj_id(direction, ethertype, group)
        field = side[5][ethertype]
        for addr in members:
            m = _member_match(ethertype, field, addr)
            if m is None:
                continue
            by_match.setdefault(m, []).append(("conjunction", conj, 1, 2))
            cookie_of.setdefault(m, cookies.cookie("security_group", group))
    # The same Flow objects round after round for unchanged members: a port
    # joining changes one flow, not the node's whole list (compiler.NodeCompiler).
    out = [_flow(side[2], PRIO_CONJ, m, tuple(sorted(set(acts))), cookie_of[m])
           for m, acts in sorted(by_match.items(), key=lambda kv: repr(kv[0]))]
    for (_d, ethertype, group), _members in refs:
        out.append(_flow(side[2], PRIO_CONJ_ACCEPT,
                         match(conj_id=conj_id(direction, ethertype, group), eth_type=ETH[ethertype]),
                         (ct(commit=True, zone=side[4]), ("goto", int(side[3]))),
                         cookies.cookie("security_group", group)))
    return out


@functools.lru_cache(maxsize=65536)
def _member_match(ethertype: str, field: str, addr: str):
    net = ipaddress.ip_network(addr, strict=False)
    if (net.version == 4) != (ethertype == "IPv4"):
        return None
    return match(eth_type=ETH[ethertype], **{field: _addr(net)})


@functools.lru_cache(maxsize=65536)
def _flow(table: int, priority: int, m, actions: tuple, cookie: int) -> Flow:
    return Flow("br-int", table, priority, m, actions, cookie)


def conj_id(direction: str, ethertype: str, group: str) -> int:
    """Stable per (direction, ethertype, remote group), so a change elsewhere
    rewrites no conjunction. 32 bits of a hash; a clash would need two of a
    node's few hundred groups to meet in 2^32."""
    h = hashlib.sha256(f"{direction}/{ethertype}/{group}".encode()).digest()
    return int.from_bytes(h[:4], "big") or 1


# --- per port -------------------------------------------------------------------

@per_object      # unchanged port and groups: the same Flow objects (memo.py)
def port_flows(p: PortInfo, groups: tuple[SecurityGroupInfo, ...]) -> list[Flow]:
    pc = cookies.cookie("port", p.id)
    out: list[Flow] = []
    # A VM may not answer DHCP or advertise itself as a router (before ct).
    for eth, proto, src, dst in ((0x0800, UDP, 67, 68), (0x86DD, UDP, 547, 546)):
        out.append(Flow("br-int", T.INGRESS_ACL, PRIO_SERVER_DROP,
                        match(**{t.REG_IN_PORT: p.ofport}, eth_type=eth, ip_proto=proto,
                              udp_src=src, udp_dst=dst), (), pc))
    out.append(Flow("br-int", T.INGRESS_ACL, PRIO_SERVER_DROP,
                    match(**{t.REG_IN_PORT: p.ofport}, eth_type=0x86DD, ip_proto=ICMPV6,
                          icmpv6_type=134), (), pc))
    for direction, ct_table, table, _nxt, reg, _f in (FROM_PORT, TO_PORT):
        for eth in ETH.values():
            out.append(Flow("br-int", ct_table, t.PRIO_DEFAULT,
                            match(**{reg: p.ofport}, eth_type=eth),
                            (ct(zone=p.ofport, table=int(table)),), pc))
    flows: dict[tuple, Flow] = {}
    for g in groups:
        for r in g.rules:
            for f in rule_flows(p, r):
                have = flows.get(f.key)
                if have is None:
                    flows[f.key] = f
                elif have.actions != f.actions and f.priority == PRIO_CONJ:
                    # Two remote groups, same (port, protocol, ports): one flow, both clauses.
                    flows[f.key] = Flow(have.bridge, have.table, have.priority, have.match,
                                        tuple(sorted(set(have.actions) | set(f.actions))), have.cookie)
    return out + list(flows.values())


def rule_flows(p: PortInfo, r: SecurityGroupRuleInfo) -> list[Flow]:
    """The flows one rule gives one port (several for a port range)."""
    side = FROM_PORT if r.direction == "egress" else TO_PORT
    if r.ethertype not in ETH:
        return []
    base = {side[4]: p.ofport, "eth_type": ETH[r.ethertype]}
    if r.remote_ip_prefix:
        net = ipaddress.ip_network(r.remote_ip_prefix, strict=False)
        if (net.version == 4) != (r.ethertype == "IPv4"):
            return []
        addr = _addr(net)
        if addr is not None:
            base[side[5][r.ethertype]] = addr
    c = cookies.cookie("security_group_rule", r.id)
    if r.remote_group_id:
        prio = PRIO_CONJ
        actions = (("conjunction", conj_id(r.direction, r.ethertype, r.remote_group_id), 2, 2),)
    else:
        prio = PRIO_RULE
        actions = (ct(commit=True, zone=side[4]), ("goto", int(side[3])))
    return [Flow("br-int", side[2], prio, match(**base, **m), actions, c) for m in protocol_matches(r)]


def protocol_matches(r: SecurityGroupRuleInfo) -> list[dict]:
    """ip_proto and the port range (fewest masked matches) or ICMP type/code."""
    number = protocol_number(r.protocol)
    if number is None:
        return [{}]
    if r.ethertype == "IPv6" and number == ICMP:
        number = ICMPV6
    m = {"ip_proto": number}
    lo, hi = r.port_range_min, r.port_range_max
    if number in PORT_FIELDS and (lo is not None or hi is not None):
        lo = lo if lo is not None else 1
        hi = hi if hi is not None else 65535
        return [dict(m, **{PORT_FIELDS[number]: v}) for v in port_range_masks(lo, hi)]
    if number in (ICMP, ICMPV6) and lo is not None:
        prefix = "icmpv4" if number == ICMP else "icmpv6"
        m[f"{prefix}_type"] = lo
        if hi is not None:
            m[f"{prefix}_code"] = hi
    return [m]


def port_range_masks(lo: int, hi: int) -> list:
    """[lo, hi] as the fewest value/mask pairs (a plain value for one port,
    nothing but the protocol for the whole range is the caller's)."""
    out = []
    while lo <= hi:
        size = 1
        while lo % (size * 2) == 0 and lo + size * 2 - 1 <= hi and size < 65536:
            size *= 2
        out.append(lo if size == 1 else (lo, 0xFFFF & ~(size - 1)))
        lo += size
    return out


def _addr(net):
    if net.prefixlen == 0:
        return None
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return (str(net.network_address), str(net.netmask))


# --- who is affected by a change -------------------------------------------------

def nodes_watching(world: World, group_ids) -> set[str]:
    """Nodes with a filtered port whose rules name one of these groups as
    remote: a member joining or leaving (or changing address) changes their
    flows, wherever the member itself is."""
    ids = set(group_ids)
    if not ids:
        return set()
    watchers = {g.id for g in world.security_groups.values()
                if any(r.remote_group_id in ids for r in g.rules)}
    return {p.node_id for p in world.ports.values()
            if p.node_id and p.ofport and watchers.intersection(p.security_groups)}


def nodes_of_group(world: World, group_id: str) -> set[str]:
    """Nodes where a port of the group is plugged."""
    return {p.node_id for p in world.ports.values()
            if p.node_id and p.ofport and group_id in p.security_groups}
