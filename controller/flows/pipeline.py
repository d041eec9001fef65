"""The skeleton of every bridge: table-miss entries and the glue between
tables, as declared in controller/flows/tables.py (each table's `miss`).
Other compilers add the interesting flows at higher priorities.

br-int: CLASSIFY, PORT_SECURITY, L3_ROUTE, L2_LOOKUP and OUTPUT drop what
they do not know; the service tables (ARP responder, DHCP, metadata, ACLs,
L3, NAT) pass a miss on to the next table, so a concern that has nothing to
say stays out of the way.
br-tun: patch-int -> TO_TUNNEL, tunnel port -> FROM_TUNNEL, anything else drops.
br-ethX: Quantum's layout: NORMAL, except untranslated traffic from br-int.
"""
from __future__ import annotations

from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.flow import Flow, match
from controller.model.world import NodeInfo, World

# br-ethX's NORMAL "miss" has priority 1 (so it has been installed since the
# first release: another priority would re-install it on every switch).
PRIO_NORMAL = 1


def compile_pipeline(world: World, node: NodeInfo) -> list[Flow]:
    bridges = dict(node.bridges)
    out: list[Flow] = []
    c = cookies.cookie("infra", node.id)
    if "br-int" in bridges:
        out += int_skeleton(c)
    if "br-tun" in bridges:
        out += tun_skeleton(c)
    for _physnet, bridge in node.bridge_mappings:
        if bridge in bridges:
            out += phys_skeleton(bridge, c)
    return out


def miss_flows(bridge: str, c: int) -> list[Flow]:
    """One table-miss flow per declared table of the bridge."""
    out = []
    for table in t.stages(bridge):
        miss = table.miss
        if miss == t.DROP:
            out.append(Flow(bridge, table, t.PRIO_MISS, (), (), c))
        elif miss == t.NORMAL:
            out.append(Flow(bridge, table, PRIO_NORMAL, (), (("output", "normal"),), c))
        else:
            out.append(Flow(bridge, table, t.PRIO_MISS, (), (("goto", int(miss)),), c))
    return out


def int_skeleton(c: int) -> list[Flow]:
    return miss_flows("br-int", c)


def tun_skeleton(c: int) -> list[Flow]:
    T = t.TunTable
    return miss_flows("br-tun", c) + [
        Flow("br-tun", T.CLASSIFY, t.PRIO_DEFAULT, match(in_port=t.TUN_PATCH_INT_OFPORT),
             (("goto", int(T.TO_TUNNEL)),), c),
        Flow("br-tun", T.CLASSIFY, t.PRIO_DEFAULT, match(in_port=t.TUN_TUNNEL_OFPORT),
             (("goto", int(T.FROM_TUNNEL)),), c),
    ]


def phys_skeleton(bridge: str, c: int) -> list[Flow]:
    # From the wire: NORMAL (learning switch) hands it to br-int, which
    # translates provider VLAN -> network or drops unknown VLANs (the miss).
    # From br-int, only what a translation flow (priority 4) allows.
    return miss_flows(bridge, c) + [
        Flow(bridge, t.PhysTable.CLASSIFY, 2, match(in_port=t.PHYS_PATCH_INT_OFPORT), (), c),
    ]
