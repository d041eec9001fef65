"""What the database says, as plain data for one page render: nodes, networks,
ports, routers, the World snapshot the compilers read, and the owner index.
One read transaction; nothing is allocated or written."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from controller.console.owners import OwnerIndex
from controller.db import models as m
from controller.model.snapshot import load_world
from controller.model.world import World


@dataclass
class Inventory:
    world: World
    nodes: dict[str, dict]          # id -> {id, hostname, role, tunnel_ip, tunnel_type, bridges, bridge_mappings}
    networks: dict[str, dict]       # id -> {id, name, project_id, type, physnet, segmentation_id, mtu, ...}
    ports: dict[str, dict]          # id -> {id, name, network_id, mac, ips, device_id, device_owner, status, ...}
    routers: dict[str, dict]
    owners: OwnerIndex

    def node_by_dpid(self, dpid: int) -> tuple[dict | None, str | None]:
        for n in self.nodes.values():
            for br, d in n["bridges"].items():
                if int(d) == dpid:
                    return n, br
        return None, None

    def ports_on(self, hostname: str) -> list[dict]:
        return sorted((p for p in self.ports.values() if p["host_id"] == hostname),
                      key=lambda p: (p["ofport"] or 0, p["id"]))

    def port_label(self, p: dict) -> str:
        ips = ", ".join(p["ips"])
        return f"{p['name'] or p['id'][:8]} ({ips or p['mac']})"


def load(db) -> Inventory:
    with db.read() as s:
        world = load_world(s, allocate=False)
        nodes = {n.id: {"id": n.id, "hostname": n.hostname, "role": n.role, "tunnel_ip": n.tunnel_ip,
                        "tunnel_type": n.tunnel_type, "bridges": dict(n.bridges or {}),
                        "bridge_mappings": dict(n.bridge_mappings or {}), "ovsdb": n.ovsdb}
                 for n in s.scalars(select(m.Node).order_by(m.Node.hostname))}
        networks = {n.id: {"id": n.id, "name": n.name, "project_id": n.project_id,
                           "type": n.network_type, "physnet": n.physical_network,
                           "segmentation_id": n.segmentation_id, "mtu": n.mtu,
                           "admin_state_up": n.admin_state_up, "status": n.status,
                           "external": n.external, "shared": n.shared}
                    for n in s.scalars(select(m.Network))}
        ports = {}
        for p in s.scalars(select(m.Port)):
            ports[p.id] = {"id": p.id, "name": p.name, "network_id": p.network_id,
                           "project_id": p.project_id, "mac": p.mac_address.lower(),
                           "ips": [a.ip_address for a in p.fixed_ips], "device_id": p.device_id,
                           "device_owner": p.device_owner, "status": p.status,
                           "admin_state_up": p.admin_state_up, "host_id": p.host_id,
                           "vif_type": p.vif_type, "ofport": p.ofport}
        routers = {r.id: {"id": r.id, "name": r.name, "project_id": r.project_id,
                          "admin_state_up": r.admin_state_up, "status": r.status,
                          "gw_port_id": r.gw_port_id}
                   for r in s.scalars(select(m.Router))}
        fips = {f.id: f.floating_ip_address for f in s.scalars(select(m.FloatingIP))}
        sgs = {g.id: g.name for g in s.scalars(select(m.SecurityGroup))}
        rules = {r.id: rule_label(r, sgs) for r in s.scalars(select(m.SecurityGroupRule))}
    owners = OwnerIndex({
        "node": {i: n["hostname"] for i, n in nodes.items()},
        "network": {i: n["name"] for i, n in networks.items()},
        "port": {i: p["name"] or ", ".join(p["ips"]) for i, p in ports.items()},
        "router": {i: r["name"] for i, r in routers.items()},
        "floatingip": fips,
        "security_group": sgs,
        "security_group_rule": rules,
    })
    return Inventory(world, nodes, networks, ports, routers, owners)


def rule_label(r, group_names: dict) -> str:
    """"web: ingress tcp/22 from 10.0.0.0/8" (what a security-group flow's owner says)."""
    proto = r.protocol or "any"
    if r.port_range_min is not None:
        proto += f"/{r.port_range_min}" + (f"-{r.port_range_max}" if r.port_range_max not in
                                           (None, r.port_range_min) else "")
    remote = r.remote_ip_prefix or (f"group {group_names.get(r.remote_group_id, r.remote_group_id)}"
                                    if r.remote_group_id else "anywhere")
    way = "from" if r.direction == "ingress" else "to"
    return f"{group_names.get(r.security_group_id, '?')}: {r.direction} {r.ethertype} {proto} {way} {remote}"
