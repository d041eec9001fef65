"""Security groups and their rules (docs/API.md "Security groups"), and what they add to
ports: `security_groups` and `allowed_address_pairs`.

Every project has one group named `default` with Neutron's four rules. It is
made on demand (first group list, network create or port create of the
project); the DefaultSecurityGroup row, keyed by project, makes that
race-free. Rule validation itself is pure (controller/api/sg_rules.py).
"""
from __future__ import annotations

from sqlalchemy import Text, bindparam, cast, delete, func, or_, select

from controller.api import errors, sg_rules
from controller.api import l3_errors as l3
from controller.api.attributes import (ATTR_NOT_SPECIFIED, Attr, convert_none_to_empty_list, convert_to_boolean,
                                       project_attrs, standard_attrs, validate_name,
                                       validate_uuid, validate_uuid_list, validate_uuid_or_none,
                                       validate_values)
from controller.api.context import Context
from controller.api.registry import Extension
from controller.api.resource import (Handler, Resource, bump, project_dict, run_write,
                                     select_by_ids, standard_dict)
from controller.db import models

ADMIN = Context.admin()
SG_KIND = "security_group"


# --- the default group ---------------------------------------------------------------

_DEFAULT_OF = select(models.DefaultSecurityGroup.security_group_id).where(
    models.DefaultSecurityGroup.project_id == bindparam("project"))


def ensure_default_group(tx, project_id: str) -> str:
    """The id of the project's default group, creating it (and its rules) if needed."""
    s = tx.s
    s.flush()
    found = s.connection().execute(_DEFAULT_OF, {"project": project_id}).first()
    if found is not None:
        return found[0]
    sg = models.SecurityGroup(id=models.new_id(), project_id=project_id, name="default",
                              description="Default security group", is_default=True)
    s.add(sg)
    s.flush()
    # A concurrent creator makes this flush fail; run_write then retries and
    # finds the row above.
    s.add(models.DefaultSecurityGroup(project_id=project_id, security_group_id=sg.id))
    for r in sg_rules.default_rules(sg.id):
        s.add(models.SecurityGroupRule(id=models.new_id(), project_id=project_id,
                                       security_group_id=sg.id, **r))
    s.flush()
    tx.changed(SG_KIND, sg.id, "create")
    return sg.id


def _ensure_default_outside(project_id: str | None) -> None:
    """For read paths: make the default group in a transaction of its own."""
    if not project_id:
        return
    from controller.runtime import Runtime
    rt = Runtime.current()
    with rt.db.read() as s:
        if s.get(models.DefaultSecurityGroup, project_id) is not None:
            return
    run_write(rt, lambda tx: ensure_default_group(tx, project_id))


def _name_not_default(v):
    return validate_name(v)


# --- security groups -------------------------------------------------------------------

SG_ATTRIBUTES = {
    "id": Attr(is_filter=True, is_sort_key=True),
    "name": Attr(allow_post=True, allow_put=True, default="", validate=_name_not_default,
                 is_filter=True, is_sort_key=True),
    **project_attrs(),
    "security_group_rules": Attr(default=[]),
    "stateful": Attr(allow_post=True, allow_put=True, default=True, convert_to=convert_to_boolean,
                     is_filter=True),
    **standard_attrs(),
}


class SecurityGroupHandler(Handler):
    model = models.SecurityGroup

    def list(self, s, ctx, q):
        # Neutron creates the caller's default group on its first listing.
        _ensure_default_outside(ctx.project_id)
        return super().list(s, ctx, q)

    def make_dict(self, r):
        return {"id": r["id"], "name": r["name"], **project_dict(r), "security_group_rules": [],
                "stateful": r["stateful"], **standard_dict(r)}

    def to_dicts(self, s, rows):
        out = super().to_dicts(s, rows)
        by_id = {d["id"]: d for d in out}
        ids = list(by_id)
        rule_handler = RULE_RESOURCE.handler
        for i in range(0, len(ids), 900):
            stmt = rule_handler.base_select().where(
                models.SecurityGroupRule.security_group_id.in_(ids[i:i + 900]))
            for rule in rule_handler.to_dicts(s, s.execute(stmt).all()):
                del rule["security_group:project_id"]      # a policy key, not an attribute
                by_id[rule["security_group_id"]]["security_group_rules"].append(rule)
        return out

    def create(self, tx, ctx, body):
        s = tx.s
        if body["name"] == "default":
            raise l3.SecurityGroupDefaultAlreadyExists()
        # The project's default group comes first, as in Neutron.
        ensure_default_group(tx, body["project_id"])
        _check_rule_quota(tx, body["project_id"], len(sg_rules.template_rules()))
        sg = models.SecurityGroup(id=models.new_id(), project_id=body["project_id"],
                                  name=body["name"], description=body["description"],
                                  stateful=body["stateful"])
        s.add(sg)
        s.flush()
        for r in sg_rules.template_rules():
            s.add(models.SecurityGroupRule(id=models.new_id(), project_id=sg.project_id,
                                           security_group_id=sg.id, **r))
        s.flush()
        tx.changed(SG_KIND, sg.id, "create")
        return self.get(s, ADMIN, sg.id)

    def update(self, tx, ctx, id_, body, current):
        sg = tx.s.get(models.SecurityGroup, id_)
        if "name" in body and body["name"] != sg.name:
            if sg.is_default:
                raise l3.SecurityGroupCannotUpdateDefault()
            if body["name"] == "default":
                raise l3.SecurityGroupDefaultAlreadyExists()
        for k in ("name", "description", "stateful"):
            if k in body:
                setattr(sg, k, body[k])
        bump(sg)
        tx.s.flush()
        tx.changed(SG_KIND, id_, "update")
        return self.get(tx.s, ADMIN, id_)

    def delete(self, tx, ctx, id_, current):
        s = tx.s
        sg = s.get(models.SecurityGroup, id_)
        if sg.is_default and not ctx.is_admin:
            raise l3.SecurityGroupCannotRemoveDefault()
        in_use = s.execute(select(models.PortSecurityGroup.port_id).where(
            models.PortSecurityGroup.security_group_id == id_).limit(1)).first()
        if in_use:
            raise l3.SecurityGroupInUse(id=id_)
        r = models.SecurityGroupRule
        # Rules elsewhere that name this group as their remote go with it.
        s.execute(delete(r).where(or_(r.security_group_id == id_, r.remote_group_id == id_)))
        s.execute(delete(models.DefaultSecurityGroup).where(
            models.DefaultSecurityGroup.security_group_id == id_))
        s.execute(delete(models.Tag).where(models.Tag.resource_id == id_))
        s.execute(delete(models.SecurityGroup).where(models.SecurityGroup.id == id_))
        tx.changed(SG_KIND, id_, "delete")


def _check_rule_quota(tx, project_id: str, adding: int) -> None:
    from controller.api import quotas
    limit = quotas.limit_for(tx.s, tx.cfg, project_id, "security_group_rule")
    if limit >= 0 and RULE_RESOURCE.handler.count(tx.s, project_id) + adding > limit:
        raise errors.OverQuota(overs=["security_group_rule"])


def visible_group(s, ctx, group_id: str):
    """The group row if the caller may see it, else 404 SecurityGroupNotFound."""
    stmt = select(models.SecurityGroup).where(models.SecurityGroup.id == group_id)
    if not ctx.is_admin:
        stmt = stmt.where(models.SecurityGroup.project_id == ctx.project_id)
    sg = s.execute(stmt).scalar_one_or_none()
    if sg is None:
        raise l3.SecurityGroupNotFound(id=group_id)
    return sg


# --- rules -----------------------------------------------------------------------------

def _ethertype(v):
    if isinstance(v, str):
        for e in ("IPv4", "IPv6"):
            if v.lower() == e.lower():
                return e
    return v


RULE_ATTRIBUTES = {
    "id": Attr(is_filter=True, is_sort_key=True),
    "security_group_id": Attr(allow_post=True, validate=validate_uuid, is_filter=True,
                              is_sort_key=True),
    "direction": Attr(allow_post=True, validate=validate_values(["ingress", "egress"]),
                      is_filter=True, is_sort_key=True),
    "ethertype": Attr(allow_post=True, default="IPv4", convert_to=_ethertype,
                      validate=validate_values(["IPv4", "IPv6"]), is_filter=True, is_sort_key=True),
    "protocol": Attr(allow_post=True, default=None, convert_to=sg_rules.convert_protocol,
                     is_filter=True, is_sort_key=True),
    "port_range_min": Attr(allow_post=True, default=None, convert_to=sg_rules.convert_port,
                           is_filter=True, is_sort_key=True),
    "port_range_max": Attr(allow_post=True, default=None, convert_to=sg_rules.convert_port,
                           is_filter=True, is_sort_key=True),
    "remote_ip_prefix": Attr(allow_post=True, default=None, convert_to=sg_rules.convert_ip_prefix,
                             is_filter=True, is_sort_key=True),
    "remote_group_id": Attr(allow_post=True, default=None, validate=validate_uuid_or_none,
                            is_filter=True, is_sort_key=True),
    "belongs_to_default_sg": Attr(),
    **project_attrs(),
    **standard_attrs(),
}
del RULE_ATTRIBUTES["tags"]     # rules carry no tags in Neutron
_RULE_FIELDS = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
                "remote_ip_prefix", "remote_group_id")


class RuleHandler(Handler):
    model = models.SecurityGroupRule

    def base_select(self):
        g = models.SecurityGroup
        return (select(models.SecurityGroupRule.__table__, g.is_default.label("sg_is_default"),
                       g.project_id.label("sg_project_id"))
                .join(g, g.id == models.SecurityGroupRule.security_group_id))

    def scope(self, ctx, stmt):
        if ctx.is_admin:
            return stmt
        # Own rules, and every rule of the caller's own groups.
        return stmt.where(or_(models.SecurityGroupRule.project_id == ctx.project_id,
                              models.SecurityGroup.project_id == ctx.project_id))

    def make_dict(self, r):
        out = {"id": r["id"], "security_group_id": r["security_group_id"],
               **{k: r[k] for k in _RULE_FIELDS}, "belongs_to_default_sg": bool(r["sg_is_default"]),
               **project_dict(r), **standard_dict(r),
               # for policy only (not an attribute, never returned)
               "security_group:project_id": r["sg_project_id"]}
        del out["tags"]
        return out

    def policy_target(self, s, ctx, item):
        t = dict(item)
        if "security_group:project_id" not in t:
            # Creating in a group the caller cannot see: 404 SecurityGroupNotFound.
            t["security_group:project_id"] = visible_group(s, ctx, item["security_group_id"]).project_id
        return t

    def create(self, tx, ctx, body):
        s = tx.s
        sg = visible_group(s, ctx, body["security_group_id"])
        rule = sg_rules.normalise({k: body[k] for k in ("security_group_id", *_RULE_FIELDS)})
        if rule.get("remote_group_id"):
            visible_group(s, ctx, rule["remote_group_id"])
        key = sg_rules.rule_key(rule)
        existing = s.execute(self.base_select().where(
            models.SecurityGroupRule.security_group_id == sg.id)).all()
        in_this_post = tx.__dict__.setdefault("sg_rules_created", set())
        for row in existing:
            if sg_rules.rule_key(dict(row._mapping)) == key:
                if row.id in in_this_post:       # a bulk POST repeating itself
                    raise sg_rules.DuplicateSecurityGroupRuleInPost()
                raise sg_rules.SecurityGroupRuleExists(rule_id=row.id)
        row = models.SecurityGroupRule(id=models.new_id(), project_id=body["project_id"],
                                       security_group_id=sg.id, description=body["description"],
                                       **{k: rule[k] for k in _RULE_FIELDS})
        s.add(row)
        in_this_post.add(row.id)
        bump(sg)     # the group's revision follows its rules, as in Neutron
        s.flush()
        tx.changed(SG_KIND, sg.id, "update")
        return self.get(s, ADMIN, row.id)

    def delete(self, tx, ctx, id_, current):
        s = tx.s
        s.execute(delete(models.SecurityGroupRule).where(models.SecurityGroupRule.id == id_))
        sg = s.get(models.SecurityGroup, current["security_group_id"])
        if sg is not None:
            bump(sg)
        tx.changed(SG_KIND, current["security_group_id"], "update")


# --- ports: security_groups and allowed_address_pairs ----------------------------------

MAX_ADDRESS_PAIRS = 10


class AllowedAddressPairsMissingIP(errors.BadRequestBase):
    message = "AllowedAddressPair must contain ip_address"


class DuplicateAddressPairInRequest(errors.BadRequestBase):
    message = ("Request contains duplicate address pair: mac_address %(mac_address)s "
               "ip_address %(ip_address)s.")


class AllowedAddressPairExhausted(errors.BadRequestBase):
    message = "The number of allowed address pair exceeds the maximum %(quota)s."


def convert_address_pairs(value):
    """Validate the pairs and give them a canonical form (ip text, lower-case MAC)."""
    from controller.api.attributes import convert_mac, parse_cidr, parse_ip, validate_mac
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.HTTPBadRequest(
            f"Invalid input for allowed_address_pairs. Reason: '{value}' is not a list.")
    if len(value) > MAX_ADDRESS_PAIRS:
        raise AllowedAddressPairExhausted(quota=MAX_ADDRESS_PAIRS)
    out, seen = [], set()
    for pair in value:
        if not isinstance(pair, dict):
            raise errors.HTTPBadRequest(
                "Invalid input for allowed_address_pairs. Reason: Allowed address pairs must "
                "be a list of dictionaries.")
        if "ip_address" not in pair:
            raise AllowedAddressPairsMissingIP()
        unknown = sorted(set(pair) - {"ip_address", "mac_address"})
        if unknown:
            raise errors.HTTPBadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
        ip = pair["ip_address"]
        parsed = parse_cidr(ip) if isinstance(ip, str) and "/" in ip else parse_ip(ip)
        if parsed is None:
            raise errors.HTTPBadRequest(
                f"Invalid input for ip_address. Reason: '{ip}' is not a valid IP address.")
        canonical = {"ip_address": str(parsed)}
        if pair.get("mac_address") is not None:
            mac = convert_mac(pair["mac_address"])
            if validate_mac(mac):
                raise errors.HTTPBadRequest(
                    f"Invalid input for mac_address. Reason: '{pair['mac_address']}' is not a "
                    f"valid MAC address.")
            canonical["mac_address"] = mac
        key = (canonical["ip_address"], canonical.get("mac_address"))
        if key in seen:
            raise DuplicateAddressPairInRequest(mac_address=key[1], ip_address=key[0])
        seen.add(key)
        out.append(canonical)
    return out


PORT_ATTRIBUTES = {
    "security_groups": Attr(allow_post=True, allow_put=True, default=ATTR_NOT_SPECIFIED,
                            convert_to=convert_none_to_empty_list, validate=validate_uuid_list,
                            is_filter=True, filter_convert=str),
    "allowed_address_pairs": Attr(allow_post=True, allow_put=True, default=ATTR_NOT_SPECIFIED,
                                  convert_to=convert_address_pairs),
}


def _filter_ports_by_group(stmt, values):
    """?security_groups=<id> (repeated: any of them)."""
    b = models.PortSecurityGroup
    return stmt.where(models.Port.id.in_(
        select(b.port_id).where(b.security_group_id.in_(values))))


def _port_dicts(s, dicts: list[dict]) -> None:
    """dict hook: security_groups and allowed_address_pairs for ports, in batch.
    Pairs are read (and JSON-decoded) only for the ports that have some."""
    by_id = {d["id"]: d for d in dicts}
    ids = list(by_id)
    for d in dicts:
        d["security_groups"] = []
        d["allowed_address_pairs"] = []
    p, b = models.Port, models.PortSecurityGroup
    for pid, sgid in select_by_ids(s, b.port_id, [b.security_group_id], ids,
                                   order_by=(b.port_id, b.security_group_id)):
        by_id[pid]["security_groups"].append(sgid)
    pairs_text = cast(p.allowed_address_pairs, Text)
    for pid, pairs in select_by_ids(s, p.id, [p.allowed_address_pairs], ids,
                                    where=(p.allowed_address_pairs.is_not(None),
                                           pairs_text != "[]", pairs_text != "null")):
        d = by_id[pid]
        d["allowed_address_pairs"] = [
            {"ip_address": x["ip_address"], "mac_address": x.get("mac_address") or d["mac_address"]}
            for x in pairs or []]


def _port_groups_sql(dialect):
    if dialect != "sqlite":
        return None
    from controller.api.resources.ports import json_array
    b = models.PortSecurityGroup
    return json_array(select(b.security_group_id).where(b.port_id == models.Port.id)
                      .order_by(b.security_group_id))


def _port_pairs_sql(dialect):
    """The pairs as _port_dicts gives them (the port's MAC when a pair has none)."""
    if dialect != "sqlite":
        return None
    from controller.api.resources.ports import json_array
    p = models.Port
    e = func.json_each(p.allowed_address_pairs).table_valued("value", "type", "id").alias("pair")
    mac = func.coalesce(func.nullif(func.json_extract(e.c.value, "$.mac_address"), ""), p.mac_address)
    return json_array(select(func.json_extract(e.c.value, "$.ip_address").label("ip"), mac.label("mac"))
                      .select_from(e).where(e.c.type == "object").order_by(e.c.id),
                      lambda c: func.json_object("ip_address", c.ip, "mac_address", c.mac))


def _resolve_groups(tx, ctx, port: dict, requested) -> list[str]:
    """The groups a port gets: those requested (each must be the port
    project's), else the project default for ordinary ports."""
    if requested is ATTR_NOT_SPECIFIED:
        if not port["port_security_enabled"] or port["device_owner"].startswith("network:"):
            return []
        return [ensure_default_group(tx, port["project_id"])]
    for gid in requested:
        stmt = select(models.SecurityGroup.id).where(models.SecurityGroup.id == gid)
        if not ctx.is_admin:
            stmt = stmt.where(models.SecurityGroup.project_id == ctx.project_id)
        if tx.s.execute(stmt).first() is None:
            raise l3.SecurityGroupNotFound(id=gid)
    return list(requested)


_BINDING_INSERT = models.PortSecurityGroup.__table__.insert()


def _set_groups(tx, port_id: str, group_ids: list[str], creating: bool) -> None:
    b = models.PortSecurityGroup
    conn = tx.s.connection()
    if not creating:
        conn.execute(delete(b).where(b.port_id == port_id))
    if group_ids:
        conn.execute(_BINDING_INSERT, [{"port_id": port_id, "security_group_id": gid}
                                       for gid in sorted(set(group_ids))])


def _port_after_write(tx, ctx, body, result, creating: bool) -> None:
    """Works from the port's result dict (the handler's answer, which on update
    carries the stored groups and pairs): no ORM load of the port."""
    groups_given = body.get("security_groups", ATTR_NOT_SPECIFIED)
    pairs_given = body.get("allowed_address_pairs", ATTR_NOT_SPECIFIED)
    if creating:
        groups = _resolve_groups(tx, ctx, result, groups_given)
    elif groups_given is not ATTR_NOT_SPECIFIED:
        groups = _resolve_groups(tx, ctx, result, groups_given)
    else:
        groups = result.get("security_groups", [])
    pairs = (pairs_given if pairs_given is not ATTR_NOT_SPECIFIED
             else list(result.get("allowed_address_pairs") or []))
    if not result["port_security_enabled"]:
        if groups:
            if creating or groups_given is not ATTR_NOT_SPECIFIED:
                raise l3.PortSecurityAndIPRequiredForSecurityGroups()
            raise l3.PortSecurityPortHasSecurityGroup()
        if pairs:
            raise l3.AddressPairAndPortSecurityRequired()
    if groups and not result["fixed_ips"] and groups_given is not ATTR_NOT_SPECIFIED:
        raise l3.PortSecurityAndIPRequiredForSecurityGroups()
    if creating or groups_given is not ATTR_NOT_SPECIFIED:
        _set_groups(tx, result["id"], groups, creating)
    if pairs_given is not ATTR_NOT_SPECIFIED:
        p = models.Port
        tx.s.connection().execute(p.__table__.update().where(p.id == result["id"])
                                  .values(allowed_address_pairs=pairs))
    mac = result["mac_address"]
    result["security_groups"] = sorted(set(groups))
    result["allowed_address_pairs"] = [
        {"ip_address": x["ip_address"], "mac_address": x.get("mac_address") or mac}
        for x in pairs]


def _network_created(tx, ctx, body, result) -> None:
    ensure_default_group(tx, result["project_id"])


# --- declarations ----------------------------------------------------------------------

RESOURCE = Resource(name="security_group", collection="security_groups",
                    attributes=SG_ATTRIBUTES, handler=SecurityGroupHandler(),
                    not_found=l3.SecurityGroupNotFound, not_found_key="id",
                    quota="security_group", url_segment="security-groups")
RULE_RESOURCE = Resource(name="security_group_rule", collection="security_group_rules",
                         attributes=RULE_ATTRIBUTES, handler=RuleHandler(),
                         not_found=l3.SecurityGroupRuleNotFound, not_found_key="id",
                         quota="security_group_rule", url_segment="security-group-rules",
                         tags=False)
RESOURCES = [RESOURCE, RULE_RESOURCE]

QUOTAS = {"security_group": "quotas.quota_security_group",
          "security_group_rule": "quotas.quota_security_group_rule"}

POLICY = {
    "create_security_group": "rule:admin_or_project_member",
    "get_security_group": "rule:admin_or_project_reader",
    "update_security_group": "rule:admin_or_project_member",
    "delete_security_group": "rule:admin_or_project_member",
    # Rules: the group's owner.
    "sg_owner": "project_id:%(security_group:project_id)s",
    "create_security_group_rule": "rule:admin_only or (role:member and rule:sg_owner)",
    "get_security_group_rule": "rule:admin_only or (role:reader and rule:sg_owner)",
    "delete_security_group_rule": "rule:admin_only or (role:member and rule:sg_owner)",
}

EXTENSIONS = [
    Extension("security-group", "security-group",
              "The security groups extension.", "2012-10-05T10:00:00-00:00"),
    Extension("allowed-address-pairs", "Allowed Address Pairs",
              "Provides allowed address pairs", "2013-07-23T10:00:00-00:00"),
]


def setup(resources: dict) -> None:
    ports = resources["port"]
    ports.extend(PORT_ATTRIBUTES)
    ports.hooks["dict"].append(_port_dicts)
    ports.filters["security_groups"] = _filter_ports_by_group
    ports.json_sql["security_groups"] = _port_groups_sql
    ports.json_sql["allowed_address_pairs"] = _port_pairs_sql
    ports.hooks["create"].append(lambda tx, ctx, body, result:
                                 _port_after_write(tx, ctx, body, result, True))
    ports.hooks["update"].append(lambda tx, ctx, body, result:
                                 _port_after_write(tx, ctx, body, result, False))
    resources["network"].hooks["create"].append(_network_created)
