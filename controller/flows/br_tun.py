"""br-tun: local VLAN <-> tunnel key over the ONE flow-based tunnel port.

The controller knows where every port is, so unicast goes to exactly the host
that has the destination MAC (no learning, no flooding for known MACs), and
broadcast / unknown unicast only to the hosts that have a port on the network.
Each output sets tunnel_id (the network's key) and tun_ipv4_dst (the remote
host's tunnel IP).
"""
from __future__ import annotations

from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.flow import Flow, match
from controller.flows.memo import latest_per, per_object
from controller.flows.uplink import TUNNEL_TYPES, is_usable, push_local_vlan, tagged
from controller.model.world import NetworkInfo, NodeInfo, World

T = t.TunTable


def compile_br_tun(world: World, node: NodeInfo) -> list[Flow]:
    if "br-tun" not in dict(node.bridges) or not node.tunnel_ip:
        return []
    out: list[Flow] = []
    for net in world.networks_on(node.id):
        if net.network_type not in TUNNEL_TYPES or not is_usable(net) or net.segmentation_id is None:
            continue
        vlan = world.local_vlan(node.id, net.id)
        out.append(install_from_tunnel(net, vlan))
        out += install_unicast_to_hosts(world, node, net, vlan)
        flood = install_flood_to_tunnels(world, node, net, vlan)
        if flood:
            out.append(flood)
    return out


@latest_per(lambda net, vlan: (net.id, vlan))     # the same object round after round
def install_from_tunnel(net: NetworkInfo, vlan: int) -> Flow:
    return Flow("br-tun", T.FROM_TUNNEL, t.PRIO_DEFAULT, match(tunnel_id=net.segmentation_id),
                push_local_vlan(vlan) + (("output", t.TUN_PATCH_INT_OFPORT),),
                cookies.cookie("network", net.id))


def install_unicast_to_hosts(world: World, node: NodeInfo, net: NetworkInfo, vlan: int) -> list[Flow]:
    out = []
    for p in world.ports_of_network(net.id):
        if not (p.node_id and p.ofport and p.node_id != node.id and p.admin_state_up):
            continue
        remote = world.nodes.get(p.node_id)
        if remote is None or not remote.tunnel_ip:
            continue
        out += _unicast_to(p, vlan, net, remote.tunnel_ip)
    return out


@per_object      # per remote port: unchanged ports cost a lookup (memo.py)
def _unicast_to(p, vlan: int, net: NetworkInfo, tunnel_ip: str) -> list[Flow]:
    return [Flow("br-tun", T.TO_TUNNEL, t.PRIO_DEFAULT, match(vlan_vid=tagged(vlan), eth_dst=mac),
                 _to_hosts(net, [tunnel_ip]), cookies.cookie("port", p.id))
            for mac in sorted({p.mac} | {m for _ip, m in p.allowed_address_pairs})]


def install_flood_to_tunnels(world: World, node: NodeInfo, net: NetworkInfo, vlan: int) -> Flow | None:
    ips = sorted({world.nodes[n].tunnel_ip for n in world.nodes_of_network(net.id)
                  if n != node.id and n in world.nodes and world.nodes[n].tunnel_ip})
    if not ips:
        return None
    return _flood_to(node.id, net, vlan, tuple(ips))


@latest_per(lambda node_id, net, vlan, ips: (node_id, net.id))   # the same object while the hosts stay
def _flood_to(node_id: str, net: NetworkInfo, vlan: int, ips: tuple[str, ...]) -> Flow:
    return Flow("br-tun", T.TO_TUNNEL, 1, match(vlan_vid=tagged(vlan)), _to_hosts(net, list(ips)),
                cookies.cookie("network", net.id))


def _to_hosts(net: NetworkInfo, ips: list[str]) -> tuple:
    actions: tuple = (("pop_vlan",), ("set_field", "tunnel_id", net.segmentation_id))
    for ip in ips:
        actions += (("set_field", "tun_ipv4_dst", ip), ("output", t.TUN_TUNNEL_OFPORT))
    return actions
