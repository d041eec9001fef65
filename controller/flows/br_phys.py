"""br-ethX: local VLAN -> provider VLAN (vlan) or untagged (flat) for frames
from br-int, then NORMAL (Quantum's layout). The reverse translation,
provider VLAN -> network, is on br-int's CLASSIFY table (l2.provision_local_vlan)."""
from __future__ import annotations

from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.flow import Flow, match
from controller.flows.uplink import PHYSICAL_TYPES, is_usable, tagged, uplink_of
from controller.model.world import NodeInfo, World

PRIO_TRANSLATE = 4


def compile_br_phys(world: World, node: NodeInfo) -> list[Flow]:
    bridges = dict(node.bridges)
    out: list[Flow] = []
    for net in world.networks_on(node.id):
        if net.network_type not in PHYSICAL_TYPES or not is_usable(net):
            continue
        up = uplink_of(node, net)
        if up is None or up.bridge not in bridges:
            continue
        vlan = world.local_vlan(node.id, net.id)
        if up.provider_vlan is not None:
            actions = (("set_field", "vlan_vid", tagged(up.provider_vlan)), ("output", "normal"))
        else:
            actions = (("pop_vlan",), ("output", "normal"))
        out.append(Flow(up.bridge, t.PhysTable.CLASSIFY, PRIO_TRANSLATE,
                        match(in_port=t.PHYS_PATCH_INT_OFPORT, vlan_vid=tagged(vlan)), actions,
                        cookies.cookie("network", net.id)))
    return out
