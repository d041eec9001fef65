"""The model snapshot flow compilers read: plain frozen data, no DB session.

`load_world(session)` (controller/model/snapshot.py) builds it from the
database; unit tests build it by hand. A compiler is a pure function
`(world, node) -> list[Flow]`: the World carries the settings it depends on
too (World.settings), so a compiler reads nothing but its arguments.
"""
from __future__ import annotations

import bisect
import dataclasses
import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from controller.model.settings import Settings


# Conntrack zones of one datapath: security groups use one zone per VM port,
# its ofport (OVS numbers ports it picks itself 1..32767), routers' NAT the
# upper half, so the two never meet.
ROUTER_ZONE_MIN, ROUTER_ZONES = 32768, 32768     # conntrack zones 32768..65535 for routers


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
    security_groups: tuple[str, ...] = ()      # group ids, sorted


@dataclass(frozen=True)
class SecurityGroupRuleInfo:
    """One rule as the API stores it (controller/api/sg_rules.py normalises it)."""
    id: str
    direction: str                             # "ingress" (to the port) | "egress" (from it)
    ethertype: str                             # "IPv4" | "IPv6"
    protocol: str | None = None                # name or number as text; None: any
    port_range_min: int | None = None          # ports, or ICMP type
    port_range_max: int | None = None          # ports, or ICMP code
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None


@dataclass(frozen=True)
class SecurityGroupInfo:
    id: str
    project_id: str
    name: str
    rules: tuple[SecurityGroupRuleInfo, ...] = ()   # by id

    def __hash__(self):
        """Hashed once: every port's memoized flows are keyed by its groups."""
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.id, self.project_id, self.name, self.rules))
            object.__setattr__(self, "_hash", h)
        return h


@dataclass(frozen=True)
class RouterInterface:
    """One address of a router on a subnet (a `network:router_interface` port)."""
    port_id: str
    network_id: str
    subnet_id: str
    ip: str                                    # the router's address (usually the subnet gateway)
    mac: str
    cidr: str


@dataclass(frozen=True)
class RouterGateway:
    """The router's port on an external network."""
    port_id: str
    network_id: str
    subnet_id: str
    ip: str                                    # SNAT address
    mac: str
    cidr: str
    nexthop: str | None                        # the external subnet's gateway_ip


@dataclass(frozen=True)
class RouterInfo:
    id: str
    project_id: str
    admin_state_up: bool
    enable_snat: bool
    interfaces: tuple[RouterInterface, ...] = ()
    gateway: RouterGateway | None = None
    routes: tuple[tuple[str, str], ...] = ()   # extra routes (destination, nexthop)


@dataclass(frozen=True)
class FloatingIPInfo:
    id: str
    address: str
    network_id: str                            # the external (floating) network
    port_id: str | None                        # the associated internal port
    fixed_ip: str | None
    router_id: str | None


@dataclass(frozen=True)
class World:
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    networks: dict[str, NetworkInfo] = field(default_factory=dict)
    subnets: dict[str, SubnetInfo] = field(default_factory=dict)
    ports: dict[str, PortInfo] = field(default_factory=dict)
    # (node_id, network_id) -> local VLAN on that node's br-int
    local_vlans: dict[tuple[str, str], int] = field(default_factory=dict)
    # port_id -> index of its metadata source address (controller/model/metadata_addresses.py)
    metadata_indexes: dict[str, int] = field(default_factory=dict)
    routers: dict[str, RouterInfo] = field(default_factory=dict)
    floatingips: dict[str, FloatingIPInfo] = field(default_factory=dict)
    # (network_id, ip) -> MAC resolved by the controller (external gateways)
    neighbours: dict[tuple[str, str], str] = field(default_factory=dict)
    settings: Settings = Settings()       # configuration the compilers depend on
    security_groups: dict[str, SecurityGroupInfo] = field(default_factory=dict)

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
        return set(self._plugged_by_network.get(network_id, ()))

    def with_ports(self, ports: dict[str, "PortInfo"], ids, **changes) -> "World":
        """This World with `ports` instead, where only the ports `ids` may
        differ (new, changed or gone), and `changes` to other fields. The
        port indexes this World already built are patched for those ports
        rather than rebuilt: O(change), not O(ports), for the reconciler's
        port-up path (snapshot.refresh_ports)."""
        new = dataclasses.replace(self, ports=ports, **changes)
        gone = [self.ports[i] for i in ids if i in self.ports]
        came = [ports[i] for i in ids if i in ports]
        mine, theirs = self.__dict__, new.__dict__     # where cached_property keeps its values
        if "_ports_by_node" in mine:
            theirs["_ports_by_node"] = _patched(mine["_ports_by_node"], gone, came, _plugged_node,
                                                _by_ofport)
        if "_ports_by_network" in mine:
            theirs["_ports_by_network"] = _patched(mine["_ports_by_network"], gone, came,
                                                   lambda p: p.network_id, _by_id)
        if "_plugged_by_network" in mine:
            idx = dict(mine["_plugged_by_network"])
            for sign, some in ((-1, gone), (1, came)):
                for p in some:
                    if _plugged_node(p):
                        counts = idx[p.network_id] = dict(idx.get(p.network_id, {}))
                        counts[p.node_id] = counts.get(p.node_id, 0) + sign
                        if not counts[p.node_id]:
                            del counts[p.node_id]
            theirs["_plugged_by_network"] = {k: v for k, v in idx.items() if v}
        return new

    def router_zone(self, router_id: str) -> int:
        """The router's conntrack zone, also its number in reg6. Zones start
        above 4095 so they never meet zones numbered by local VLAN."""
        return self._router_zones[router_id]

    def router_host(self, router_id: str) -> str | None:
        """The gateway node that runs this router's SNAT and floating IPs."""
        return self._router_hosts.get(router_id)

    def routers_of_network(self, network_id: str) -> list[RouterInfo]:
        return [r for r in self.routers.values()
                if any(i.network_id == network_id for i in r.interfaces)]

    def group_members(self, group_id: str) -> tuple[str, ...]:
        """The addresses (IPs and allowed-pair CIDRs, both versions) of the
        ports in a group: what a rule with this remote_group_id admits."""
        return self._group_members.get(group_id, ())

    # Indexes, built once per snapshot (a World is immutable).
    @cached_property
    def _group_members(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, set[str]] = {}
        for p in self.ports.values():
            if not p.security_groups:
                continue
            addrs = {ip for _s, ip in p.fixed_ips} | {ip for ip, _mac in p.allowed_address_pairs}
            for g in p.security_groups:
                out.setdefault(g, set()).update(addrs)
        return {g: tuple(sorted(a)) for g, a in out.items()}

    @cached_property
    def _router_zones(self) -> dict[str, int]:
        """Stable without storage: a hash of the router id, probing upwards
        on a clash (routers in id order, so a clash only moves the newer id
        when it sorts later)."""
        used: set[int] = set()
        out = {}
        for rid in sorted(self.routers):
            zone = ROUTER_ZONE_MIN + int(hashlib.sha256(rid.encode()).hexdigest()[:8], 16) % ROUTER_ZONES
            while zone in used:
                zone = ROUTER_ZONE_MIN + (zone - ROUTER_ZONE_MIN + 1) % ROUTER_ZONES
            used.add(zone)
            out[rid] = zone
        return out

    @cached_property
    def _router_hosts(self) -> dict[str, str]:
        """router -> gateway node: among the gateway nodes that map the
        external network's physical network, one picked by router id (so
        routers spread over several gateways and the choice is stable)."""
        out = {}
        for r in self.routers.values():
            ext = self.networks.get(r.gateway.network_id) if r.gateway else None
            if ext is None or not ext.physical_network:
                continue
            hosts = sorted(n.id for n in self.nodes.values() if n.is_gateway
                           and ext.physical_network in dict(n.bridge_mappings))
            if hosts:
                out[r.id] = hosts[int(hashlib.sha256(r.id.encode()).hexdigest()[:8], 16) % len(hosts)]
        return out


    # The port indexes are patched, not rebuilt, by with_ports (keep both in step).
    @cached_property
    def _ports_by_node(self) -> dict[str, list[PortInfo]]:
        out: dict[str, list[PortInfo]] = {}
        for p in sorted(self.ports.values(), key=_by_ofport):
            if _plugged_node(p):
                out.setdefault(p.node_id, []).append(p)
        return out

    @cached_property
    def _ports_by_network(self) -> dict[str, list[PortInfo]]:
        out: dict[str, list[PortInfo]] = {}
        for p in sorted(self.ports.values(), key=_by_id):
            out.setdefault(p.network_id, []).append(p)
        return out

    @cached_property
    def _plugged_by_network(self) -> dict[str, dict[str, int]]:
        """network -> {node: how many of its ports are plugged there}."""
        out: dict[str, dict[str, int]] = {}
        for p in self.ports.values():
            if _plugged_node(p):
                counts = out.setdefault(p.network_id, {})
                counts[p.node_id] = counts.get(p.node_id, 0) + 1
        return out


def _plugged_node(p: PortInfo) -> str | None:
    return p.node_id if p.node_id and p.ofport else None


def _by_ofport(p: PortInfo):
    return (p.ofport or 0, p.id)


def _by_id(p: PortInfo):
    return p.id


def _patched(index: dict, gone: list, came: list, key_of, sort_key) -> dict:
    """A copy of `index` (key -> list sorted by sort_key) without the
    objects `gone` and with `came` inserted in order; lists of other keys
    are shared, not copied."""
    out = dict(index)
    for k in {key_of(p) for p in gone + came} - {None}:
        drop = {id(p) for p in gone if key_of(p) == k}
        lst = [p for p in out.get(k, ()) if id(p) not in drop] if drop else list(out.get(k, ()))
        for p in came:
            if key_of(p) == k:
                bisect.insort(lst, p, key=sort_key)
        if lst:
            out[k] = lst
        else:
            out.pop(k, None)
    return out


def needed_local_vlans(world: World) -> set[tuple[str, str]]:
    """(node, network) pairs that need a local VLAN: a port of the network is
    plugged into the node. Shared by load_world and the tests' world builder.
    Routers add theirs (router_local_vlans)."""
    pairs = {(node, net) for net, nodes in world._plugged_by_network.items()
             if net in world.networks for node in nodes if node in world.nodes}
    return pairs | router_local_vlans(world, pairs)


def router_local_vlans(world: World, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Distributed routing delivers into every network of a router on any
    node that has one of them; the router's gateway node carries all of its
    networks and the external one (SNAT and floating IPs run there)."""
    out: set[tuple[str, str]] = set()
    for r in world.routers.values():
        nets = {i.network_id for i in r.interfaces if i.network_id in world.networks}
        for node, net in pairs:
            if net in nets:
                out |= {(node, n) for n in nets}
        host = world.router_host(r.id)
        if host is not None:
            out |= {(host, n) for n in nets | {r.gateway.network_id}}
    return out
