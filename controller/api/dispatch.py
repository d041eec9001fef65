"""The HTTP layer: one generic set of operations for every resource.

URL shapes under /v2.0/ (an optional `.json` suffix is accepted):

    <collection>                      GET list, POST create (single or bulk)
    <collection>/<id>                 GET show, PUT update, DELETE
    <collection>/<id>/tags[/<tag>]    tag endpoints (controller/api/tags.py)
    <collection>/<id>/<action>        PUT member action (Resource.actions)
    extensions[/<alias>], quotas/...  special collections (registry.SPECIAL)

Order of checks, as in neutron's Pecan hooks: body and attributes (400),
quota (409), policy (403, or 404 when the caller cannot even see the object),
then the handler.
"""
from __future__ import annotations

import logging
import operator
from urllib.parse import urlsplit

from controller.api import body as bodies
from controller.api import context as contexts
from controller.api import errors, query, quotas, registry, tags
from controller.api.attributes import _bad_text
from controller.api.policy import Enforcer
from controller.api.resource import Resource, run_write
from controller.api.response import Response

LOG = logging.getLogger(__name__)


class Api:
    """Everything a request needs: runtime (cfg, db, bus), policy, resources."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.cfg = runtime.cfg
        self.db = runtime.db
        registry.load()     # first: resource modules register their default policy rules
        self.policy = Enforcer(self.cfg.get("DEFAULT.policy_file"))
        self.keystone = self.cfg.get("DEFAULT.auth_strategy") == "keystone"
        self.resources: dict[str, Resource] = {r.path: r for r in registry.RESOURCES}
        self.by_name: dict[str, Resource] = {r.name: r for r in registry.RESOURCES}

    # --- entry point --------------------------------------------------------------
    def handle(self, req) -> Response:
        """req: a werkzeug Request whose body was checked for size already."""
        path = req.path
        method = req.method
        if path == "/":
            if method != "GET":
                raise errors.HTTPMethodNotAllowed()
            return Response(200, self.versions(req))
        if not path.startswith("/v2.0/"):
            raise errors.HTTPNotFound()
        rest = path[len("/v2.0/"):]
        if rest.endswith(".json"):
            rest = rest[:-5]
        if rest in ("", "/"):
            if method != "GET":
                raise errors.HTTPMethodNotAllowed()
            return Response(200, self.resource_list(req))
        parts = rest.strip("/").split("/")
        ctx = (contexts.from_token(req.environ, self.policy) if self.keystone
               else contexts.from_headers(req.headers, self.policy))
        _check_identity(ctx)
        special = registry.SPECIAL.get(parts[0])
        if special is not None:
            return special(self, ctx, req, parts[1:])
        res = self.resources.get(parts[0])
        if res is None:
            raise errors.HTTPNotFound()
        if len(parts) == 1:
            return self.collection(res, ctx, req)
        if _bad_id(parts[1]):
            raise res.not_found_error(parts[1])
        if len(parts) == 2:
            return self.member(res, ctx, req, parts[1])
        if parts[2] == "tags" and res.tags and len(parts) <= 4:
            return tags.handle(self, res, ctx, req, parts[1], parts[3] if len(parts) == 4 else None)
        if len(parts) == 3 and parts[2] in getattr(res.handler, "actions", {}):
            if method != "PUT":
                raise errors.HTTPMethodNotAllowed()
            return self.action(res, ctx, req, parts[1], parts[2])
        raise errors.HTTPNotFound()

    # --- documents ------------------------------------------------------------------
    def base_url(self, req) -> str:
        base = req.host_url.rstrip("/")
        proto = req.headers.get("X-Forwarded-Proto")
        if proto:
            base = proto + "://" + urlsplit(base).netloc
        return base

    def versions(self, req) -> dict:
        return {"versions": [{"id": "v2.0", "status": "CURRENT",
                              "links": [{"rel": "self", "href": self.base_url(req) + "/v2.0/"}]}]}

    def resource_list(self, req) -> dict:
        base = self.base_url(req)
        return {"resources": [{"name": r.name, "collection": r.collection,
                               "links": [{"rel": "self", "href": f"{base}/v2.0/{r.path}"}]}
                              for r in registry.RESOURCES if r.core]}

    # --- collections ----------------------------------------------------------------
    def collection(self, res: Resource, ctx, req) -> Response:
        if req.method == "GET":
            return self.list(res, ctx, req)
        if req.method == "POST":
            return self.create(res, ctx, req)
        if req.method in ("PUT", "DELETE"):
            # neutron's quirk: the policy hook looks up the item None first.
            raise res.not_found_error("None")
        raise errors.HTTPMethodNotAllowed()

    def member(self, res: Resource, ctx, req, id_: str) -> Response:
        if req.method == "GET":
            return self.show(res, ctx, req, id_)
        if req.method == "PUT":
            return self.update(res, ctx, req, id_)
        if req.method == "DELETE":
            return self.delete(res, ctx, req, id_)
        raise errors.HTTPMethodNotAllowed()

    def list(self, res: Resource, ctx, req) -> Response:
        q = query.parse(res, req.args, self.cfg.get("DEFAULT.pagination_max_limit"))
        allowed = self.policy.allows_all(ctx, f"get_{res.name}")
        static, dynamic = self.view_plan(res, ctx, q.fields)
        if allowed and not dynamic and not q.limit:
            # Big unpaginated lists (admins, services): the handler may have the
            # database write each item's JSON (Handler.list_json); nothing is
            # left to filter or hide per item, so the texts are the answer.
            with self.db.read() as s:
                texts = res.handler.list_json(s, ctx, q, static)
            if texts is not None:
                return Response(200, b"".join((b'{"', res.collection.encode(), b'":[',
                                               ",".join(texts).encode("utf-8", "surrogatepass"),
                                               b"]}")))
        with self.db.read() as s:
            items = res.handler.list(s, ctx, q)
        items = query.finish_page(items, q)
        if not allowed:      # admins skip the per-item check
            can_get = self.policy.checker(ctx, f"get_{res.name}")
            items = [i for i in items if can_get(self.target(res, i))]
        view = self.viewer(res, ctx, q.fields)
        body = {res.collection: [view(i) for i in items]}
        links = query.links(res.collection, req.base_url, req.args, items, q)
        if links is not None:
            body[f"{res.collection}_links"] = links
        return Response(200, body)

    def show(self, res: Resource, ctx, req, id_: str) -> Response:
        fields = [f for v in req.args.getlist("fields") for f in v.split(",") if f]
        with self.db.read() as s:
            item = res.handler.get(s, ctx, id_)
        if not self.policy.check(ctx, f"get_{res.name}", self.target(res, item)):
            raise errors.HTTPNotFound()
        return Response(200, {res.name: self.viewer(res, ctx, fields)(item)})

    def create(self, res: Resource, ctx, req) -> Response:
        data = bodies.parse_json(req.get_data())
        raw_items, bulk = bodies.items_of(res, data, allow_bulk=True)
        items = [bodies.prepare(res, ctx, it, True, self.policy) for it in raw_items]

        def work(tx):
            out = []
            for item in items:
                self.check_quota(tx, res, item.get("project_id"))
                self.authorize_create(tx.s, res, ctx, item)
                out.append(res.handler.create(tx, ctx, item))
            return out

        created, tx = run_write(self.runtime, work)
        view = self.viewer(res, ctx)
        if bulk:
            return Response(tx.status or 201, {res.collection: [view(i) for i in created]})
        return Response(tx.status or 201, {res.name: view(created[0])})

    def update(self, res: Resource, ctx, req, id_: str) -> Response:
        data = bodies.parse_json(req.get_data())
        raw, _ = bodies.items_of(res, data, allow_bulk=False)
        item = bodies.prepare(res, ctx, raw[0], False, self.policy)

        def work(tx):
            current = res.handler.get(tx.s, ctx, id_)
            check_revision(req, current)
            self.authorize_change(tx.s, res, ctx, "update", current, item)
            return res.handler.update(tx, ctx, id_, item, current)

        updated, tx = run_write(self.runtime, work)
        return Response(tx.status or 200, {res.name: self.viewer(res, ctx)(updated)})

    def delete(self, res: Resource, ctx, req, id_: str) -> Response:
        if req.get_data().strip():
            raise errors.HTTPBadRequest("Request body is not supported in DELETE.")

        def work(tx):
            current = res.handler.get(tx.s, ctx, id_)
            check_revision(req, current)
            self.authorize_change(tx.s, res, ctx, "delete", current, {})
            res.handler.delete(tx, ctx, id_, current)

        run_write(self.runtime, work)
        return Response(204)

    def action(self, res: Resource, ctx, req, id_: str, name: str) -> Response:
        """PUT /<collection>/<id>/<action>: handler.actions[name](api, tx, ctx, id, body) -> dict."""
        data = bodies.parse_json(req.get_data())
        fn = res.handler.actions[name]
        result, _ = run_write(self.runtime, lambda tx: fn(self, tx, ctx, id_, data))
        return Response(200, result)

    # --- policy, quota, views -------------------------------------------------------
    def target(self, res: Resource, item: dict) -> dict:
        t = dict(item)
        t["_resource"] = res.name
        return t

    def authorize_create(self, s, res: Resource, ctx, item: dict) -> None:
        target = res.handler.policy_target(s, ctx, item)
        target["_resource"] = res.name
        action = f"create_{res.name}"
        self.policy.enforce(ctx, action, target)
        self.check_attribute_rules(ctx, res, action, item, target, True)

    def authorize_change(self, s, res: Resource, ctx, op: str, current: dict, item: dict) -> None:
        """update/delete: 403 when the caller can see the object, else 404."""
        base = res.handler.policy_target(s, ctx, current)
        target = {**base, **item, "_resource": res.name}
        action = f"{op}_{res.name}"
        if not self.policy.check(ctx, action, target):
            if self.policy.check(ctx, f"get_{res.name}", {**base, "_resource": res.name}):
                raise errors.PolicyNotAuthorized(action=action)
            raise errors.HTTPNotFound()
        self.check_attribute_rules(ctx, res, action, item, target, op == "create")

    def check_attribute_rules(self, ctx, res, action, item, target, is_create) -> None:
        for name in bodies.explicitly_set(res, item, is_create):
            rule = f"{action}:{name}"
            if self.policy.has(rule):
                self.policy.enforce(ctx, rule, target)
            value = item[name]
            # Sub-attributes: the keys of a dict (external_gateway_info:enable_snat)
            # or of a list of dicts (fixed_ips:ip_address), as neutron checks them.
            if isinstance(value, dict):
                keys = set(value)
            elif isinstance(value, list):
                keys = {k for v in value if isinstance(v, dict) for k in v}
            else:
                keys = set()
            for k in sorted(keys):
                if self.policy.has(f"{rule}:{k}"):
                    self.policy.enforce(ctx, f"{rule}:{k}", target)

    def check_quota(self, tx, res: Resource, project_id) -> None:
        if not res.quota or project_id is None:
            return
        limit = quotas.limit_for(tx.s, self.cfg, project_id, res.quota)
        if limit < 0:
            return
        if res.handler.count(tx.s, project_id) >= limit:
            raise errors.OverQuota(overs=[res.quota])

    def view_plan(self, res: Resource, ctx, fields: list[str] | None = None):
        """(keys always shown, [(key, per-item policy check)]) for this caller."""
        keys = [k for k, a in res.attributes.items() if a.is_visible]
        guarded, hidden = [], set()
        for k in keys:
            rule = f"get_{res.name}:{k}"
            if self.policy.has(rule):
                if self.policy.needs_target(rule):
                    guarded.append((k, self.policy.checker(ctx, rule)))
                elif not self.policy.check(ctx, rule, {}):
                    hidden.add(k)        # decided by the caller alone: once, not per item
        if fields:
            wanted = set(fields)
            keys = [k for k in keys if k in wanted]
        static = [k for k in keys if k not in dict(guarded) and k not in hidden]
        dynamic = [(k, chk) for k, chk in guarded if k in keys]
        return static, dynamic

    def viewer(self, res: Resource, ctx, fields: list[str] | None = None):
        """A function that turns a full dict into what this caller may see."""
        static, dynamic = self.view_plan(res, ctx, fields)
        pick = operator.itemgetter(*static) if len(static) > 1 else None

        def view(item: dict) -> dict:
            # Big lists: itemgetter + zip builds the dict much faster than a
            # comprehension; an item lacking a key takes the careful path.
            try:
                out = dict(zip(static, pick(item))) if pick else {k: item[k] for k in static if k in item}
            except KeyError:
                out = {k: item[k] for k in static if k in item}
            if dynamic:
                t = None
                for k, chk in dynamic:
                    if k in item:
                        t = t or self.target(res, item)
                        if chk(t):
                            out[k] = item[k]
            return out
        return view


def check_revision(req, current: dict) -> None:
    """If-Match: revision_number=<n> -> 412 when the object has moved on."""
    header = req.headers.get("If-Match")
    if not header or "revision_number" not in current:
        return
    for part in header.split(","):
        part = part.strip()
        if part.startswith("revision_number="):
            try:
                want = int(part.split("=", 1)[1])
            except ValueError:
                raise errors.HTTPBadRequest("If-Match revision_number must be an integer") from None
            if want != current["revision_number"]:
                raise errors.RevisionNumberConstraintFailed(expected=want,
                                                            current=current["revision_number"])


def _check_identity(ctx) -> None:
    """The ids of the identity headers go into queries and rows (a project's
    default security group): text the database can hold, else 400 rather
    than a 500 from the driver (PostgreSQL refuses NUL and over-long ids)."""
    for name, value in (("project", ctx.project_id), ("user", ctx.user_id)):
        if value is not None and (len(value) > 255 or _bad_text(value)):
            raise errors.HTTPBadRequest(f"Invalid {name} id in the request's identity headers")


def _bad_id(s: str) -> bool:
    # Ids are uuids or names the CLI tries: anything odd is simply not found.
    return len(s) > 255 or "\x00" in s or any(0xD800 <= ord(ch) <= 0xDFFF for ch in s)
