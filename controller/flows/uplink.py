"""Where a network leaves a node's br-int: the patch port to br-tun (tunnelled
networks) or to br-ethX (flat/vlan on a mapped physical network); `local`
networks, and networks whose physnet the node does not map, have none."""
from __future__ import annotations

from dataclasses import dataclass

from controller.flows import tables as t
from controller.model.world import NetworkInfo, NodeInfo
from controller.protocols import ETH_TYPE_8021Q

TUNNEL_TYPES = ("gre", "vxlan", "geneve")
PHYSICAL_TYPES = ("flat", "vlan")


@dataclass(frozen=True)
class Uplink:
    ofport: int              # on br-int
    bridge: str              # "br-tun" or the br-ethX name
    provider_vlan: int | None = None   # vlan networks: the tag on the wire; flat: None


def uplink_of(node: NodeInfo, net: NetworkInfo) -> Uplink | None:
    bridges = dict(node.bridges)
    if net.network_type in TUNNEL_TYPES:
        if "br-tun" in bridges and node.tunnel_ip:
            return Uplink(t.INT_PATCH_TUN_OFPORT, "br-tun")
        return None
    if net.network_type in PHYSICAL_TYPES:
        for i, (physnet, bridge) in enumerate(node.bridge_mappings):
            if physnet == net.physical_network:
                vlan = net.segmentation_id if net.network_type == "vlan" else None
                return Uplink(t.int_patch_phys_ofport(i), bridge, vlan)
    return None


def tagged(vlan: int) -> int:
    """vlan_vid value of a tagged packet (OFPVID_PRESENT | vid)."""
    return 0x1000 | vlan


def push_local_vlan(vlan: int) -> tuple:
    return (("push_vlan", ETH_TYPE_8021Q), ("set_field", "vlan_vid", tagged(vlan)))


def is_usable(net: NetworkInfo | None) -> bool:
    """A network whose traffic flows at all (admin_state_up=false stops it)."""
    return net is not None and net.admin_state_up
