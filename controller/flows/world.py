"""The model snapshot flow compilers read: plain frozen data, no DB session.

`load_world(session)` (controller/flows/snapshot.py) builds it from the
database; unit tests build it by hand. A compiler is a pure function
`(world, node) -> list[Flow]`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class NodeInfo:
    id: str
    hostname: str
    role: str                                  # "compute", "gateway" or "compute,gateway"
    tunnel_ip: str | None
    tunnel_type: str                           # "gre" | "vxlan"
    bridge_mappings: tuple[tuple[str, str], ...] = ()   # (physnet, bridge), in order
    bridges: tuple[tuple[str, int], ...] = ()           # (bridge name, dpid)

    @property
    def is_gateway(self) -> bool:
        return "gateway" in self.role.split(",")


@dataclass(frozen=True)
class NetworkInfo:
    id: str
    project_id: str
    network_type: str                          # flat vlan gre vxlan local
    physical_network: str | None
    segmentation_id: int | None
    mtu: int
    admin_state_up: bool
    external: bool = False


@dataclass(frozen=True)
class SubnetInfo:
    id: str
    network_id: str
    ip_version: int
    cidr: str
    gateway_ip: str | None
    enable_dhcp: bool
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[tuple[str, str], ...] = ()   # (destination, nexthop)


@dataclass(frozen=True)
class PortInfo:
    id: str
    network_id: str
    project_id: str
    mac: str
    fixed_ips: tuple[tuple[str, str], ...]     # (subnet_id, ip)
    device_owner: str
    device_id: str
    admin_state_up: bool
    port_security_enabled: bool
    allowed_address_pairs: tuple[tuple[str, str], ...] = ()   # (ip or cidr, mac)
    node_id: str | None = None                 # where it is plugged (None: not plugged)
    ofport: int | None = None


@dataclass(frozen=True)
class World:
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    networks: dict[str, NetworkInfo] = field(default_factory=dict)
    subnets: dict[str, SubnetInfo] = field(default_factory=dict)
    ports: dict[str, PortInfo] = field(default_factory=dict)
    # (node_id, network_id) -> local VLAN on that node's br-int
    local_vlans: dict[tuple[str, str], int] = field(default_factory=dict)

    def ports_on(self, node_id: str) -> list[PortInfo]:
        """Ports plugged into br-int of this node (bound, with an ofport)."""
        return self._ports_by_node.get(node_id, [])

    def ports_of_network(self, network_id: str) -> list[PortInfo]:
        return self._ports_by_network.get(network_id, [])

    def local_vlan(self, node_id: str, network_id: str) -> int | None:
        return self.local_vlans.get((node_id, network_id))

    def networks_on(self, node_id: str) -> list[NetworkInfo]:
        """Networks that have a local VLAN on this node, by VLAN."""
        nets = [(v, self.networks[n]) for (nd, n), v in self.local_vlans.items()
                if nd == node_id and n in self.networks]
        return [n for _v, n in sorted(nets, key=lambda x: x[0])]

    def nodes_of_network(self, network_id: str) -> set[str]:
        """Nodes with at least one port of this network plugged in."""
        return {p.node_id for p in self.ports_of_network(network_id)
                if p.node_id and p.ofport}

    # Indexes, built once per snapshot (a World is immutable).
    @cached_property
    def _ports_by_node(self) -> dict[str, list[PortInfo]]:
        out: dict[str, list[PortInfo]] = {}
        for p in sorted(self.ports.values(), key=lambda p: (p.ofport or 0, p.id)):
            if p.node_id and p.ofport:
                out.setdefault(p.node_id, []).append(p)
        return out

    @cached_property
    def _ports_by_network(self) -> dict[str, list[PortInfo]]:
        out: dict[str, list[PortInfo]] = {}
        for p in sorted(self.ports.values(), key=lambda p: p.id):
            out.setdefault(p.network_id, []).append(p)
        return out


def needed_local_vlans(world: World) -> set[tuple[str, str]]:
    """(node, network) pairs that need a local VLAN: a port of the network is
    plugged into the node. Shared by load_world and the tests' world builder."""
    return {(p.node_id, p.network_id) for p in world.ports.values()
            if p.node_id and p.ofport and p.network_id in world.networks
            and p.node_id in world.nodes}
