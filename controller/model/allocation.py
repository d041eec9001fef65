"""What the controller allocates for the snapshot and stores so a restarted
controller computes the very same flows: a local VLAN per (node, network)
pair with a plugged port (the LocalVlan table, Quantum's "lvm"), and a
metadata source index per plugged VM port (the metadata_addresses table,
controller/model/metadata_addresses.py). The assignments are pure
functions; the `store_*` / `metadata_indexes` writers run inside the
caller's write transaction (several controllers on PostgreSQL can still meet at a
primary key: snapshot.allocate_stored retries the transaction).
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from controller.db import models as m
from controller.model.metadata_addresses import assign_indexes, wants_metadata
from controller.model.settings import MetadataSettings

LOG = logging.getLogger(__name__)

MIN_LOCAL_VLAN, MAX_LOCAL_VLAN = 1, 4094


def assign_local_vlans(existing: dict[tuple[str, str], int],
                       needed: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Keep the VLANs still needed, free the others, give each new pair the
    lowest free VLAN on its node. Deterministic (new pairs in sorted order)."""
    out = {k: v for k, v in existing.items() if k in needed}
    used: dict[str, set[int]] = {}
    for (node, _net), vlan in out.items():
        used.setdefault(node, set()).add(vlan)
    for node, net in sorted(needed - out.keys()):
        taken = used.setdefault(node, set())
        vlan = next((v for v in range(MIN_LOCAL_VLAN, MAX_LOCAL_VLAN + 1) if v not in taken), None)
        if vlan is None:
            LOG.error("node %s has no free local VLAN for network %s", node, net)
            continue
        taken.add(vlan)
        out[(node, net)] = vlan
    return out


def stored_local_vlans(session) -> dict[tuple[str, str], int]:
    return {(r.node_id, r.network_id): r.vlan for r in session.scalars(select(m.LocalVlan))}


def store_local_vlans(session, existing, wanted) -> None:
    for (node, net), vlan in existing.items():
        if wanted.get((node, net)) != vlan:
            session.execute(m.LocalVlan.__table__.delete().where(
                (m.LocalVlan.node_id == node) & (m.LocalVlan.network_id == net)))
    session.flush()
    for (node, net), vlan in wanted.items():
        if existing.get((node, net)) != vlan:
            session.add(m.LocalVlan(node_id=node, network_id=net, vlan=vlan))
    session.flush()


def metadata_indexes(session, ports: dict, settings: MetadataSettings | None,
                     allocate: bool = True) -> dict[str, int]:
    """port id -> index, from the metadata_addresses table; with `allocate`
    (inside a write transaction, like the local VLANs) every plugged VM port
    gets one and ports that are gone give theirs back. Nothing is allocated
    while metadata is off (`settings` None)."""
    existing = {r.port_id: r.address_index for r in session.scalars(select(m.MetadataAddress))}
    if not allocate or settings is None:
        return existing
    wanted = {p.id for p in ports.values() if wants_metadata(p)}
    out = assign_indexes(existing, wanted, set(ports), settings.source_range)
    if out != existing:
        table = m.MetadataAddress.__table__
        for port_id, index in existing.items():
            if out.get(port_id) != index:
                session.execute(table.delete().where(table.c.port_id == port_id))
        session.flush()
        for port_id, index in out.items():
            if existing.get(port_id) != index:
                session.add(m.MetadataAddress(port_id=port_id, address_index=index))
        session.flush()
    return out
