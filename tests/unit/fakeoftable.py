"""A fake OpenFlow pipeline for unit tests (in the spirit of Faucet's
clib/fakeoftable.py): apply lists of Flow into per-bridge tables, then send a
packet (a dict of OXM field names) in and see where it comes out.

FakeFabric joins the bridges of several nodes the way node-bootstrap wires a
real host: br-int <-> br-tun and br-int <-> br-ethX by patch ports, br-tun's
tunnel port reaching the node whose tunnel IP is in tun_ipv4_dst, and every
br-ethX of one physical network on one shared wire (NORMAL = flood).
"""
from __future__ import annotations

import ipaddress

from controller.flows import tables as t
from controller.flows.flow import Flow

MAX_HOPS = 64
WIRE_OFPORT = 100     # br-ethX: the physical NIC


class FakeTable:
    """One bridge's flow tables, with add/modify/delete semantics by key."""

    def __init__(self):
        self.flows: dict[tuple, Flow] = {}     # key without bridge -> Flow

    def apply(self, flows):
        for f in flows:
            self.flows[(f.table, f.priority, f.match)] = f

    def delete(self, flows):
        for f in flows:
            self.flows.pop((f.table, f.priority, f.match), None)

    def snapshot(self) -> frozenset:
        return frozenset(self.flows.values())

    def lookup(self, table: int, pkt: dict) -> Flow | None:
        best = None
        for f in self.flows.values():
            if f.table == table and _matches(f.match, pkt):
                if best is None or f.priority > best.priority:
                    best = f
        return best


class FakeFabric:
    def __init__(self, world, compiled: dict):
        """compiled: node_id -> list[Flow] (what the reconciler would install)."""
        self.world = world
        self.bridges: dict[tuple[str, str], FakeTable] = {}
        for node_id, flows in compiled.items():
            for f in flows:
                self.bridges.setdefault((node_id, f.bridge), FakeTable()).apply([f])
        self.ip_to_node = {n.tunnel_ip: n.id for n in world.nodes.values() if n.tunnel_ip}

    # -- public ---------------------------------------------------------------

    def send(self, node_id: str, ofport: int, pkt: dict) -> list[tuple[str, int, dict]]:
        """A VM on (node, br-int ofport) sends pkt; returns every (node,
        ofport, packet) delivered to a br-int port that is not a patch port."""
        out: list = []
        self._process(node_id, "br-int", ofport, dict(pkt), out, 0)
        return out

    # -- the model -------------------------------------------------------------

    def _process(self, node, bridge, in_port, pkt, out, hops):
        if hops > MAX_HOPS:
            raise AssertionError("forwarding loop")
        tbl = self.bridges.get((node, bridge))
        if tbl is None:
            return
        pkt = dict(pkt, in_port=in_port)
        pkt.setdefault("vlan_vid", 0)
        for k in ("metadata", t.REG_IN_PORT, t.REG_OUT_PORT):
            pkt[k] = 0
        table = 0
        while table is not None:
            f = tbl.lookup(table, pkt)
            if f is None:
                return
            table = None
            for a in f.actions:
                op = a[0]
                if op == "goto":
                    table = a[1]
                elif op == "write_metadata":
                    pkt["metadata"] = (pkt["metadata"] & ~a[2]) | (a[1] & a[2])
                elif op == "set_field":
                    pkt[a[1]] = a[2]
                elif op == "push_vlan":
                    assert pkt["vlan_vid"] == 0, "double tagging"
                    pkt["vlan_vid"] = 0x1000
                elif op == "pop_vlan":
                    pkt["vlan_vid"] = 0
                elif op == "move":
                    pkt[a[2]] = pkt.get(a[1])
                elif op == "output":
                    self._output(node, bridge, in_port, a[1], dict(pkt), out, hops)
                elif op in ("controller", "meter", "ct", "dec_ttl", "resubmit"):
                    out.append((node, a[0], dict(pkt)))
                else:
                    raise AssertionError(f"fake table does not know {a}")

    def _output(self, node, bridge, in_port, port, pkt, out, hops):
        if port == "in_port":
            port = in_port
        elif port == in_port:
            return                                 # OpenFlow never hairpins implicitly
        clean = {k: v for k, v in pkt.items() if k not in ("metadata", "in_port")
                 and not k.startswith("reg")}
        if bridge == "br-int":
            if port == t.INT_PATCH_TUN_OFPORT:
                return self._process(node, "br-tun", t.TUN_PATCH_INT_OFPORT, clean, out, hops + 1)
            for i, (_pn, br) in enumerate(self.world.nodes[node].bridge_mappings):
                if port == t.int_patch_phys_ofport(i):
                    return self._process(node, br, t.PHYS_PATCH_INT_OFPORT, clean, out, hops + 1)
            out.append((node, port, clean))
        elif bridge == "br-tun":
            if port == t.TUN_PATCH_INT_OFPORT:
                return self._process(node, "br-int", t.INT_PATCH_TUN_OFPORT, clean, out, hops + 1)
            if port == t.TUN_TUNNEL_OFPORT:
                assert clean["vlan_vid"] == 0, "tagged frame into a tunnel"
                dst = self.ip_to_node.get(clean.pop("tun_ipv4_dst"))
                if dst is not None:
                    self._process(dst, "br-tun", t.TUN_TUNNEL_OFPORT, clean, out, hops + 1)
        else:   # a br-ethX: NORMAL floods between the patch and the wire
            physnet = dict((b, p) for p, b in self.world.nodes[node].bridge_mappings)[bridge]
            if port != "normal":
                raise AssertionError(f"br-ethX outputs only NORMAL, not {port}")
            if in_port == t.PHYS_PATCH_INT_OFPORT:
                for other in self.world.nodes.values():
                    if other.id == node:
                        continue
                    for p, br in other.bridge_mappings:
                        if p == physnet:
                            self._process(other.id, br, WIRE_OFPORT, clean, out, hops + 1)
            else:
                self._process(node, "br-int", _phys_patch(self.world.nodes[node], bridge),
                              clean, out, hops + 1)


def _phys_patch(node, bridge):
    for i, (_pn, br) in enumerate(node.bridge_mappings):
        if br == bridge:
            return t.int_patch_phys_ofport(i)


def _matches(m, pkt) -> bool:
    for k, v in m:
        have = pkt.get(k)
        if have is None:
            return False
        if isinstance(v, tuple):
            val, mask = v
            if _num(k, have) & _num(k, mask) != _num(k, val) & _num(k, mask):
                return False
        elif _num(k, have) != _num(k, v):
            return False
    return True


def _num(k, v) -> int:
    if isinstance(v, int):
        return v
    if ":" in v and k.startswith(("eth", "arp_sha", "arp_tha")):
        return int(v.replace(":", ""), 16)
    return int(ipaddress.ip_address(v))


# --- building worlds by hand -------------------------------------------------

def make_world(nodes, networks, ports, subnets=()):
    """A World with local VLANs assigned the way load_world does."""
    from controller.flows.snapshot import assign_local_vlans
    from controller.flows.world import World, needed_local_vlans
    w = World(nodes={n.id: n for n in nodes}, networks={n.id: n for n in networks},
              subnets={s.id: s for s in subnets}, ports={p.id: p for p in ports})
    return World(nodes=w.nodes, networks=w.networks, subnets=w.subnets, ports=w.ports,
                 local_vlans=assign_local_vlans({}, needed_local_vlans(w)))


def compile_all(world) -> dict:
    from controller.flows.compiler import compile_node
    return {n.id: compile_node(world, n).flows for n in world.nodes.values()}


def fabric(world) -> FakeFabric:
    return FakeFabric(world, compile_all(world))
