"""A fake OpenFlow pipeline for unit tests (in the spirit of Faucet's
clib/fakeoftable.py). The packet walker itself lives in the product,
controller/flows/trace.py (the console's Trace page uses it too); this module
keeps the tests' names and adds helpers that build worlds by hand.

    fab = fabric(world)                  # every node's compiled flows
    out = fab.send(node_id, ofport, pkt) # [(node, ofport | "controller", packet), ...]
"""
from __future__ import annotations

from controller.flows.trace import MAX_HOPS, WIRE_OFPORT, Fabric, FlowTable

FakeTable = FlowTable
__all__ = ["FakeTable", "FakeFabric", "MAX_HOPS", "WIRE_OFPORT", "make_world", "compile_all", "fabric"]


class FakeFabric(Fabric):
    def __init__(self, world, compiled: dict):
        """compiled: node_id -> list[Flow] (what the reconciler would install)."""
        super().__init__(world, compiled, strict=True)


# --- building worlds by hand -------------------------------------------------

def make_world(nodes, networks, ports, subnets=()):
    """A World with local VLANs assigned the way load_world does."""
    from controller.model.allocation import assign_local_vlans
    from controller.model.world import World, needed_local_vlans
    w = World(nodes={n.id: n for n in nodes}, networks={n.id: n for n in networks},
              subnets={s.id: s for s in subnets}, ports={p.id: p for p in ports})
    return World(nodes=w.nodes, networks=w.networks, subnets=w.subnets, ports=w.ports,
                 local_vlans=assign_local_vlans({}, needed_local_vlans(w)))


def compile_all(world) -> dict:
    from controller.flows.compiler import compile_node
    return {n.id: compile_node(world, n).flows for n in world.nodes.values()}


def fabric(world) -> FakeFabric:
    return FakeFabric(world, compile_all(world))
