"""Walk a packet through flow tables given as data (no switch involved).

The same model serves the unit tests (tests/unit/fakeoftable.py re-exports it)
and the console's Trace page: `Fabric` joins the bridges of several nodes the
way node-bootstrap wires a real host (br-int <-> br-tun and br-int <-> br-ethX
by patch ports, br-tun's tunnel port reaching the node whose tunnel IP is in
tun_ipv4_dst, every br-ethX of one physical network on one shared wire), and
`Fabric.trace()` records every table lookup, the flow that matched and where
each copy of the packet ends: delivered to a port, dropped (and why), or sent
to the controller.

A packet is a dict of os-ken OXM field names (`eth_src`, `ipv4_dst`,
`vlan_vid`, ...), in the value forms of controller/flows/flow.py.

strict=True (tests) raises on what can only be a compiler bug: a forwarding
loop, double tagging, a tagged frame into a tunnel, an action the model does
not know. strict=False (console) reports them as an outcome instead.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Callable, Mapping

from controller.flows import tables as t
from controller.flows.conntrack_model import SG_TABLES, Conntrack, sg_drop_reason
from controller.flows.flow import Flow

MAX_HOPS = 64
WIRE_OFPORT = 100     # br-ethX: the physical NIC (any port but the patch to br-int)

# Outcome kinds
DELIVERED, DROPPED, CONTROLLER, WIRE, ERROR = "delivered", "dropped", "controller", "wire", "error"


# --- table names and why a table drops ---------------------------------------

def table_name(bridge: str, table: int) -> str:
    """("br-int", 50) -> "L2_LOOKUP"; unknown numbers as "table 7"."""
    try:
        return t.stages(bridge)(table).name
    except ValueError:
        return f"table {table}"


# (bridge kind, table, priority) of the skeleton's drop flows -> the reason
# an operator reads (docs/PIPELINE.md). Priority None: any drop flow there.
_DROP_REASONS = {
    ("int", t.IntTable.CLASSIFY, 0): "unknown ingress port, admin-down port or network, or a tagged frame from a VM",
    ("int", t.IntTable.PORT_SECURITY, 0): "port security: the source MAC/IP is not one of the port's addresses (spoofed)",
    ("int", t.IntTable.L2_LOOKUP, 0): "no L2 path: a 'local' network or a network without uplink",
    ("int", t.IntTable.L2_LOOKUP, None): "the destination port is admin down",
    ("int", t.IntTable.OUTPUT, 0): "nothing to output to (reg7 unknown)",
    ("int", t.IntTable.INGRESS_ACL, 310): "a VM may not act as a DHCP server or send router advertisements",
    ("int", t.IntTable.INGRESS_ACL_CT, 300): "conntrack: an invalid packet, or a connection a rule change cut",
    ("int", t.IntTable.EGRESS_ACL_CT, 300): "conntrack: an invalid packet, or a connection a rule change cut",
    ("int", t.IntTable.INGRESS_ACL_CT, 10): "security group: the rule that allowed this connection is gone (connection cut)",
    ("int", t.IntTable.EGRESS_ACL_CT, 10): "security group: the rule that allowed this connection is gone (connection cut)",
    ("tun", t.TunTable.CLASSIFY, 0): "unexpected ingress port on br-tun",
    ("tun", t.TunTable.TO_TUNNEL, 0): "no tunnel for this local VLAN (network not on any other host)",
    ("tun", t.TunTable.FROM_TUNNEL, 0): "unknown tunnel key",
    ("phys", t.PhysTable.CLASSIFY, None): "untranslated traffic from br-int (no provider VLAN for this local VLAN)",
}


def drop_reason(bridge: str, flow: Flow | None, table: int) -> str:
    kind = "int" if bridge == "br-int" else "tun" if bridge == "br-tun" else "phys"
    if flow is None:
        return f"no flow matched in {table_name(bridge, table)} (table-miss: drop)"
    why = (_DROP_REASONS.get((kind, table, flow.priority))
           or _DROP_REASONS.get((kind, table, None)) or "dropped by this flow")
    return why


# --- results -------------------------------------------------------------------

@dataclass
class Step:
    """One table lookup. flow None: nothing matched."""
    depth: int
    node_id: str
    bridge: str
    table: int
    flow: Flow | None
    packet: dict
    note: str = ""

    @property
    def table_name(self) -> str:
        return table_name(self.bridge, self.table)


@dataclass
class Outcome:
    """Where one copy of the packet ends."""
    depth: int
    kind: str                  # delivered | dropped | controller | wire | error
    node_id: str
    bridge: str
    port: int | str | None
    packet: dict
    reason: str = ""


@dataclass
class Trace:
    events: list = field(default_factory=list)     # Step and Outcome, in walk order

    @property
    def steps(self) -> list[Step]:
        return [e for e in self.events if isinstance(e, Step)]

    @property
    def outcomes(self) -> list[Outcome]:
        return [e for e in self.events if isinstance(e, Outcome)]

    def delivered(self) -> list[tuple[str, int]]:
        return sorted((o.node_id, o.port) for o in self.outcomes if o.kind == DELIVERED)


class TraceError(AssertionError):
    """strict mode: the flows are wrong in a way no packet should meet."""


# --- one bridge's tables ---------------------------------------------------------

class FlowTable:
    """One bridge's flow tables, with add/modify/delete semantics by key.
    Conjunctive matches as OVS does them: at one priority, flows whose only
    actions are `conjunction` add their clauses; when every clause of an id
    matched, the packet is looked up again with conj_id = that id."""

    def __init__(self, flows=()):
        self.flows: dict[tuple, Flow] = {}     # (table, priority, match) -> Flow
        self.apply(flows)

    def apply(self, flows):
        for f in flows:
            self.flows[(f.table, f.priority, f.match)] = f

    def delete(self, flows):
        for f in flows:
            self.flows.pop((f.table, f.priority, f.match), None)

    def snapshot(self) -> frozenset:
        return frozenset(self.flows.values())

    def lookup(self, table: int, pkt: dict) -> Flow | None:
        hits = sorted((f for f in self.flows.values() if f.table == table and matches(f.match, pkt)),
                      key=lambda f: -f.priority)
        i = 0
        while i < len(hits):
            prio = hits[i].priority
            same = [f for f in hits[i:] if f.priority == prio]
            i += len(same)
            plain = [f for f in same if not _is_conjunctive(f)]
            if plain:
                return plain[0]
            clauses: dict[int, tuple[set, int]] = {}
            for f in same:
                for a in f.actions:
                    seen, _n = clauses.setdefault(a[1], (set(), a[3]))
                    seen.add(a[2])
            for conj, (seen, n) in sorted(clauses.items()):
                if len(seen) == n and "conj_id" not in pkt:
                    found = self.lookup(table, dict(pkt, conj_id=conj))
                    if found is not None:
                        return found
        return None


_NOT_FORWARDING = {"set_field", "write_metadata", "push_vlan", "pop_vlan", "move", "dec_ttl", "meter"}


def _forwards(f: Flow) -> bool:
    """Does the flow send the packet anywhere (else it ends there: a drop,
    e.g. ct(commit) that marks a connection and nothing after it)?"""
    return not all(a[0] in _NOT_FORWARDING or (a[0] == "ct" and dict(a[1]).get("table") is None)
                   for a in f.actions)


def _is_conjunctive(f: Flow) -> bool:
    return bool(f.actions) and all(a[0] == "conjunction" for a in f.actions)


# --- several nodes joined -----------------------------------------------------------

class Fabric:
    def __init__(self, world, flows: Mapping[str, list[Flow]] | Callable[[str], list[Flow]],
                 strict: bool = True):
        """flows: node_id -> that node's flows (all bridges), as a dict or a
        function called once per node the packet reaches."""
        self.world = world
        self.strict = strict
        self._source = flows if callable(flows) else (lambda n: flows.get(n, ()))
        self._loaded: set[str] = set()
        self.bridges: dict[tuple[str, str], FlowTable] = {}
        self.ip_to_node = {n.tunnel_ip: n.id for n in world.nodes.values() if n.tunnel_ip}
        self.conntrack = Conntrack()        # kept across traces: send A->B, then B->A
        if not callable(flows):
            for node_id in flows:
                self._tables_of(node_id)

    def _tables_of(self, node_id: str) -> None:
        if node_id in self._loaded:
            return
        self._loaded.add(node_id)
        for f in self._source(node_id) or ():
            self.bridges.setdefault((node_id, f.bridge), FlowTable()).apply([f])

    # -- public ---------------------------------------------------------------------

    def trace(self, node_id: str, ofport: int, pkt: dict, bridge: str = "br-int") -> Trace:
        """A packet enters `bridge` of a node on `ofport` (a VM's port on br-int)."""
        tr = Trace()
        self._process(tr, node_id, bridge, ofport, dict(pkt), 0, 0)
        return tr

    def send(self, node_id: str, ofport: int, pkt: dict) -> list[tuple[str, int | str, dict]]:
        """(node, ofport, packet) per copy delivered to a br-int port that is
        not a patch port, and (node, "controller", packet) per packet-in."""
        out = []
        for o in self.trace(node_id, ofport, pkt).outcomes:
            if o.kind == DELIVERED:
                out.append((o.node_id, o.port, o.packet))
            elif o.kind == CONTROLLER:
                out.append((o.node_id, "controller", o.packet))
        return out

    # -- the model ----------------------------------------------------------------------

    def _fail(self, tr, depth, node, bridge, port, pkt, reason):
        if self.strict:
            raise TraceError(reason)
        tr.events.append(Outcome(depth, ERROR, node, bridge, port, dict(pkt), reason))

    def _process(self, tr: Trace, node, bridge, in_port, pkt, hops, depth):
        self._tables_of(node)
        tbl = self.bridges.get((node, bridge))
        if tbl is None:
            tr.events.append(Outcome(depth, DROPPED, node, bridge, in_port, dict(pkt),
                                     f"{bridge} has no flows on this node"))
            return
        pkt = dict(pkt, in_port=in_port)
        pkt.setdefault("vlan_vid", 0)
        for k in [k for k in pkt if k.startswith("reg")]:
            del pkt[k]
        pkt.update({"metadata": 0, t.REG_IN_PORT: 0, t.REG_OUT_PORT: 0})
        self._run_table(tr, tbl, node, bridge, in_port, pkt, 0, hops, depth)

    def _run_table(self, tr, tbl, node, bridge, in_port, pkt, table, hops, depth):
        """Look packets up from `table` on until no goto is left."""
        if hops > MAX_HOPS:
            return self._fail(tr, depth, node, bridge, in_port, pkt, "forwarding loop")
        while table is not None:
            f = tbl.lookup(table, pkt)
            tr.events.append(Step(depth, node, bridge, table, f, dict(pkt)))
            if f is None or not _forwards(f):
                if f is not None and any(a[0] == "ct" for a in f.actions):
                    self._apply(tr, tbl, node, bridge, in_port, pkt, f, hops, depth)   # ct(commit) then drop
                reason = drop_reason(bridge, f, table)
                if bridge == "br-int" and table in SG_TABLES and (f is None or f.priority == 0):
                    reason = sg_drop_reason(self.world, node, table, pkt)
                tr.events.append(Outcome(depth, DROPPED, node, bridge, None, dict(pkt), reason))
                return
            table = self._apply(tr, tbl, node, bridge, in_port, pkt, f, hops, depth)

    def _apply(self, tr, tbl, node, bridge, in_port, pkt, f: Flow, hops, depth):
        """Apply one flow's actions; -> the goto table or None."""
        goto = None
        for a in f.actions:
            op = a[0]
            if op == "goto":
                goto = a[1]
            elif op == "write_metadata":
                pkt["metadata"] = (pkt["metadata"] & ~a[2]) | (a[1] & a[2])
            elif op == "set_field":
                pkt[a[1]] = a[2]
            elif op == "push_vlan":
                if pkt["vlan_vid"]:
                    return self._fail(tr, depth, node, bridge, None, pkt, "double tagging")
                pkt["vlan_vid"] = 0x1000
            elif op == "pop_vlan":
                pkt["vlan_vid"] = 0
            elif op == "move":
                pkt[a[2]] = pkt.get(a[1])
            elif op == "output":
                only = sum(1 for x in f.actions if x[0] == "output") == 1
                self._output(tr, node, bridge, in_port, a[1], dict(pkt), hops, depth + 1, only)
            elif op == "controller":
                tr.events.append(Outcome(depth, CONTROLLER, node, bridge, "controller", dict(pkt),
                                         "packet-in to the controller"))
            elif op == "meter":
                pass                      # rate limit: a single packet passes
            elif op == "dec_ttl":
                ttl = pkt.get("nw_ttl", 64)
                if ttl <= 1:
                    tr.events.append(Outcome(depth, DROPPED, node, bridge, None, dict(pkt),
                                             "TTL expired (dec_ttl)"))
                    return None
                pkt["nw_ttl"] = ttl - 1
            elif op == "resubmit":
                self._run_table(tr, tbl, node, bridge, in_port, dict(pkt), a[2], hops + 1, depth + 1)
            elif op == "conjunction":
                return self._fail(tr, depth, node, bridge, None, pkt, "conjunction with other actions")
            elif op == "ct":
                opts = dict(a[1])
                state = self.conntrack.execute(node, pkt, opts)
                if opts.get("table") is not None:
                    # Recirculation: the packet continues there with the state conntrack gave it.
                    pkt2 = dict(pkt, **state)
                    pkt2.pop("conj_id", None)
                    self._run_table(tr, tbl, node, bridge, in_port, pkt2, opts["table"], hops + 1, depth + 1)
            else:
                return self._fail(tr, depth, node, bridge, None, pkt, f"action not modelled: {a}")
        return goto

    def _output(self, tr, node, bridge, in_port, port, pkt, hops, depth, only=False):
        if port == "in_port":
            port = in_port
        elif port == in_port:
            # OpenFlow never hairpins implicitly. In a flood that is normal;
            # when it was the flow's only output, the packet ends here.
            if only:
                tr.events.append(Outcome(depth, DROPPED, node, bridge, port, dict(pkt),
                                         f"output to its ingress port {port}: OpenFlow does not send it back"))
            return
        clean = {k: v for k, v in pkt.items() if k not in ("metadata", "in_port", "conj_id")
                 and not k.startswith(("reg", "ct_"))}
        if bridge == "br-int":
            if port == t.INT_PATCH_TUN_OFPORT:
                return self._process(tr, node, "br-tun", t.TUN_PATCH_INT_OFPORT, clean, hops + 1, depth)
            for i, (_pn, br) in enumerate(self.world.nodes[node].bridge_mappings):
                if port == t.int_patch_phys_ofport(i):
                    return self._process(tr, node, br, t.PHYS_PATCH_INT_OFPORT, clean, hops + 1, depth)
            tr.events.append(Outcome(depth, DELIVERED, node, bridge, port, clean))
        elif bridge == "br-tun":
            if port == t.TUN_PATCH_INT_OFPORT:
                return self._process(tr, node, "br-int", t.INT_PATCH_TUN_OFPORT, clean, hops + 1, depth)
            if port != t.TUN_TUNNEL_OFPORT:
                return self._fail(tr, depth, node, bridge, port, clean, f"br-tun outputs to unknown port {port}")
            if clean["vlan_vid"]:
                return self._fail(tr, depth, node, bridge, port, clean, "tagged frame into a tunnel")
            remote_ip = clean.pop("tun_ipv4_dst", None)
            dst = self.ip_to_node.get(remote_ip)
            if dst is None:
                tr.events.append(Outcome(depth, DROPPED, node, bridge, port, clean,
                                         f"tunnel to {remote_ip}: no node has that tunnel IP"))
                return
            self._process(tr, dst, "br-tun", t.TUN_TUNNEL_OFPORT, clean, hops + 1, depth)
        else:
            self._phys_output(tr, node, bridge, in_port, port, clean, hops, depth)

    def _phys_output(self, tr, node, bridge, in_port, port, pkt, hops, depth):
        """br-ethX: NORMAL floods between the patch to br-int and the wire."""
        physnet = dict((b, p) for p, b in self.world.nodes[node].bridge_mappings).get(bridge)
        if port != "normal" or physnet is None:
            return self._fail(tr, depth, node, bridge, port, pkt, f"{bridge} outputs only NORMAL, not {port}")
        if in_port != t.PHYS_PATCH_INT_OFPORT:
            return self._process(tr, node, "br-int", _phys_patch(self.world.nodes[node], bridge),
                                 pkt, hops + 1, depth)
        tr.events.append(Outcome(depth, WIRE, node, bridge, port, pkt,
                                 f"onto the physical network {physnet}"))
        for other in self.world.nodes.values():
            if other.id == node:
                continue
            for p, br in other.bridge_mappings:
                if p == physnet:
                    self._process(tr, other.id, br, WIRE_OFPORT, pkt, hops + 1, depth)


def _phys_patch(node, bridge):
    for i, (_pn, br) in enumerate(node.bridge_mappings):
        if br == bridge:
            return t.int_patch_phys_ofport(i)


def matches(m, pkt) -> bool:
    for k, v in m:
        have = pkt.get(k)
        if have is None:
            return False
        try:
            if isinstance(v, tuple):
                val, mask = v
                if _num(k, have) & _num(k, mask) != _num(k, val) & _num(k, mask):
                    return False
            elif _num(k, have) != _num(k, v):
                return False
        except ValueError:
            return False
    return True


def _num(k, v) -> int:
    if isinstance(v, int):
        return v
    if ":" in v and k.startswith(("eth", "arp_sha", "arp_tha")):
        return int(v.replace(":", ""), 16)
    return int(ipaddress.ip_address(v))
