"""The port-status writer: a port is ACTIVE once its node's flows are confirmed.

After the barrier that confirms a node's flows (controller/apps/switch_session.py),
the scheduler hands the confirmed nodes here: bound, admin-up ports on them
become ACTIVE, VM ports that are no longer bound (or admin down) DOWN, and the
change is published and logged in the change log (docs/ARCHITECTURE.md,
"Port binding").
"""
from __future__ import annotations

import logging

from sqlalchemy import bindparam, func, select, update

from controller.apps import port_timing
from controller.db import models as m
from controller.events import Change
from controller.model import owners
from controller.model.world import World

LOG = logging.getLogger(__name__)

# Statements built once (building them cost more than running them).
_PORTS, _CHANGES = m.Port.__table__, m.ChangeLog.__table__
_ALL_STATUSES = select(_PORTS.c.id, _PORTS.c.status)
_STATUSES = _ALL_STATUSES.where(_PORTS.c.id.in_(bindparam("ids", expanding=True)))
_SET_STATUS = update(_PORTS).where(_PORTS.c.id == bindparam("pid")).values(
    status=bindparam("status"), revision_number=func.coalesce(_PORTS.c.revision_number, 0) + 1)
_LOG_PORT = _CHANGES.insert().values(kind="port")


class PortStatusWriter:
    """Writes Port.status; remembers which change-log rows are its own (the
    scheduler, following the change log, skips them: flows never depend on a
    port's status) and which ports wait for their node to be confirmed."""

    def __init__(self, db, bus):
        self.db, self.bus = db, bus
        self.pending: set[str] = set()         # ports whose node was not confirmed yet
        self.own_revisions: set[int] = set()   # change-log rows of our own status updates

    def update(self, world: World, confirmed: set[str], candidates=None) -> None:
        """ACTIVE for bound, admin-up ports whose node's flows are confirmed;
        DOWN for VM ports that are no longer bound (or admin down). Looks at
        `candidates` (port ids), or every port when None; candidates on a
        node not confirmed this round are kept for the next one. One short
        write transaction, plain SQL (the ORM's per-row loading made this
        0.05-0.4 s with a few hundred ports)."""
        def want_of(pid):
            info = world.ports.get(pid)
            if info is None:
                return None
            net = world.networks.get(info.network_id)
            if info.node_id in confirmed:
                return "ACTIVE" if info.admin_state_up and net and net.admin_state_up else "DOWN"
            if info.node_id is None and not owners.is_infrastructure(info.device_owner):
                return "DOWN"
            if candidates is not None:
                pending.add(pid)
            return None

        def txn(s):
            own_revisions.clear()          # a retried transaction starts over
            if candidates is None:
                rows = s.execute(_ALL_STATUSES).all()
            else:
                rows = s.execute(_STATUSES, {"ids": sorted(wants)}).all()
            changed = [pid for pid, status in rows if wants.get(pid) not in (None, status)]
            for pid in changed:
                s.execute(_SET_STATUS, {"pid": pid, "status": wants[pid]})
                r = s.execute(_LOG_PORT, {"resource_id": pid})
                own_revisions.add(r.inserted_primary_key[0])
            return changed

        pending: set[str] = set()
        ids = world.ports.keys() if candidates is None else candidates
        wants = {pid: w for pid in ids if (w := want_of(pid)) is not None}
        self.pending = pending
        if not wants:
            return
        own_revisions: set[int] = set()
        changed = self.db.run_in_transaction(txn)
        self.own_revisions |= own_revisions
        if changed:
            port_timing.settled({pid: wants[pid] for pid in changed})
            LOG.info("port status changed: %d port(s)", len(changed))
            self.bus.publish([Change("port", pid, "update") for pid in changed])

    def forget_revisions_through(self, revision: int) -> None:
        """The change log was read up to `revision`: our rows up to it are done."""
        self.own_revisions = {r for r in self.own_revisions if r > revision}
