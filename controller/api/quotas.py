"""/v2.0/quotas (docs/API.md "Quotas"): per-project limits with config defaults.

Quota resources come from the resource modules (`QUOTAS` in each module,
collected in registry.QUOTAS: name -> config key of the default). Usage is
counted by the resource's handler (`Handler.count`); the generic create path
(dispatch.Api.check_quota) refuses a create at the limit with 409 OverQuota.
"""
from __future__ import annotations

from sqlalchemy import bindparam, delete, select

from controller.api import body as bodies
from controller.api import errors, registry
from controller.api.attributes import ConvertError, convert_to_boolean, convert_to_int
from controller.api.resource import run_write
from controller.api.response import Response
from controller.db import models

MAX_LIMIT = 2 ** 31 - 1


def defaults(cfg) -> dict[str, int]:
    return {name: int(cfg.get(key)) for name, key in registry.QUOTAS.items()}


def limits(s, cfg, project_id: str) -> dict[str, int]:
    out = defaults(cfg)
    for resource, limit in s.execute(select(models.Quota.resource, models.Quota.limit)
                                     .where(models.Quota.project_id == project_id)):
        if resource in out:
            out[resource] = limit
    return out


_LIMIT = select(models.Quota.limit).where(models.Quota.project_id == bindparam("project"),
                                          models.Quota.resource == bindparam("resource"))


def limit_for(s, cfg, project_id: str, resource: str) -> int:
    # Core on the connection: checked on every create (quota rows are only
    # written by _update, which commits them in a transaction of its own).
    row = s.connection().execute(_LIMIT, {"project": project_id, "resource": resource}).first()
    if row is not None:
        return row[0]
    key = registry.QUOTAS.get(resource)
    return int(cfg.get(key)) if key else -1


def handle(api, ctx, req, parts):
    m = req.method
    if not parts:
        if m == "GET":
            return Response(200, {"quotas": _list(api, ctx)})
        if m == "POST":
            raise errors.HTTPNotImplemented()
        raise errors.HTTPMethodNotAllowed()
    pid = parts[0]
    if pid in ("project", "tenant") and len(parts) == 1 and m == "GET":
        return Response(200, {pid: {f"{pid}_id": ctx.project_id}})
    if len(parts) == 2 and parts[1] == "default" and m == "GET":
        _authorize_read(api, ctx, pid)
        return Response(200, {"quota": defaults(api.cfg)})
    if len(parts) != 1:
        raise errors.HTTPNotFound()
    if m == "GET":
        _authorize_read(api, ctx, pid)
        with api.db.read() as s:
            return Response(200, {"quota": limits(s, api.cfg, pid)})
    if m == "PUT":
        return Response(200, {"quota": _update(api, ctx, req, pid)})
    if m == "DELETE":
        api.policy.enforce(ctx, "delete_quota", {"project_id": pid})
        _delete(api, pid)
        return Response(204)
    raise errors.HTTPMethodNotAllowed()


def _authorize_read(api, ctx, pid):
    if pid != ctx.project_id:
        api.policy.enforce(ctx, "get_quota", {"project_id": pid})


def _list(api, ctx) -> list[dict]:
    with api.db.read() as s:
        stmt = select(models.Quota.project_id).distinct()
        if not ctx.is_admin:
            api.policy.enforce(ctx, "get_quota", {"project_id": ctx.project_id})
            stmt = stmt.where(models.Quota.project_id == ctx.project_id)
        projects = sorted(p for (p,) in s.execute(stmt))
        return [{"project_id": p, "tenant_id": p, **limits(s, api.cfg, p)} for p in projects]


def _update(api, ctx, req, pid) -> dict:
    data = bodies.parse_json(req.get_data())
    body = data.get("quota")
    if not isinstance(body, dict):
        raise errors.HTTPBadRequest("Unable to find 'quota' in request body")
    body = dict(body)
    force = False
    if "force" in body:
        try:
            force = convert_to_boolean(body.pop("force"))
        except ConvertError as e:
            raise errors.InvalidInput(error_message=str(e)) from None
    unknown = sorted(k for k in body if k not in registry.QUOTAS)
    if unknown:
        raise errors.HTTPBadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    new = {}
    for k, v in body.items():
        try:
            n = convert_to_int(v)
        except ConvertError as e:
            raise errors.InvalidInput(error_message=str(e)) from None
        if n < -1 or n > MAX_LIMIT:
            raise errors.HTTPBadRequest(
                f"Invalid input for {k}. Reason: '{n}' is not in range -1 through {MAX_LIMIT}.")
        new[k] = n
    api.policy.enforce(ctx, "update_quota", {"project_id": pid})

    def work(tx):
        if not force:
            for k, n in new.items():
                res = api.by_name.get(k)
                used = res.handler.count(tx.s, pid) if res else 0
                if n >= 0 and used > n:
                    raise errors.HTTPBadRequest(
                        f"Quota limit {n} for {k} must be greater than or equal to already used {used}")
        for k, n in new.items():
            row = tx.s.get(models.Quota, (pid, k))
            if row is None:
                tx.s.add(models.Quota(project_id=pid, resource=k, limit=n))
            else:
                row.limit = n
        tx.s.flush()
        return limits(tx.s, api.cfg, pid)

    result, _ = run_write(api.runtime, work)
    return result


def _delete(api, pid):
    def work(tx):
        n = tx.s.execute(delete(models.Quota).where(models.Quota.project_id == pid)).rowcount
        if not n:
            raise errors.TenantQuotaNotFound(tenant_id=pid)
    run_write(api.runtime, work)
