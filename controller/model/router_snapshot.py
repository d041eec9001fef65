"""The part of the World the router app (controller/apps/l3_arp.py) reads:
nodes, routers with their own ports, the networks and subnets they sit on,
and those networks' local VLANs. No VM port is read, so its cost follows
the number of routers, not of ports: it runs at every gateway ARP retry
(each second while a MAC is unknown) and refresh.
"""
from __future__ import annotations

from sqlalchemy import select

from controller.db import models as m
from controller.model import neighbours, owners
from controller.model import settings as model_settings
from controller.model.settings import Settings
from controller.model.snapshot import _network, _node, _port, _router, _subnet
from controller.model.world import World


def load_router_world(session, settings: Settings | None = None) -> World:
    nodes = {n.id: _node(n) for n in session.scalars(select(m.Node))}
    host_to_node = {n.hostname: n.id for n in nodes.values()}
    rows = session.scalars(select(m.Router)).all()
    gw_ids = {r.gw_port_id for r in rows if r.gw_port_id}
    ports = {p.id: _port(p, host_to_node) for p in session.scalars(
        select(m.Port).where(m.Port.device_owner.in_(owners.ROUTER_PORTS) | m.Port.id.in_(gw_ids)))}
    net_ids = {p.network_id for p in ports.values()}
    net_rows = session.scalars(select(m.Network).where(m.Network.id.in_(net_ids))).all()
    networks = {n.id: _network(n) for n in net_rows}
    subnets = {s.id: _subnet(s) for n in net_rows for s in n.subnets}     # selectin-loaded
    routers = {r.id: _router(r, ports, subnets) for r in rows}
    vlans = {(v.node_id, v.network_id): v.vlan
             for v in session.scalars(select(m.LocalVlan).where(m.LocalVlan.network_id.in_(net_ids)))}
    return World(nodes=nodes, networks=networks, subnets=subnets, ports=ports, routers=routers,
                 local_vlans=vlans, neighbours=neighbours.snapshot(),
                 settings=settings or model_settings.current())

