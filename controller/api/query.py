"""List queries: filters, fields, sorting and pagination (docs/API.md "List queries").

`parse()` turns the query string into a `ListQuery` (400s for bad input),
`apply()` turns it into SQL on a handler's select, `links()` builds the
`<collection>_links` of a page. Sorting and pagination are native (in SQL,
keyset on the sort keys plus `id`), so a page costs one query.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from sqlalchemy import and_, exists, or_, select

from controller.api import errors
from controller.api.attributes import DB_INT_MAX, ConvertError, _bad_text, out_of_range_int
from controller.db import models

NOT_FILTERS = {"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse"}
TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")


@dataclass
class ListQuery:
    filters: dict[str, list] = field(default_factory=dict)
    tag_filters: dict[str, list[str]] = field(default_factory=dict)
    sorts: list[tuple[str, str]] = field(default_factory=list)
    limit: int = 0
    marker: str | None = None
    page_reverse: bool = False
    fields: list[str] = field(default_factory=list)


def parse(resource, args, max_limit: int = -1) -> ListQuery:
    """args: a werkzeug MultiDict of the query string."""
    q = ListQuery()
    attrs = resource.attributes
    q.fields = [f for v in args.getlist("fields") for f in v.split(",") if f]
    for key in args.keys():
        for v in [key, *args.getlist(key)]:
            reason = _bad_text(v)
            if reason:
                raise errors.HTTPBadRequest(f"Invalid query parameter: {reason}")
    bad = []
    for key in args.keys():
        if key in NOT_FILTERS:
            continue
        values = args.getlist(key)
        if key in TAG_FILTERS and resource.tags:
            tags = [t for v in values for t in v.split(",") if t]
            if tags:
                q.tag_filters[key] = tags
            continue
        attr = attrs.get(key)
        if attr is None or not attr.is_filter:
            bad.append(key)
            continue
        conv = attr.filter_convert or attr.convert_to
        try:
            q.filters[key] = [conv(v) if conv else v for v in values]
        except ConvertError as e:
            raise errors.InvalidInput(error_message=str(e)) from None
        huge = out_of_range_int(q.filters[key])
        if huge is not None:
            raise errors.InvalidInput(error_message=f"'{huge}' is out of range for filter {key}")
    if bad:
        raise errors.HTTPBadRequest(f"{bad} is invalid attribute for filtering")

    keys, dirs = args.getlist("sort_key"), args.getlist("sort_dir")
    if len(keys) != len(dirs):
        raise errors.HTTPBadRequest("The number of sort_keys and sort_dirs must be same")
    bad_dirs = [d for d in dirs if d not in ("asc", "desc")]
    if bad_dirs:
        raise errors.HTTPBadRequest(f"{bad_dirs} is invalid value for sort_dirs, valid value is 'asc' and 'desc'")
    bad_keys = [k for k in keys if k not in attrs or not attrs[k].is_sort_key]
    if bad_keys:
        raise errors.HTTPBadRequest(f"{bad_keys} is invalid attribute for sort_keys")
    q.sorts = list(zip(keys, dirs))

    raw_limit = args.get("limit")
    if raw_limit is not None:
        try:
            q.limit = int(raw_limit)
            if q.limit < 0:
                raise ValueError
        except ValueError:
            raise errors.BadRequest(resource="limit", msg=(
                f"Limit must be an integer 0 or greater and not '{raw_limit}'")) from None
    if max_limit and max_limit > 0 and (q.limit == 0 or q.limit > max_limit):
        q.limit = max_limit
    # No page can be longer than the database's largest integer (the driver
    # would fail on a larger LIMIT): clamped, as pagination_max_limit clamps.
    q.limit = min(q.limit, DB_INT_MAX)
    q.marker = args.get("marker") or None
    q.page_reverse = str(args.get("page_reverse", "")).lower() == "true"
    return q


def apply(handler, s, ctx, stmt, q: ListQuery):
    """Filters, sort and page on a select of handler.model."""
    for name, values in q.filters.items():
        stmt = handler.filter(stmt, name, values)
    if q.tag_filters:
        stmt = _tag_filters(handler.model, stmt, q.tag_filters)
    if not (q.sorts or q.limit):
        return stmt
    cols = []
    for key, direction in q.sorts:
        col = handler.column_for(key)
        if col is not None:
            cols.append((col, direction))
    if not any(c.name == "id" for c, _ in cols):
        cols.append((handler.model.__table__.c.id, "asc"))
    if q.page_reverse:
        cols = [(c, "desc" if d == "asc" else "asc") for c, d in cols]
    if q.limit and q.marker:
        marker_row = s.execute(handler.scope(ctx, handler.base_select())
                               .where(handler.model.id == q.marker)).first()
        if marker_row is None:
            raise handler.resource.not_found_error(q.marker)
        stmt = stmt.where(_after(cols, marker_row._mapping))
    # NULLs first ascending on every database (neutron's emulated sort does so).
    stmt = stmt.order_by(*[(c.asc().nulls_first() if d == "asc" else c.desc().nulls_last())
                           for c, d in cols])
    if q.limit:
        stmt = stmt.limit(q.limit)
    return stmt


def _after(cols, marker):
    """Rows strictly after the marker in the (col, dir) ordering (keyset)."""
    clauses = []
    for i, (col, direction) in enumerate(cols):
        value = marker[col.name]
        eqs = [c == marker[c.name] if marker[c.name] is not None else c.is_(None) for c, _ in cols[:i]]
        if value is None:
            # NULLs sort first ascending: everything non-null is after.
            cmp = col.is_not(None) if direction == "asc" else None
        else:
            cmp = col > value if direction == "asc" else or_(col < value, col.is_(None))
        if cmp is not None:
            clauses.append(and_(*eqs, cmp))
    return or_(*clauses) if clauses else False


def _tag_filters(model, stmt, tf: dict[str, list[str]]):
    tag = models.Tag

    def has(t):
        return exists(select(tag.tag).where(tag.resource_id == model.id, tag.tag == t))
    if "tags" in tf:
        stmt = stmt.where(and_(*[has(t) for t in tf["tags"]]))
    if "tags-any" in tf:
        stmt = stmt.where(or_(*[has(t) for t in tf["tags-any"]]))
    if "not-tags" in tf:
        stmt = stmt.where(~and_(*[has(t) for t in tf["not-tags"]]))
    if "not-tags-any" in tf:
        stmt = stmt.where(~or_(*[has(t) for t in tf["not-tags-any"]]))
    return stmt


def finish_page(items: list[dict], q: ListQuery) -> list[dict]:
    if q.page_reverse and (q.sorts or q.limit):
        items.reverse()
    return items


def links(collection: str, url_base: str, args, items: list[dict], q: ListQuery) -> list[dict] | None:
    """`<collection>_links` for a paginated list (None without `limit`)."""
    if not q.limit:
        return None
    params = [(k, v) for k in args.keys() if k not in ("marker", "page_reverse")
              for v in args.getlist(k)]
    out = []
    if not (len(items) < q.limit and not q.page_reverse) and items:
        out.append({"rel": "next", "href": f"{url_base}?" + urlencode(params + [("marker", items[-1]["id"])])})
    if not (len(items) < q.limit and q.page_reverse):
        prev = params + ([("marker", items[0]["id"])] if items else []) + [("page_reverse", "True")]
        out.append({"rel": "previous", "href": f"{url_base}?" + urlencode(prev)})
    return out
