"""Port binding, the database side: given the VIFs one node's OVSDB shows on
br-int, write Port.host_id / ofport / vif_type (and status DOWN on unplug).

The OVSDB monitor (ovsdb_monitor.py) calls `sync()`; everything here runs in
one transaction that also adds a ChangeLog row per changed port; the caller
publishes Change("port", id) for the returned ids after the commit. The
reconciler, not this module, moves a bound port to ACTIVE once its flows are
confirmed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select
from sqlalchemy.orm import lazyload

from controller.db import models

LOG = logging.getLogger(__name__)

TAP_PREFIX = "tap"
TAP_ID_CHARS = 11           # Nova: tap + the first 11 characters of the port id


@dataclass(frozen=True)
class Vif:
    """One interface on br-int with an OpenFlow port number."""
    iface: str
    ofport: int
    port_id: str | None = None          # external_ids:iface-id
    mac: str | None = None              # external_ids:attached-mac

    def id_prefix(self) -> str | None:
        """The port id prefix of the tap-name convention (fallback without iface-id)."""
        if self.iface.startswith(TAP_PREFIX) and len(self.iface) == len(TAP_PREFIX) + TAP_ID_CHARS:
            return self.iface[len(TAP_PREFIX):]
        return None


@dataclass(frozen=True)
class NodeInfo:
    id: str
    hostname: str
    tunnel_type: str
    tunnel_ip: str | None
    bridge_mappings: dict


@dataclass
class SyncResult:
    changed: list[str] = field(default_factory=list)        # port ids to publish
    refused: dict[str, tuple[str, str]] = field(default_factory=dict)  # iface -> (port id, reason)
    waiting: dict[str, str] = field(default_factory=dict)   # iface -> port id / prefix not found


def network_reason(net, node: NodeInfo) -> str | None:
    """Why `node` cannot carry `net`, or None when it can."""
    if net.network_type in ("vlan", "flat"):
        if net.physical_network not in (node.bridge_mappings or {}):
            return (f"network {net.id} is on physical network {net.physical_network!r}, "
                    f"which {node.hostname} has no bridge for")
    elif net.network_type in ("gre", "vxlan"):
        if net.network_type != node.tunnel_type or not node.tunnel_ip:
            return (f"network {net.id} is {net.network_type} but {node.hostname} tunnels "
                    f"with {node.tunnel_type if node.tunnel_ip else 'nothing (no tunnel IP)'}")
    return None


def refusal(port: models.Port, vif: Vif, node: NodeInfo) -> str | None:
    if not vif.mac:
        return "the interface has no external_ids:attached-mac"
    if vif.mac.lower() != port.mac_address.lower():
        return f"attached-mac {vif.mac} differs from the port's MAC {port.mac_address}"
    return network_reason(port_network(port), node)


def port_network(port: models.Port):
    """The columns of the port's network that binding looks at (id,
    network_type, physical_network). Not the ORM object: its eager subnets
    made every binding O(ports on the network), and even the row alone
    through the ORM cost more than the rest of a binding."""
    from sqlalchemy.orm import object_session
    return object_session(port).execute(_NETWORK, {"id": port.network_id}).one()


_NT = models.Network.__table__
_NETWORK = select(_NT.c.id, _NT.c.network_type, _NT.c.physical_network).where(
    _NT.c.id == bindparam("id"))


def _select_ports():
    # Only the port row: skip the eager (selectin) loads of fixed IPs and
    # security groups, which would make every binding O(ports on the node).
    return select(models.Port).options(lazyload("*"))


def _resolve(s, vifs: list[Vif]) -> dict[str, models.Port]:
    """iface -> Port: by iface-id, else by the tap-name prefix (unique match only)."""
    ids = [v.port_id for v in vifs if v.port_id]
    by_id = {}
    if ids:
        by_id = {p.id: p for p in s.execute(_select_ports().where(models.Port.id.in_(ids))).scalars()}
    out = {}
    for v in vifs:
        if v.port_id:
            if v.port_id in by_id:
                out[v.iface] = by_id[v.port_id]
        elif v.id_prefix():
            matches = s.execute(_select_ports().where(
                models.Port.id.like(v.id_prefix() + "%")).limit(2)).scalars().all()
            if len(matches) == 1:
                out[v.iface] = matches[0]
    return out


def _carriers(vifs: dict[str, Vif], port_ids: set[str]) -> list[Vif]:
    """The VIFs that may carry one of `port_ids` (by iface-id or tap name)."""
    return [v for v in vifs.values()
            if v.port_id in port_ids
            or (not v.port_id and v.id_prefix() and any(p.startswith(v.id_prefix()) for p in port_ids))]


def _touch(s, port: models.Port, changed: list[str]):
    port.revision_number = (port.revision_number or 0) + 1
    port.updated_at = models.utcnow()
    s.add(models.ChangeLog(kind="port", resource_id=port.id))
    changed.append(port.id)


def _bind(s, port, vif: Vif, node: NodeInfo, changed):
    if (port.host_id, port.ofport, port.vif_type) == (node.hostname, vif.ofport, "ovs"):
        return
    LOG.info("binding port %s to %s ofport %d (%s)", port.id, node.hostname, vif.ofport, vif.iface)
    port.host_id, port.ofport, port.vif_type = node.hostname, vif.ofport, "ovs"
    _touch(s, port, changed)


def _unbind(s, port, node: NodeInfo, changed):
    LOG.info("unbinding port %s from %s (unplugged)", port.id, node.hostname)
    port.host_id, port.ofport, port.vif_type, port.status = "", None, "unbound", "DOWN"
    _touch(s, port, changed)


def sync(s, node: NodeInfo, vifs: dict[str, Vif], plugged: list[Vif] | None = None,
         unplugged: list[Vif] | None = None) -> SyncResult:
    """Make the bindings of `node` match `vifs` (its whole br-int).

    Full mode (plugged is None), after a (re)connect or a controller start:
    bind every acceptable VIF not bound elsewhere, unbind ports this node holds
    without an acceptable VIF. Incremental mode: bind `plugged` (a new plug
    takes a port even from another host, as a move does) and unbind the ports
    of `unplugged` and of refused plugs if this node holds them."""
    result = SyncResult()
    full = plugged is None
    if full:
        candidates = list(vifs.values())
        ports = _resolve(s, candidates)
    else:
        # Look only at the ports these events are about, and at the other
        # VIFs here that may carry the same ports: O(event), not O(node).
        candidates = list(plugged)
        involved = _resolve(s, candidates + list(unplugged or []))
        ids = {p.id for p in involved.values()}
        carriers = _carriers(vifs, ids)
        # (the plugged VIFs are usually the only carriers: resolved already)
        ports = {**_resolve(s, [v for v in carriers if v.iface not in involved]),
                 **{v.iface: involved[v.iface] for v in carriers + candidates if v.iface in involved}}
        vifs = {v.iface: v for v in carriers + candidates}
    accepted: dict[str, Vif] = {}                  # port id -> its acceptable VIF here
    for vif in vifs.values():
        port = ports.get(vif.iface)
        if port is not None and refusal(port, vif, node) is None:
            accepted[port.id] = vif
    suspects: list[models.Port] = []               # may have lost their VIF here
    for vif in candidates:
        port = ports.get(vif.iface)
        if port is None:
            if vif.port_id or vif.id_prefix():    # (patch ports and the like never will be)
                result.waiting[vif.iface] = vif.port_id or f"{vif.id_prefix()}*"
        elif accepted.get(port.id) is not vif:
            reason = refusal(port, vif, node) or "another interface carries this port"
            result.refused[vif.iface] = (port.id, f"port {port.id}: {reason}")
            suspects.append(port)
        elif not (full and port.host_id not in ("", node.hostname)):
            _bind(s, port, vif, node, result.changed)   # (a resync does not steal a port)
    if full:
        suspects += s.execute(_select_ports().where(models.Port.host_id == node.hostname)).scalars()
    else:
        suspects += [involved[v.iface] for v in unplugged or [] if v.iface in involved]
    for port in {p.id: p for p in suspects}.values():
        if port.host_id == node.hostname and port.id not in accepted and port.vif_type != "unbound":
            _unbind(s, port, node, result.changed)
    return result


def unbind_host(s, hostname: str) -> list[str]:
    """A node was removed: nothing is plugged there any more."""
    changed: list[str] = []
    node = NodeInfo("", hostname, "", None, {})
    for port in s.execute(_select_ports().where(models.Port.host_id == hostname)).scalars():
        _unbind(s, port, node, changed)
    return changed
