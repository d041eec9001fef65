"""Build the World snapshot the flow compilers read, from the database.

`load_world(session)` reads every row the compilers need, the settings they
depend on (controller/model/settings.py: from the running configuration
unless given) and makes sure each (node, network) pair with a plugged port
has a local VLAN and each plugged VM port a metadata index
(controller/model/allocation.py, stored: a restarted controller then
computes the very same flows, and a switch that already has them gets zero
flow_mods). Pairs no longer needed give their VLAN back. Call it inside a
write transaction (Database.run_in_transaction) so two allocations cannot
collide.

The reconciler does not reload everything every round (that cost 0.1-0.6 s
with a few hundred ports, holding SQLite's write lock): it reads the world
once in a read-only snapshot (`Database.read()` + `load_world(allocate=False)`),
then `refresh_ports` re-reads only the ports a round is about, keeping every
other object (same identity: memoized compiler pieces stay valid), and only
when `allocation_needed` says so does it open a write transaction for
`allocate` (new local VLANs or metadata indexes).
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from sqlalchemy import bindparam, select

from controller.db import models as m
from controller.model import neighbours, owners
from controller.model import settings as model_settings
from controller.model.allocation import (assign_local_vlans, metadata_indexes, store_local_vlans,
                                         stored_local_vlans)
from controller.model.metadata_addresses import wants_metadata
from controller.model.settings import Settings
from controller.model.world import (FloatingIPInfo, NetworkInfo, NodeInfo, PortInfo, RouterGateway,
                                    RouterInfo, RouterInterface, SecurityGroupInfo,
                                    SecurityGroupRuleInfo, SubnetInfo, World, needed_local_vlans)


def load_world(session, allocate: bool = True, settings: Settings | None = None) -> World:
    nodes = {n.id: _node(n) for n in session.scalars(select(m.Node))}
    networks = {n.id: _network(n) for n in session.scalars(select(m.Network))}
    subnets = {s.id: _subnet(s) for s in session.scalars(select(m.Subnet))}
    host_to_node = {n.hostname: n.id for n in nodes.values()}
    ports = {p.id: _port(p, host_to_node) for p in session.scalars(select(m.Port))}
    routers = {r.id: _router(r, ports, subnets) for r in session.scalars(select(m.Router))}
    fips = {f.id: _floatingip(f) for f in session.scalars(select(m.FloatingIP))}
    existing = stored_local_vlans(session)
    l3 = dict(routers=routers, floatingips=fips, neighbours=neighbours.snapshot())
    world = World(nodes=nodes, networks=networks, subnets=subnets, ports=ports,
                  settings=settings or model_settings.current(), **l3,
                  security_groups=load_security_groups(session))
    if allocate:
        return _allocate(session, world, existing)
    return dataclasses.replace(world, local_vlans=existing, metadata_indexes=metadata_indexes(
        session, ports, world.settings.metadata, False))


def allocate(session, world: World) -> World:
    """`world` with the local VLANs and metadata indexes it needs allocated
    (stored rows re-read here, inside the caller's write transaction;
    allocate_stored retries when another controller's allocation met ours)."""
    return _allocate(session, world, stored_local_vlans(session))


def allocate_stored(db, world: World) -> World:
    """allocate() in its own write transaction. Several controllers on one
    PostgreSQL may allocate the same pair at once (read committed): the primary
    key refuses the second insert, and the retry re-reads the rows the first
    one stored and keeps them."""
    return db.run_in_transaction(allocate, world, retry_integrity=True)


def _allocate(session, world: World, existing) -> World:
    wanted = assign_local_vlans(existing, needed_local_vlans(world))
    if wanted != existing:
        store_local_vlans(session, existing, wanted)
    return dataclasses.replace(world, local_vlans=wanted, metadata_indexes=metadata_indexes(
        session, world.ports, world.settings.metadata, True))


def allocation_needed(world: World, port_ids=None) -> bool:
    """Would `allocate` change anything? Local VLANs: checked whole (cheap
    set arithmetic). Metadata indexes: ports that are gone hold one, or one
    of `port_ids` (all ports when None) wants one and has none; an index is
    never taken from a live port, so other ports need no look."""
    if assign_local_vlans(world.local_vlans, needed_local_vlans(world)) != world.local_vlans:
        return True
    if world.settings.metadata is None:
        return False
    if world.metadata_indexes.keys() - world.ports.keys():
        return True
    ids = world.ports.keys() if port_ids is None else port_ids
    have = world.metadata_indexes
    return any(pid not in have and pid in world.ports and wants_metadata(world.ports[pid])
               for pid in ids)


def refresh_ports(session, world: World, port_ids) -> World:
    """`world` with these ports read again (new, changed or deleted); every
    other object is kept as it is. Routers are rebuilt when a router port is
    among them (interfaces and gateways come from ports), floating IPs when
    one points at them. Local VLANs and metadata indexes stay as stored; see
    allocation_needed / allocate."""
    ids = set(port_ids)
    if not ids:
        return world
    host_to_node = {n.hostname: n.id for n in world.nodes.values()}
    fresh = {p.id: _port(p, host_to_node) for p in _port_rows(session, sorted(ids))}
    ports = dict(world.ports)
    for pid in ids:
        if pid in fresh:
            ports[pid] = fresh[pid]
        else:
            ports.pop(pid, None)
    changes = {}
    touched = [p for pid in ids for p in (world.ports.get(pid), fresh.get(pid)) if p is not None]
    gw_ports = {r.gateway.port_id for r in world.routers.values() if r.gateway}
    if any(p.device_owner.startswith("network:router") or p.id in gw_ports for p in touched):
        changes["routers"] = {r.id: _router(r, ports, world.subnets)
                              for r in session.scalars(select(m.Router))}
    if any(f.port_id in ids for f in world.floatingips.values()):
        changes["floatingips"] = {f.id: _floatingip(f) for f in session.scalars(select(m.FloatingIP))}
    return world.with_ports(ports, ids, neighbours=neighbours.snapshot(), **changes)


def _port_rows(session, ids: list[str]) -> list:
    """Port rows with their fixed IPs and groups, as plain SQL (the ORM's
    objects and selectin loads cost several ms a round), shaped for _port()."""
    ips: dict[str, list] = {}
    for a in session.execute(_PORT_IPS, {"ids": ids}):
        ips.setdefault(a.port_id, []).append(a)
    groups: dict[str, list] = {}
    for b in session.execute(_PORT_GROUPS, {"ids": ids}):
        groups.setdefault(b.port_id, []).append(b)
    return [SimpleNamespace(**r._mapping, fixed_ips=ips.get(r.id, []),
                            security_groups=groups.get(r.id, []))
            for r in session.execute(_PORT_ROWS, {"ids": ids})]


def load_security_groups(session) -> dict[str, SecurityGroupInfo]:
    rules: dict[str, list] = {}
    for r in session.scalars(select(m.SecurityGroupRule).order_by(m.SecurityGroupRule.id)):
        rules.setdefault(r.security_group_id, []).append(SecurityGroupRuleInfo(
            id=r.id, direction=r.direction, ethertype=r.ethertype or "IPv4", protocol=r.protocol,
            port_range_min=r.port_range_min, port_range_max=r.port_range_max,
            remote_ip_prefix=r.remote_ip_prefix, remote_group_id=r.remote_group_id))
    return {g.id: SecurityGroupInfo(id=g.id, project_id=g.project_id, name=g.name or "",
                                    rules=tuple(rules.get(g.id, ())))
            for g in session.scalars(select(m.SecurityGroup))}


# Built once: building the statements cost more than running them.
_PT, _AT = m.Port.__table__, m.IPAllocation.__table__
_PORT_IPS = (select(_AT.c.port_id, _AT.c.subnet_id, _AT.c.ip_address)
             .where(_AT.c.port_id.in_(bindparam("ids", expanding=True))).order_by(_AT.c.ip_address))
_BT = m.PortSecurityGroup.__table__
_PORT_GROUPS = select(_BT.c.port_id, _BT.c.security_group_id).where(
    _BT.c.port_id.in_(bindparam("ids", expanding=True)))
_PORT_ROWS = select(*[_PT.c[n] for n in (
    "id", "network_id", "project_id", "mac_address", "device_owner", "device_id", "admin_state_up",
    "port_security_enabled", "allowed_address_pairs", "host_id", "vif_type", "ofport")]).where(
    _PT.c.id.in_(bindparam("ids", expanding=True)))


def _node(n: m.Node) -> NodeInfo:
    return NodeInfo(id=n.id, hostname=n.hostname, role=n.role or "compute",
                    tunnel_ip=n.tunnel_ip or None, tunnel_type=n.tunnel_type or "gre",
                    bridge_mappings=tuple((n.bridge_mappings or {}).items()),
                    bridges=tuple(sorted((k, int(v)) for k, v in (n.bridges or {}).items())))


def _network(n: m.Network) -> NetworkInfo:
    return NetworkInfo(id=n.id, project_id=n.project_id, network_type=n.network_type,
                       physical_network=n.physical_network, segmentation_id=n.segmentation_id,
                       mtu=n.mtu, admin_state_up=bool(n.admin_state_up), external=bool(n.external))


def _subnet(s: m.Subnet) -> SubnetInfo:
    return SubnetInfo(id=s.id, network_id=s.network_id, ip_version=s.ip_version, cidr=s.cidr,
                      gateway_ip=s.gateway_ip, enable_dhcp=bool(s.enable_dhcp),
                      dns_nameservers=tuple(s.dns_nameservers or ()),
                      host_routes=tuple((r["destination"], r["nexthop"]) for r in (s.host_routes or ())))


def _port(p: m.Port, host_to_node: dict[str, str]) -> PortInfo:
    bound = p.vif_type not in ("unbound", "binding_failed", "") and p.host_id and p.ofport
    node_id = host_to_node.get(p.host_id) if bound else None
    pairs = tuple((a["ip_address"], (a.get("mac_address") or p.mac_address).lower())
                  for a in (p.allowed_address_pairs or ()))
    return PortInfo(id=p.id, network_id=p.network_id, project_id=p.project_id,
                    mac=p.mac_address.lower(),
                    fixed_ips=tuple((a.subnet_id, a.ip_address) for a in p.fixed_ips),
                    device_owner=p.device_owner or "", device_id=p.device_id or "",
                    admin_state_up=bool(p.admin_state_up),
                    port_security_enabled=bool(p.port_security_enabled),
                    allowed_address_pairs=pairs,
                    node_id=node_id, ofport=p.ofport if node_id else None,
                    security_groups=tuple(sorted(b.security_group_id for b in p.security_groups)))


def _router(r: m.Router, ports: dict[str, PortInfo], subnets: dict[str, SubnetInfo]) -> RouterInfo:
    interfaces = []
    for p in sorted(ports.values(), key=lambda p: p.id):
        if p.device_id != r.id or p.device_owner not in owners.ROUTER_INTERFACES:
            continue
        for subnet_id, ip in p.fixed_ips:
            s = subnets.get(subnet_id)
            if s is not None and s.ip_version == 4:
                interfaces.append(RouterInterface(port_id=p.id, network_id=p.network_id,
                                                  subnet_id=subnet_id, ip=ip, mac=p.mac, cidr=s.cidr))
    gateway = None
    gw = ports.get(r.gw_port_id) if r.gw_port_id else None
    for subnet_id, ip in (gw.fixed_ips if gw else ()):
        s = subnets.get(subnet_id)
        if s is not None and s.ip_version == 4:
            gateway = RouterGateway(port_id=gw.id, network_id=gw.network_id, subnet_id=subnet_id,
                                    ip=ip, mac=gw.mac, cidr=s.cidr, nexthop=s.gateway_ip)
            break
    routes = tuple((x["destination"], x["nexthop"]) for x in (r.routes or ())
                   if isinstance(x, dict) and "destination" in x and "nexthop" in x)
    return RouterInfo(id=r.id, project_id=r.project_id, admin_state_up=bool(r.admin_state_up),
                      enable_snat=bool(r.enable_snat), interfaces=tuple(interfaces),
                      gateway=gateway, routes=routes)


def _floatingip(f: m.FloatingIP) -> FloatingIPInfo:
    return FloatingIPInfo(id=f.id, address=f.floating_ip_address, network_id=f.floating_network_id,
                          port_id=f.port_id, fixed_ip=f.fixed_ip_address, router_id=f.router_id)
