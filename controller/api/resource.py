"""A resource = a declarative attribute table + a handler that talks to the DB.

    RESOURCE = Resource(
        name="network", collection="networks",
        attributes={...},                # controller/api/attributes.py Attr table
        handler=NetworkHandler(),        # a Handler subclass (below)
        not_found=errors.NetworkNotFound, not_found_key="net_id",
        quota="network", has_network=False)

`controller/api/registry.py` lists the resources the API serves. The generic
HTTP layer (controller/api/dispatch.py) does validation, defaults, quotas,
policy, filters, sorting, pagination, fields and serialization from the table;
a handler only implements the storage semantics:

* `list(s, ctx, q)`   -> list of dicts (the base class does it from `model`)
* `get(s, ctx, id)`   -> dict, or raise the resource's NotFound
* `create(tx, ctx, body)` -> dict      (body is validated and defaulted)
* `update(tx, ctx, id, body, current)` -> dict
* `delete(tx, ctx, id, current)`
* `to_dicts(s, rows)` -> API dicts for DB rows, in one batch (no N+1)

Dicts use the API attribute names and carry every attribute; the HTTP layer
strips what policy or `fields` hide. Writes run inside a `Tx`: call
`tx.changed(kind, id, op)` for anything the data path cares about; it writes
the ChangeLog row in the same transaction and the Change is published on the
bus after the commit.

Extension points for other modules (e.g. security groups adding
`security_groups` to ports): `Resource.extend(attributes)` adds attributes,
and `Resource.hooks` holds callables run by the handlers:
`hooks["dict"]` (s, dicts) decorate dicts in batch; `hooks["create"]` /
`hooks["update"]` (tx, ctx, body, result dict) after the row is written;
`hooks["delete"]` (tx, ctx, current dict) before the row is deleted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import func, select

from controller.api import errors
from controller.api.attributes import Attr
from controller.db import models
from controller.events import Change

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def fmt_time(t) -> str | None:
    # Timestamps are stored without microseconds: isoformat is the same text
    # as strftime(TIME_FORMAT) without the 'Z', and much faster on big lists.
    if t is None:
        return None
    return t.isoformat(timespec="seconds") + "Z"


@dataclass
class Resource:
    name: str                      # singular body key, e.g. "network"
    collection: str                # plural body key and URL segment, e.g. "networks"
    attributes: dict[str, Attr]
    handler: "Handler"
    not_found: type = errors.HTTPNotFound
    not_found_key: str = "id"
    quota: str | None = None       # quota resource name counted on create
    has_network: bool = False      # policy targets get network:* keys (subnets, ports)
    tags: bool = True              # /<collection>/<id>/tags endpoints
    url_segment: str | None = None  # defaults to collection (security-groups style)
    core: bool = False             # listed in the GET /v2.0/ document
    hooks: dict[str, list[Callable]] = field(
        default_factory=lambda: {"dict": [], "create": [], "update": [], "delete": []})
    # filters for attributes other modules add: name -> fn(stmt, values) -> stmt
    filters: dict[str, Callable] = field(default_factory=dict)
    # SQL for attributes other modules add, for handlers whose list_json has
    # the database write the JSON: name -> fn(dialect name) -> SQL expression
    # of the attribute's JSON (None: not on that database)
    json_sql: dict[str, Callable] = field(default_factory=dict)

    def __post_init__(self):
        self.handler.resource = self

    @property
    def path(self) -> str:
        return self.url_segment or self.collection

    def extend(self, attributes: dict[str, Attr]) -> None:
        self.attributes.update(attributes)

    def not_found_error(self, id_) -> errors.NeutronError:
        return self.not_found(**{self.not_found_key: id_})


class Tx:
    """One write transaction: the session plus the changes to publish."""

    def __init__(self, session, runtime):
        self.s = session
        self.runtime = runtime
        self.cfg = runtime.cfg
        self.changes: list[Change] = []
        self.status: int | None = None     # a handler may override the HTTP status (upsert: 200)

    def changed(self, kind: str, id_: str, op: str = "update") -> None:
        # A Core insert: the ORM unit of work costs more than the row itself.
        self.s.connection().execute(_CHANGELOG_INSERT, {"kind": kind, "resource_id": id_})
        self.changes.append(Change(kind, id_, op))


_CHANGELOG_INSERT = models.ChangeLog.__table__.insert()


def run_write(runtime, fn: Callable[[Tx], Any], retries: int = 20) -> tuple[Any, Tx]:
    """Run fn(tx) in one transaction and publish its changes after the commit.

    IntegrityError is retried too (Database.run_in_transaction, retry_integrity):
    generated values may collide with a concurrent transaction. Values a
    client asked for are checked explicitly by the handlers, so a retried
    transaction then fails with the proper 409."""
    def txn(s):
        tx = Tx(s, runtime)
        return fn(tx), tx

    result, tx = runtime.db.run_in_transaction(txn, retries=retries, retry_integrity=True)
    runtime.bus.publish(tx.changes)
    return result, tx


class Handler:
    """Storage for one resource. The defaults serve a model whose columns have
    the attributes' names (or `Attr.column`); override what differs."""

    model: Any = None
    resource: Resource

    # --- reading ---------------------------------------------------------------
    def scope(self, ctx, stmt):
        """Restrict a select to what the caller may see (non-admin: own project)."""
        if ctx.is_admin:
            return stmt
        return stmt.where(self.model.project_id == ctx.project_id)

    def base_select(self):
        return select(self.model.__table__)

    def column_for(self, attr_name: str):
        attr = self.resource.attributes.get(attr_name)
        col = (attr.column if attr and attr.column else attr_name)
        return self.model.__table__.c.get(col)

    def filter(self, stmt, name: str, values: list):
        """Apply one filter (values are already converted; OR between them).
        Override for attributes without a plain column."""
        if name in self.resource.filters:
            return self.resource.filters[name](stmt, values)
        col = self.column_for(name)
        if col is None:
            return stmt
        return stmt.where(col.in_(values)) if len(values) > 1 else stmt.where(col == values[0])

    def list(self, s, ctx, q) -> list[dict]:
        from controller.api import query
        stmt = self.scope(ctx, self.base_select())
        stmt = query.apply(self, s, ctx, stmt, q)
        # Core execution: these are column selects, the ORM's result machinery
        # would only add per-row cost on big lists.
        rows = s.connection().execute(stmt).all()
        return self.to_dicts(s, rows)

    def list_json(self, s, ctx, q, keys: list[str]) -> list[str] | None:
        """Optional fast path for big lists: the items as JSON texts with exactly
        `keys`, written by the database (a text may hold several items joined
        by commas); None when not supported (the default)."""
        return None

    def get_row(self, s, ctx, id_):
        stmt = self.scope(ctx, self.base_select()).where(self.model.id == id_)
        row = s.execute(stmt).first()
        if row is None:
            raise self.resource.not_found_error(id_)
        return row

    def get(self, s, ctx, id_) -> dict:
        return self.to_dicts(s, [self.get_row(s, ctx, id_)])[0]

    def to_dicts(self, s, rows) -> list[dict]:
        out = [self.make_dict(r._mapping) for r in rows]
        if self.resource.tags and out:
            attach_tags(s, out)
        for hook in self.resource.hooks["dict"]:
            hook(s, out)
        return out

    def make_dict(self, row) -> dict:
        raise NotImplementedError

    def count(self, s, project_id: str) -> int:
        return s.execute(select(func.count()).select_from(self.model)
                         .where(self.model.project_id == project_id)).scalar_one()

    def policy_target(self, s, ctx, item: dict) -> dict:
        """The policy target for an item (child resources add network:* keys)."""
        return dict(item)

    # --- writing ---------------------------------------------------------------
    def create(self, tx: Tx, ctx, body: dict) -> dict:
        raise errors.HTTPMethodNotAllowed()

    def update(self, tx: Tx, ctx, id_: str, body: dict, current: dict) -> dict:
        raise errors.HTTPMethodNotAllowed()

    def delete(self, tx: Tx, ctx, id_: str, current: dict) -> None:
        raise errors.HTTPMethodNotAllowed()

    def run_hooks(self, event: str, *args) -> None:
        for hook in self.resource.hooks[event]:
            hook(*args)


# --- helpers shared by handlers ------------------------------------------------------

def standard_dict(row) -> dict:
    """The standard attributes of a row with StandardAttrs columns."""
    return {"description": row["description"], "revision_number": row["revision_number"],
            "created_at": fmt_time(row["created_at"]), "updated_at": fmt_time(row["updated_at"]),
            "tags": []}


def project_dict(row) -> dict:
    return {"project_id": row["project_id"], "tenant_id": row["project_id"]}


def attach_tags(s, dicts: list[dict]) -> None:
    """All tags of the given dicts (by id) in one query."""
    ids = [d["id"] for d in dicts]
    by_id: dict[str, list[str]] = {}
    for rid, tag in select_by_ids(s, models.Tag.resource_id, [models.Tag.tag], ids):
        by_id.setdefault(rid, []).append(tag)
    if by_id:
        for d in dicts:
            d["tags"] = sorted(by_id.get(d["id"], []))


BIG_LIST = 900


def select_by_ids(s, key_col, cols, ids, order_by=(), where=()):
    """Rows (key, *cols) whose key is in ids (and matching `where`): an IN
    query for a page, one scan of the table for big lists (a 10,000-item IN
    list costs more than the scan)."""
    if not ids:
        return []
    stmt = select(key_col, *cols)
    if where:
        stmt = stmt.where(*where)
    if order_by:
        stmt = stmt.order_by(*order_by)
    conn = s.connection()
    if len(ids) <= BIG_LIST:
        return conn.execute(stmt.where(key_col.in_(ids))).all()
    wanted = set(ids)
    return [r for r in conn.execute(stmt) if r[0] in wanted]


def bump(obj) -> None:
    """An update to a standard-attributes row: new revision, new updated_at."""
    obj.revision_number = (obj.revision_number or 0) + 1
    obj.updated_at = models.utcnow()


def set_tags(s, resource_id: str, tags: list[str]) -> None:
    s.query(models.Tag).filter(models.Tag.resource_id == resource_id).delete()
    for t in sorted(set(tags)):
        s.add(models.Tag(resource_id=resource_id, tag=t))
