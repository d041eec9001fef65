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
__all__ = ["FakeTable", "FakeFabric", "MAX_HOPS", "WIRE_OFPORT", "make_world", "compile_all", "fabric",
           "DEFAULT_SG", "group", "default_group"]


class FakeFabric(Fabric):
    def __init__(self, world, compiled: dict):
        """compiled: node_id -> list[Flow] (what the reconciler would install)."""
        super().__init__(world, compiled, strict=True)


# --- building worlds by hand -------------------------------------------------

DEFAULT_SG = "5ec00000-0000-4000-8000-000000000001"    # the tests' ports' group (port(sgs=...))


def group(gid, *rules, name=""):
    """A security group; rules as dicts of SecurityGroupRuleInfo fields."""
    from controller.model.world import SecurityGroupInfo, SecurityGroupRuleInfo
    return SecurityGroupInfo(id=gid, project_id="p1", name=name or gid[:8], rules=tuple(
        SecurityGroupRuleInfo(id=f"{gid[:24]}{i:012x}", **r) for i, r in enumerate(rules, 1)))


def default_group(gid=DEFAULT_SG):
    """Neutron's default group: all egress, ingress from members of itself."""
    return group(gid, *[{"direction": "egress", "ethertype": e} for e in ("IPv4", "IPv6")],
                 *[{"direction": "ingress", "ethertype": e, "remote_group_id": gid}
                   for e in ("IPv4", "IPv6")], name="default")


def make_world(nodes, networks, ports, subnets=(), security_groups=None, **more):
    """A World with local VLANs assigned the way load_world does. Groups the
    ports name that are not given are default groups (default_group)."""
    from controller.model.allocation import assign_local_vlans
    from controller.model.world import World, needed_local_vlans
    groups = {g.id: g for g in security_groups or ()}
    for p in ports:
        for gid in p.security_groups:
            groups.setdefault(gid, default_group(gid))
    w = World(nodes={n.id: n for n in nodes}, networks={n.id: n for n in networks},
              subnets={s.id: s for s in subnets}, ports={p.id: p for p in ports},
              security_groups=groups, **more)
    return World(nodes=w.nodes, networks=w.networks, subnets=w.subnets, ports=w.ports,
                 security_groups=w.security_groups, **more,
                 local_vlans=assign_local_vlans({}, needed_local_vlans(w)))


def compile_all(world) -> dict:
    from controller.flows.compiler import compile_node
    return {n.id: compile_node(world, n).flows for n in world.nodes.values()}


def fabric(world) -> FakeFabric:
    return FakeFabric(world, compile_all(world))
