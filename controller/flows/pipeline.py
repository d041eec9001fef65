"""The skeleton of every bridge: table-miss entries and the glue between
tables. Other compilers add the interesting flows at higher priorities.

br-int: CLASSIFY and PORT_SECURITY drop what they do not know; the service
tables (ARP responder, DHCP, metadata, ACLs, L3, NAT) pass a miss on to the
next table, so a concern that has nothing to say stays out of the way;
L2_LOOKUP and OUTPUT drop on a miss.
br-tun: patch-int -> TO_TUNNEL, tunnel port -> FROM_TUNNEL, anything else drops.
br-ethX: Quantum's layout: NORMAL, except untranslated traffic from br-int.
"""
from __future__ import annotations

from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.flow import Flow, match
from controller.model.world import NodeInfo, World

INT_DROP_ON_MISS = (t.IntTable.CLASSIFY, t.IntTable.PORT_SECURITY,
                    t.IntTable.L2_LOOKUP, t.IntTable.OUTPUT)


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


def int_skeleton(c: int) -> list[Flow]:
    flows = [Flow("br-int", table, t.PRIO_MISS, (), (), c) for table in INT_DROP_ON_MISS]
    flows += [Flow("br-int", src, t.PRIO_MISS, (), (("goto", int(dst)),), c)
              for src, dst in t.INT_PASS_THROUGH]
    return flows


def tun_skeleton(c: int) -> list[Flow]:
    T = t.TunTable
    return [
        Flow("br-tun", T.CLASSIFY, t.PRIO_MISS, (), (), c),
        Flow("br-tun", T.CLASSIFY, t.PRIO_DEFAULT, match(in_port=t.TUN_PATCH_INT_OFPORT),
             (("goto", int(T.TO_TUNNEL)),), c),
        Flow("br-tun", T.CLASSIFY, t.PRIO_DEFAULT, match(in_port=t.TUN_TUNNEL_OFPORT),
             (("goto", int(T.FROM_TUNNEL)),), c),
        Flow("br-tun", T.TO_TUNNEL, t.PRIO_MISS, (), (), c),
        Flow("br-tun", T.FROM_TUNNEL, t.PRIO_MISS, (), (), c),
    ]


def phys_skeleton(bridge: str, c: int) -> list[Flow]:
    T = t.PhysTable
    return [
        # From the wire: NORMAL (learning switch) hands it to br-int, which
        # translates provider VLAN -> network or drops unknown VLANs.
        Flow(bridge, T.CLASSIFY, 1, (), (("output", "normal"),), c),
        # From br-int, only what a translation flow (priority 4) allows.
        Flow(bridge, T.CLASSIFY, 2, match(in_port=t.PHYS_PATCH_INT_OFPORT), (), c),
    ]
