"""Controllers' heartbeats and per-node mastership leases, in the database.

Every operation is one short transaction that stays correct with several
controllers writing at once, on PostgreSQL (READ COMMITTED) and SQLite
(BEGIN IMMEDIATE: one writer at a time):

* `beat`: the controller's heartbeat (its `controllers` row lives until
  now + lease duration), renewal of the leases it holds -
  `UPDATE ... WHERE holder = me AND node_id IN (held)`: a lease taken by
  another controller has another holder, so a late renewal cannot win it
  back - and a read of every lease, live controller and node.
* `acquire`: the lease row is made to exist (INSERT ... ON CONFLICT DO
  NOTHING), then locked (SELECT ... FOR UPDATE), checked free or expired,
  and given to us with a new generation from the shared `generations`
  counter: larger than any generation any switch has seen, also for a node
  id that comes back.
* `release`: `WHERE holder = me AND generation = G` (a hand-over).

Times are seconds on the DATABASE's clock (`db_now`): controllers on hosts
whose clocks differ still agree on what has expired. A holder believes in
its lease only until its own monotonic clock, read BEFORE the renewing
transaction, passes renewal + duration (controller/ha/mastership.py), which
is never later than the expiry the database recorded.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from controller.db import models as m
from controller.db.session import Database

GENERATION_COUNTER = "openflow_role"
FORGET_DEAD_S = 3600.0        # a controller row this long expired is deleted


@dataclass(frozen=True)
class Lease:
    node_id: str
    holder: str | None
    generation: int
    expires_at: float

    def free(self, now: float) -> bool:
        return self.holder is None or self.expires_at <= now


@dataclass
class View:
    """What one beat read: all on the database's clock `now`."""
    now: float
    controllers: dict[str, float] = field(default_factory=dict)   # live: id -> started_at
    reach: dict[str, set] = field(default_factory=dict)          # live: id -> node ids it is connected to
    leases: dict[str, Lease] = field(default_factory=dict)
    nodes: dict[str, list[int]] = field(default_factory=dict)     # node -> its bridges' dpids
    renewed: dict[str, int] = field(default_factory=dict)       # node -> generation still ours


def db_now(s) -> float:
    """Seconds since the epoch on the database server's clock."""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        return float(s.scalar(text("SELECT extract(epoch FROM clock_timestamp())")))
    if dialect == "sqlite":
        return float(s.scalar(text("SELECT (julianday('now') - 2440587.5) * 86400.0")))
    import time
    return time.time()


def _bounded(s, duration: float) -> None:
    """PostgreSQL: this transaction waits for a row lock at most half a lease,
    and if our process stalls inside it (SIGSTOP, a long pause) the server
    ends our session after half a lease, releasing its locks: a paused
    controller must never block the others' takeover."""
    if s.get_bind().dialect.name == "postgresql":
        ms = max(50, int(duration * 500))
        s.execute(text(f"SET LOCAL lock_timeout = {ms}"))
        s.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {ms}"))


def _insert(s, table):
    return (postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


class LeaseStore:
    def __init__(self, db: Database, controller_id: str, duration: float, api_url: str = ""):
        self.db = db
        self.me = controller_id
        self.duration = float(duration)
        self.api_url = api_url
        self.started_at: float | None = None

    # --- the heartbeat ---------------------------------------------------------

    def beat(self, held: dict[str, int], write: bool = True, reachable=None) -> View:
        """Heartbeat and renew `held` (node -> generation) when `write`, then
        read everything. -> View; `renewed` lists the held leases that are
        still ours (all of `held` still ours when not `write`). `reachable`:
        the nodes whose switches are connected to us (published with the
        heartbeat: nodes are placed only on controllers that reach them)."""
        if write:
            return self.db.run_in_transaction(self._beat, held, True, reachable)
        with self.db.read() as s:
            return self._beat(s, held, False)

    def _beat(self, s, held: dict[str, int], write: bool, reachable=None) -> View:
        if write:
            _bounded(s, self.duration)
        now = db_now(s)
        if write:
            exp = now + self.duration
            last = s.scalar(select(m.ControllerMember.expires_at).where(m.ControllerMember.id == self.me))
            if self.started_at is None or last is None or last <= now:
                # New, or back after our heartbeat lapsed (a pause): the others
                # took our nodes; we count as joining again (join_delay).
                self.started_at = now
            reach = sorted(reachable) if reachable is not None else None
            stmt = _insert(s, m.ControllerMember.__table__).values(
                id=self.me, api_url=self.api_url, started_at=self.started_at, expires_at=exp,
                reachable=reach or [])
            changes = {"expires_at": exp, "api_url": self.api_url, "started_at": self.started_at}
            if reach is not None:
                changes["reachable"] = reach
            s.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=changes))
            if held:
                s.execute(update(m.Mastership).where(m.Mastership.holder == self.me,
                                                     m.Mastership.node_id.in_(sorted(held)))
                          .values(expires_at=exp))
            s.execute(delete(m.ControllerMember).where(m.ControllerMember.expires_at < now - FORGET_DEAD_S))
        view = View(now=now)
        for cid, started, expires, reach in s.execute(select(
                m.ControllerMember.id, m.ControllerMember.started_at, m.ControllerMember.expires_at,
                m.ControllerMember.reachable)):
            if expires > now:
                view.controllers[cid] = started
                view.reach[cid] = set(reach or ())
        for node_id, holder, gen, expires in s.execute(select(
                m.Mastership.node_id, m.Mastership.holder, m.Mastership.generation, m.Mastership.expires_at)):
            view.leases[node_id] = Lease(node_id, holder, gen, expires)
        for node_id, bridges in s.execute(select(m.Node.id, m.Node.bridges)):
            view.nodes[node_id] = sorted(int(d) for d in (bridges or {}).values())
        for node_id, gen in held.items():
            lease = view.leases.get(node_id)
            if lease is not None and lease.holder == self.me and lease.generation == gen:
                view.renewed[node_id] = gen
        return view

    # --- taking and giving back --------------------------------------------------

    def acquire(self, node_id: str) -> Lease | None:
        """Take the node's lease if it is free or expired -> the new Lease
        (with a new generation), or None when another controller holds it."""
        return self.db.run_in_transaction(self._acquire, node_id)

    def _acquire(self, s, node_id: str) -> Lease | None:
        _bounded(s, self.duration)
        s.execute(_insert(s, m.Mastership.__table__).values(
            node_id=node_id, holder=None, generation=0, expires_at=0.0).on_conflict_do_nothing())
        row = s.execute(select(m.Mastership.holder, m.Mastership.generation, m.Mastership.expires_at)
                        .where(m.Mastership.node_id == node_id).with_for_update()).one()
        now = db_now(s)
        if not Lease(node_id, row.holder, row.generation, row.expires_at).free(now):
            return None
        gen = self._next_generation(s, row.generation)
        exp = now + self.duration
        s.execute(update(m.Mastership).where(m.Mastership.node_id == node_id)
                  .values(holder=self.me, generation=gen, expires_at=exp))
        return Lease(node_id, self.me, gen, exp)

    def _next_generation(self, s, at_least_above: int) -> int:
        t = m.Generation.__table__
        stmt = _insert(s, t).values(name=GENERATION_COUNTER, value=1)
        gen = s.scalar(stmt.on_conflict_do_update(index_elements=["name"], set_={"value": t.c.value + 1})
                       .returning(t.c.value))
        if gen <= at_least_above:      # a counter reset by hand: never go backwards
            gen = at_least_above + 1
            s.execute(update(t).where(t.c.name == GENERATION_COUNTER).values(value=gen))
        return gen

    def release(self, node_id: str, generation: int) -> bool:
        """Give a lease up now (a hand-over): the next acquire needs no wait."""
        def txn(s):
            _bounded(s, self.duration)
            r = s.execute(update(m.Mastership)
                          .where(m.Mastership.node_id == node_id, m.Mastership.holder == self.me,
                                 m.Mastership.generation == generation)
                          .values(holder=None, expires_at=0.0))
            return r.rowcount == 1
        return self.db.run_in_transaction(txn)

    def leave(self) -> None:
        """A clean shutdown: every lease of ours released, our heartbeat gone."""
        def txn(s):
            _bounded(s, self.duration)
            s.execute(update(m.Mastership).where(m.Mastership.holder == self.me)
                      .values(holder=None, expires_at=0.0))
            s.execute(delete(m.ControllerMember).where(m.ControllerMember.id == self.me))
        self.db.run_in_transaction(txn)
