"""Tag endpoints for every resource with standard attributes:

    GET    /<coll>/<id>/tags          200 {"tags": [...]}
    PUT    /<coll>/<id>/tags          200 {"tags": [...]}   (replace all)
    DELETE /<coll>/<id>/tags          204
    GET    /<coll>/<id>/tags/<tag>    204, or 404
    PUT    /<coll>/<id>/tags/<tag>    201
    DELETE /<coll>/<id>/tags/<tag>    204, or 404

Reading needs get_<res>, writing update_<res>. A change bumps the resource's
revision_number.
"""
from __future__ import annotations

from sqlalchemy import delete, select

from controller.api import body as bodies
from controller.api import errors
from controller.api.attributes import validate_tags
from controller.api.resource import bump, run_write, set_tags
from controller.api.response import Response
from controller.db import models


def handle(api, res, ctx, req, id_, tag):
    m = req.method
    if tag is not None:
        reason = validate_tags([tag])
        if reason:
            raise errors.HTTPBadRequest(f"Invalid input for tags. Reason: {reason}.")
    if m == "GET":
        with api.db.read() as s:
            item = res.handler.get(s, ctx, id_)
        if not api.policy.check(ctx, f"get_{res.name}", api.target(res, item)):
            raise errors.HTTPNotFound()
        if tag is None:
            return Response(200, {"tags": item["tags"]})
        if tag not in item["tags"]:
            raise errors.TagNotFound(tag=tag)
        return Response(204)
    if m not in ("PUT", "DELETE"):
        raise errors.HTTPMethodNotAllowed()
    new_tags = None
    if m == "PUT" and tag is None:
        data = bodies.parse_json(req.get_data())
        new_tags = data.get("tags")
        reason = validate_tags(new_tags)
        if reason:
            raise errors.HTTPBadRequest(f"Invalid input for tags. Reason: {reason}.")

    def work(tx):
        current = res.handler.get(tx.s, ctx, id_)
        api.authorize_change(tx.s, res, ctx, "update", current, {})
        s = tx.s
        have = set(current["tags"])
        if m == "PUT" and tag is None:
            set_tags(s, id_, new_tags)
        elif m == "PUT":
            if tag not in have:
                s.add(models.Tag(resource_id=id_, tag=tag))
        elif tag is None:
            s.execute(delete(models.Tag).where(models.Tag.resource_id == id_))
        else:
            if tag not in have:
                raise errors.TagNotFound(tag=tag)
            s.execute(delete(models.Tag).where(models.Tag.resource_id == id_, models.Tag.tag == tag))
        row = s.get(res.handler.model, id_)
        if row is not None and hasattr(row, "revision_number"):
            bump(row)
        s.flush()
        return sorted(t for (t,) in s.execute(select(models.Tag.tag).where(models.Tag.resource_id == id_)))

    tags, _ = run_write(api.runtime, work)
    if m == "PUT" and tag is None:
        return Response(200, {"tags": tags})
    return Response(201 if m == "PUT" else 204)
