"""Request bodies: parse, then `prepare()` one resource item the way
neutron's prepare_request_body does (docs/API.md "Request bodies"), in order:
project info, privileges, unknown keys, allow_post/allow_put, required and
defaults, convert_to, validate."""
from __future__ import annotations

import json

from controller.api import errors
from controller.api.attributes import ATTR_NOT_SPECIFIED, REQUIRED, ConvertError, out_of_range_int


def parse_json(raw: bytes):
    if not raw or not raw.strip():
        raise errors.HTTPBadRequest("Resource body required")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise errors.HTTPBadRequest("Body contains invalid data") from None
    if not isinstance(data, dict):
        raise errors.HTTPBadRequest("Body contains invalid data")
    return data


def items_of(resource, data: dict, allow_bulk: bool) -> tuple[list[dict], bool]:
    """The item dicts of a POST/PUT body and whether it is a bulk request."""
    if allow_bulk and resource.collection in data and resource.name not in data:
        items = data[resource.collection]
        if not isinstance(items, list):
            raise errors.HTTPBadRequest("Body contains invalid data")
        if not items:
            raise errors.HTTPBadRequest("Resources required")
        out = []
        for it in items:
            if isinstance(it, dict) and resource.name in it and len(it) == 1:
                it = it[resource.name]     # [{"network": {...}}] is accepted too
            if not isinstance(it, dict):
                raise errors.HTTPBadRequest("Body contains invalid data")
            out.append(it)
        return out, True
    if resource.name not in data:
        raise errors.HTTPBadRequest(f"Unable to find '{resource.name}' in request body")
    item = data[resource.name]
    if not isinstance(item, dict):
        raise errors.HTTPBadRequest("Body contains invalid data")
    return [item], False


def prepare(resource, ctx, item: dict, is_create: bool, policy=None) -> dict:
    attrs = resource.attributes
    item = dict(item)
    # 2. project_id / tenant_id
    if "project_id" in attrs:
        pid, tid = item.get("project_id"), item.get("tenant_id")
        if "project_id" in item and "tenant_id" in item and pid != tid:
            raise errors.HTTPBadRequest("'project_id' and 'tenant_id' do not match")
        if "tenant_id" in item and "project_id" not in item:
            item["project_id"] = tid
        if "project_id" in item:
            item.pop("tenant_id", None)
            # 3. only admins and services may act for another project
            if is_create and item["project_id"] != ctx.project_id and not _can_set_project(ctx, policy):
                raise errors.HTTPBadRequest(
                    "Specifying 'project_id' other than the authenticated project in request "
                    "is not allowed for the current user.")
        elif is_create:
            # 4. default to the caller's project
            if ctx.project_id is None:
                raise errors.HTTPBadRequest(
                    "Running without keystone AuthN requires that project_id is specified")
            item["project_id"] = ctx.project_id
    # 5. unknown keys
    unknown = sorted(k for k in item if k not in attrs)
    if unknown:
        raise errors.HTTPBadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    # 6. what may be set, and defaults
    if is_create:
        for k in item:
            if k != "project_id" and not attrs[k].allow_post:
                raise errors.HTTPBadRequest(f"Attribute '{k}' not allowed in POST")
        for name, a in attrs.items():
            if name in item or not a.allow_post or name in ("tenant_id", "project_id"):
                continue
            if a.default is REQUIRED:
                raise errors.HTTPBadRequest(
                    f"Failed to parse request. Required attribute '{name}' not specified")
            item[name] = _copy(a.default)
    else:
        for k in item:
            if not attrs[k].allow_put:
                raise errors.HTTPBadRequest(f"Cannot update read-only attribute {k}")
    # 7. convert, then validate (explicit values only; defaults are trusted)
    for name, value in list(item.items()):
        a = attrs[name]
        if value is ATTR_NOT_SPECIFIED:
            continue
        if a.convert_to is not None:
            try:
                value = a.convert_to(value)
            except ConvertError as e:
                raise errors.InvalidInput(error_message=str(e)) from None
            item[name] = value
        if a.validate is not None:
            reason = a.validate(value)
            if reason:
                raise errors.HTTPBadRequest(f"Invalid input for {name}. Reason: {reason}.")
        huge = out_of_range_int(value) if a.db_integer else None
        if huge is not None:
            raise errors.HTTPBadRequest(f"Invalid input for {name}. Reason: '{huge}' is out of range.")
    return item


def _can_set_project(ctx, policy) -> bool:
    if ctx.is_admin:
        return True
    return bool(policy and policy.check_rule("admin_or_service", ctx, {}))


def _copy(v):
    return list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v


def explicitly_set(resource, item: dict, is_create: bool) -> list[str]:
    """Attributes whose `<action>:<attr>` rule must be checked: named in a PUT,
    or set to a non-default value on POST."""
    out = []
    for name, value in item.items():
        a = resource.attributes.get(name)
        if a is None:
            continue
        if is_create and value is ATTR_NOT_SPECIFIED:
            continue
        if is_create and a.default is not REQUIRED and value == a.default:
            continue
        out.append(name)
    return out
