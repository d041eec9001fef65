"""Ports: MAC and fixed IP allocation, device ownership, binding (read-only)
and port security (docs/API.md "Ports"). Status starts DOWN; the reconciler
makes a port ACTIVE once its flows are in place."""
from __future__ import annotations

import netaddr
from sqlalchemy import and_, bindparam, case, exists, func, literal, or_, select, true

from controller import ipam
from controller.api import dhcp_port, errors
from controller.api.attributes import (ATTR_NOT_SPECIFIED, Attr, convert_none_to_empty_list, convert_kvp_list, convert_mac,
                                       convert_to_boolean, parse_ip, project_attrs, standard_attrs,
                                       validate_fixed_ips, validate_mac, validate_name,
                                       validate_string, validate_tags, validate_uuid, ConvertError)
from controller.api.context import Context
from controller.api.registry import Extension
from controller.api.resource import (Handler, Resource, attach_tags, bump, fmt_time,
                                      select_by_ids)
from controller.api.resources.networks import RESOURCE as NETWORK_RESOURCE
from controller.api.resources.networks import delete_port_rows
from controller.db import models

ADMIN = Context.admin()
AUTO_ADDRESS_MODES = ("slaac", "dhcpv6-stateless")


ATTRIBUTES = {
    "id": Attr(is_filter=True, is_sort_key=True),
    "name": Attr(allow_post=True, allow_put=True, default="", validate=validate_name,
                 is_filter=True, is_sort_key=True),
    "network_id": Attr(allow_post=True, validate=validate_uuid, is_filter=True, is_sort_key=True),
    "admin_state_up": Attr(allow_post=True, allow_put=True, default=True, convert_to=convert_to_boolean,
                           is_filter=True, is_sort_key=True),
    "mac_address": Attr(allow_post=True, allow_put=True, default=ATTR_NOT_SPECIFIED, convert_to=convert_mac,
                        validate=validate_mac, is_filter=True, is_sort_key=True),
    "fixed_ips": Attr(allow_post=True, allow_put=True, default=ATTR_NOT_SPECIFIED,
                      convert_to=convert_none_to_empty_list, validate=validate_fixed_ips, is_filter=True,
                      filter_convert=str),
    "device_id": Attr(allow_post=True, allow_put=True, default="", validate=validate_string(255),
                      is_filter=True, is_sort_key=True),
    "device_owner": Attr(allow_post=True, allow_put=True, default="", validate=validate_string(255),
                         is_filter=True, is_sort_key=True),
    "status": Attr(is_filter=True, is_sort_key=True),
    **project_attrs(),
    "port_security_enabled": Attr(allow_post=True, allow_put=True, default=ATTR_NOT_SPECIFIED,
                                  convert_to=convert_to_boolean),
    "binding:host_id": Attr(column="host_id", is_filter=True),
    "binding:vif_type": Attr(column="vif_type"),
    "binding:vnic_type": Attr(),
    **standard_attrs(),
    # ports accept tags on create (tag-ports-during-bulk-creation)
    "tags": Attr(allow_post=True, default=[], validate=validate_tags),
}
_SIMPLE = ("name", "admin_state_up", "device_id", "device_owner", "description", "port_security_enabled")
# Port columns as PortHandler.to_dicts unpacks them (allowed_address_pairs, a
# JSON column, is read by its own hook only for ports that have pairs).
_ROW_COLUMNS = ("id", "project_id", "network_id", "name", "mac_address", "admin_state_up", "status",
                "device_id", "device_owner", "port_security_enabled", "host_id", "vif_type",
                "description", "revision_number", "created_at", "updated_at")


class PortHandler(Handler):
    model = models.Port

    def base_select(self):
        n = models.Network
        cols = [models.Port.__table__.c[name] for name in _ROW_COLUMNS]
        return (select(*cols, n.project_id.label("net_project_id"),
                       n.shared.label("net_shared"), n.external.label("net_external"))
                .join(n, n.id == models.Port.network_id))

    def scope(self, ctx, stmt):
        if ctx.is_admin:
            return stmt
        return stmt.where(or_(models.Port.project_id == ctx.project_id,
                              models.Network.project_id == ctx.project_id))

    def filter(self, stmt, name, values):
        if name == "fixed_ips":
            try:
                kv = convert_kvp_list(values)
            except ConvertError as e:
                raise errors.InvalidInput(error_message=str(e)) from None
            a = models.IPAllocation
            conds = [a.port_id == models.Port.id]
            if "ip_address" in kv:
                conds.append(a.ip_address.in_([_ip_text_or_same(v) for v in kv["ip_address"]]))
            if "subnet_id" in kv:
                conds.append(a.subnet_id.in_(kv["subnet_id"]))
            if "ip_address_substr" in kv:
                conds.append(or_(*[a.ip_address.contains(v, autoescape=True) for v in kv["ip_address_substr"]]))
            return stmt.where(exists(select(a.port_id).where(and_(*conds))))
        if name == "mac_address":
            values = [convert_mac(v) for v in values]
        return super().filter(stmt, name, values)

    def to_dicts(self, s, rows):
        # The hot path of big lists: rows unpacked by position (the column
        # order of base_select), no per-row mapping or helper dicts.
        out, by_id = [], {}
        times: dict = {}          # ports made together share timestamps: format each once
        for (id_, project_id, network_id, name, mac, admin_state_up, status, device_id,
             device_owner, psec, host_id, vif_type, description, revision, created_at,
             updated_at, net_project_id, net_shared, net_external) in rows:
            d = port_dict(id_, project_id, network_id, name, mac, admin_state_up, status, device_id,
                          device_owner, psec, host_id, vif_type, description, revision,
                          times.get(created_at) or times.setdefault(created_at, fmt_time(created_at)),
                          times.get(updated_at) or times.setdefault(updated_at, fmt_time(updated_at)),
                          net_project_id, net_shared, net_external, [], [])
            out.append(d)
            by_id[id_] = d
        if not out:
            return out
        ids = list(by_id)
        a = models.IPAllocation
        for pid, sid, ip in select_by_ids(s, a.port_id, [a.subnet_id, a.ip_address], ids,
                                          order_by=(a.port_id, a.ip_address)):
            by_id[pid]["fixed_ips"].append({"subnet_id": sid, "ip_address": ip})
        attach_tags(s, out)
        for hook in self.resource.hooks["dict"]:
            hook(s, out)
        return out

    def list_json(self, s, ctx, q, keys):
        """Big lists on SQLite: the database writes each port's JSON (its JSON
        functions run in C: a 10,000-port list costs a fraction of building
        dicts in Python). Every key needs its SQL, including the attributes
        other modules add (Resource.json_sql); otherwise the generic path."""
        dialect = s.bind.dialect.name
        if dialect != "sqlite":
            return None
        sql = dict(_json_sql())
        for name, fn in self.resource.json_sql.items():
            sql[name] = fn(dialect)
        if any(sql.get(k) is None for k in keys):
            return None
        from controller.api import query
        stmt = query.apply(self, s, ctx, self.scope(ctx, self.base_select()), q)
        obj = func.json_object(*[x for k in keys for x in (literal(k), sql[k])]).label("item")
        # All items joined into one text by the database, in the list's order:
        # one row to fetch instead of 10,000 (each fetched row releases and
        # retakes the GIL, and a busy reconciler thread makes each retake wait).
        rows = stmt.with_only_columns(obj).subquery()
        text = s.connection().execute(select(func.group_concat(rows.c.item, ","))).scalar()
        return [text] if text else []

    def count(self, s, project_id):
        # The DHCP port is infrastructure: it does not use the project's quota.
        from sqlalchemy import func
        return s.execute(select(func.count()).select_from(models.Port).where(
            models.Port.project_id == project_id,
            models.Port.device_owner != dhcp_port.DHCP_OWNER)).scalar_one()

    def policy_target(self, s, ctx, item):
        t = dict(item)
        if "network:project_id" not in t:
            # Creating on a network the caller cannot see: 404 NetworkNotFound.
            net = _network_facts(s, item["network_id"], ctx)
            t.update({"network:project_id": net.project_id, "network:tenant_id": net.project_id,
                      "network:shared": net.shared, "network:router:external": net.external})
        return t

    # --- writes ----------------------------------------------------------------
    def create(self, tx, ctx, body):
        """The hot path of the API (one call per VM boot): Core statements on
        the transaction's connection, the network read once (shared with the
        policy check) and the answer built from what was written rather than
        selected again. Modules that add port attributes fill them in their
        "create" hook (security_groups.py does), as the "dict" hooks do not run here."""
        s = tx.s
        _check_fixed_ips_count(tx.cfg, body["fixed_ips"], body["device_owner"])
        conn = s.connection()
        net = _network_facts(s, body["network_id"])
        net_id = net.id
        mac = body["mac_address"]
        if mac is ATTR_NOT_SPECIFIED:
            mac = dhcp_port.new_mac(s, net_id, tx.cfg.get("DEFAULT.base_mac"))
        elif dhcp_port.mac_in_use(s, net_id, mac):
            raise errors.MacAddressInUse(net_id=net_id, mac=mac)
        psec = body["port_security_enabled"]
        if psec is ATTR_NOT_SPECIFIED:
            psec = net.port_security_enabled
        now = models.utcnow()
        port_id = models.new_id()
        conn.execute(_PORT_INSERT, {
            "id": port_id, "project_id": body["project_id"], "network_id": net_id, "name": body["name"],
            "mac_address": mac, "admin_state_up": body["admin_state_up"], "status": "DOWN",
            "device_id": body["device_id"], "device_owner": body["device_owner"],
            "port_security_enabled": psec, "allowed_address_pairs": [], "host_id": "",
            "vif_type": "unbound", "description": body["description"], "revision_number": 0,
            "created_at": now, "updated_at": now})
        ips = allocate(s, net_id, mac, body["fixed_ips"])
        if ips:
            conn.execute(_IP_INSERT, [{"subnet_id": sid, "ip_address": ip, "port_id": port_id,
                                       "network_id": net_id} for sid, ip in ips])
        tags = sorted(set(body["tags"]))
        if tags:
            conn.execute(_TAG_INSERT, [{"resource_id": port_id, "tag": t} for t in tags])
        tx.changed("port", port_id, "create")
        stamp = fmt_time(now)
        # What to_dicts would read back (fixed IPs in the same text order).
        result = port_dict(port_id, body["project_id"], net_id, body["name"], mac, body["admin_state_up"],
                           "DOWN", body["device_id"], body["device_owner"], psec, "", "unbound",
                           body["description"], 0, stamp, stamp, net.project_id, net.shared,
                           net.external, [{"subnet_id": sid, "ip_address": ip}
                                          for sid, ip in sorted(ips, key=lambda p: p[1])], tags)
        self.run_hooks("create", tx, ctx, body, result)
        return result

    def update(self, tx, ctx, id_, body, current):
        s = tx.s
        port = s.get(models.Port, id_)
        if "mac_address" in body and body["mac_address"] != port.mac_address:
            if port.device_owner.startswith("network:"):
                raise errors.UnsupportedPortDeviceOwner(op="mac_address update", port_id=id_,
                                                        device_owner=port.device_owner)
            if dhcp_port.mac_in_use(s, port.network_id, body["mac_address"]):
                raise errors.MacAddressInUse(net_id=port.network_id, mac=body["mac_address"])
            port.mac_address = body["mac_address"]
        if "fixed_ips" in body:
            _check_fixed_ips_count(tx.cfg, body["fixed_ips"], body.get("device_owner", port.device_owner))
            _replace_fixed_ips(s, port, body["fixed_ips"])
        for k in _SIMPLE:
            if k in body:
                setattr(port, k, body[k])
        bump(port)
        s.flush()
        tx.changed("port", id_, "update")
        result = self.get(s, ADMIN, id_)
        self.run_hooks("update", tx, ctx, body, result)
        return result

    def delete(self, tx, ctx, id_, current):
        self.run_hooks("delete", tx, ctx, current)
        delete_port_rows(tx.s, id_)
        tx.changed("port", id_, "delete")


def port_dict(id_, project_id, network_id, name, mac, admin_state_up, status, device_id,
              device_owner, psec, host_id, vif_type, description, revision, created, updated,
              net_project_id, net_shared, net_external, fixed_ips, tags) -> dict:
    """A port's API shape, the one place that writes it (to_dicts reads it
    from rows, create from what it wrote; times already formatted). Big lists
    on SQLite have the database write the same keys in the same order
    (_json_sql; tests/unit/test_port_shape.py holds them together)."""
    return {"id": id_, "name": name, "network_id": network_id, "admin_state_up": admin_state_up,
            "mac_address": mac, "fixed_ips": fixed_ips, "device_id": device_id,
            "device_owner": device_owner, "status": status, "project_id": project_id,
            "tenant_id": project_id, "port_security_enabled": psec,
            "binding:host_id": host_id, "binding:vif_type": vif_type,
            "binding:vnic_type": "normal", "description": description,
            "revision_number": revision, "created_at": created, "updated_at": updated, "tags": tags,
            "network:project_id": net_project_id, "network:tenant_id": net_project_id,
            "network:shared": net_shared, "network:router:external": net_external}


def json_bool(col):
    """SQLite JSON of a boolean column (json_object would write 0/1)."""
    return func.json(case((col.is_(None), "null"), (col == true(), "true"), else_="false"))


def json_array(rows, element=None):
    """JSON array, for the outer port row, of the rows of a select (correlated
    to ports and networks) in its order: one element per row, `element(columns)`
    or the first column. The aggregate reads an ordered subquery (SQLite keeps
    that order), and json() around it keeps the array from being quoted as a
    string by the json_object it goes into."""
    sub = rows.correlate(models.Port, models.Network).subquery()
    value = element(sub.c) if element else list(sub.c)[0]
    return func.json(select(func.json_group_array(value)).select_from(sub)
                     .correlate(models.Port, models.Network).scalar_subquery())


def json_time(col):
    return func.strftime("%Y-%m-%dT%H:%M:%SZ", col)


def _json_sql() -> dict:
    p, n, a, t = models.Port, models.Network, models.IPAllocation, models.Tag
    return {
        "id": p.id, "name": p.name, "network_id": p.network_id,
        "admin_state_up": json_bool(p.admin_state_up), "mac_address": p.mac_address,
        "fixed_ips": json_array(select(a.subnet_id, a.ip_address).where(a.port_id == p.id)
                                .order_by(a.ip_address),
                                lambda c: func.json_object("subnet_id", c.subnet_id, "ip_address", c.ip_address)),
        "device_id": p.device_id, "device_owner": p.device_owner, "status": p.status,
        "project_id": p.project_id, "tenant_id": p.project_id,
        "port_security_enabled": json_bool(p.port_security_enabled),
        "binding:host_id": p.host_id, "binding:vif_type": p.vif_type, "binding:vnic_type": literal("normal"),
        "description": p.description, "revision_number": p.revision_number,
        "created_at": json_time(p.created_at), "updated_at": json_time(p.updated_at),
        "tags": json_array(select(t.tag).where(t.resource_id == p.id).order_by(t.tag)),
        "network:project_id": n.project_id, "network:tenant_id": n.project_id,
        "network:shared": json_bool(n.shared), "network:router:external": json_bool(n.external),
    }


_PORT_INSERT = models.Port.__table__.insert()
_IP_INSERT = models.IPAllocation.__table__.insert()
_TAG_INSERT = models.Tag.__table__.insert()


_NETWORK_FACTS = select(models.Network.id, models.Network.project_id, models.Network.shared,
                        models.Network.external, models.Network.port_security_enabled
                        ).where(models.Network.id == bindparam("net"))


def _network_facts(s, network_id: str, ctx=None):
    """(id, project_id, shared, external, port_security_enabled) of a port's
    network, or 404. With a ctx the caller must be able to see the network.
    Kept in the session for the rest of the transaction: the policy check and
    the create (and every item of a bulk create) share one read."""
    cache = s.info.setdefault("port_networks", {})
    row = cache.get(network_id)
    if row is None or ctx is not None:
        stmt = _NETWORK_FACTS
        if ctx is not None and not ctx.is_admin:
            stmt = NETWORK_RESOURCE.handler.scope(ctx, stmt)
        row = s.connection().execute(stmt, {"net": network_id}).first()
        if row is None:
            raise errors.NetworkNotFound(net_id=network_id)
        cache[network_id] = row
    return row


def _ip_text_or_same(v: str) -> str:
    ip = parse_ip(v)
    return str(ip) if ip is not None else v


# --- fixed IPs ------------------------------------------------------------------------

_SUBNETS_OF = (select(models.Subnet.id, models.Subnet.cidr, models.Subnet.ip_version,
                      models.Subnet.allocation_pools, models.Subnet.ipv6_address_mode)
               .where(models.Subnet.network_id == bindparam("net"))
               .order_by(models.Subnet.created_at, models.Subnet.id))


def _subnets_of(s, network_id: str) -> list[dict]:
    s.flush()       # Core below: pending ORM subnets must be visible
    return [dict(r._mapping) for r in s.connection().execute(_SUBNETS_OF, {"net": network_id})]


def allocate(s, network_id: str, mac: str, requested, keep: set | None = None) -> list[tuple[str, str]]:
    """(subnet_id, ip) pairs for a new port, or for the new entries of an update."""
    subnets = _subnets_of(s, network_id)
    if requested is ATTR_NOT_SPECIFIED:
        return _auto(s, network_id, mac, subnets)
    by_id = {sn["id"]: sn for sn in subnets}
    out = []
    for entry in requested:
        sid, ip_s = entry.get("subnet_id"), entry.get("ip_address")
        if sid is None and ip_s is None:
            raise errors.InvalidInput(error_message="IP allocation requires subnet_id or ip_address")
        if sid is not None and sid not in by_id:
            if s.get(models.Subnet, sid) is None:
                raise errors.SubnetNotFound(subnet_id=sid)
            raise errors.InvalidInput(error_message=(
                f"Failed to create port on network {network_id}, because fixed_ips included "
                f"invalid subnet {sid}"))
        if ip_s is not None:
            ip = netaddr.IPAddress(ip_s)
            if sid is not None:
                if not ipam.ip_valid_for_subnet(netaddr.IPNetwork(by_id[sid]["cidr"]), ip):
                    raise errors.InvalidIpForSubnet(ip_address=ip_s)
            else:
                sid = next((sn["id"] for sn in subnets
                            if ipam.ip_valid_for_subnet(netaddr.IPNetwork(sn["cidr"]), ip)), None)
                if sid is None:
                    raise errors.InvalidIpForNetwork(ip_address=ip_s)
            text = str(ip)
            if (keep is None or (sid, text) not in keep) and ipam.is_allocated(s, sid, text):
                raise errors.IpAddressAlreadyAllocated(ip=text, subnet_id=sid)
            out.append((sid, text))
            continue
        sn = by_id[sid]
        ip = _one_from(s, sn, mac, exclude={p[1] for p in out if p[0] == sid})
        if ip is None:
            raise errors.IpAddressGenerationFailureForSubnet(subnet_id=sid)
        out.append((sid, ip))
    return out


def _one_from(s, sn: dict, mac: str, exclude=()) -> str | None:
    if sn["ip_version"] == 6 and sn["ipv6_address_mode"] in AUTO_ADDRESS_MODES:
        ip = ipam.eui64_address(sn["cidr"], mac)
        return None if ip in exclude or ipam.is_allocated(s, sn["id"], ip) else ip
    for _ in range(4):
        ip = ipam.allocate_random(s, sn)
        if ip is None or ip not in exclude:
            return ip
    return None


def _auto(s, network_id, mac, subnets) -> list[tuple[str, str]]:
    """One IPv4 address, one stateful IPv6 address, and every SLAAC address."""
    out = []
    for version in (4, 6):
        stateful = [sn for sn in subnets if sn["ip_version"] == version
                    and sn["ipv6_address_mode"] not in AUTO_ADDRESS_MODES]
        for sn in stateful:
            ip = ipam.allocate_random(s, sn)
            if ip is not None:
                out.append((sn["id"], ip))
                break
        else:
            if stateful:
                raise errors.IpAddressGenerationFailure(net_id=network_id)
    for sn in subnets:
        if sn["ip_version"] == 6 and sn["ipv6_address_mode"] in AUTO_ADDRESS_MODES:
            ip = ipam.eui64_address(sn["cidr"], mac)
            if ipam.is_allocated(s, sn["id"], ip):
                raise errors.IpAddressAlreadyAllocated(ip=ip, subnet_id=sn["id"])
            out.append((sn["id"], ip))
    return out


def _check_fixed_ips_count(cfg, requested, device_owner: str) -> None:
    """DEFAULT.max_fixed_ips_per_port for the ports of tenants (network:* ports,
    e.g. a router's, are trusted), before any address is looked at."""
    if requested is ATTR_NOT_SPECIFIED or device_owner.startswith("network:"):
        return
    if len(requested) > cfg.get("DEFAULT.max_fixed_ips_per_port"):
        raise errors.InvalidInput(error_message="Exceeded maximum amount of fixed ips per port")


def _replace_fixed_ips(s, port, requested) -> None:
    """fixed_ips on update replaces the list: keep matching addresses, release
    the rest, allocate what is new."""
    a = models.IPAllocation
    current = {(x.subnet_id, x.ip_address) for x in s.execute(select(a).where(a.port_id == port.id)).scalars()}
    subnets_ids = {sn["id"] for sn in _subnets_of(s, port.network_id)}
    kept, rest = set(), []
    for entry in requested:
        ip = parse_ip(entry["ip_address"]) if "ip_address" in entry else None
        if ip is not None:
            sid = entry.get("subnet_id")
            match = next(((cs, ci) for cs, ci in current if ci == str(ip) and (sid is None or cs == sid)), None)
            if match:
                kept.add(match)
                continue
        rest.append(entry)
    for entry in list(rest):
        if set(entry) == {"subnet_id"} and entry["subnet_id"] in subnets_ids:
            match = next(((cs, ci) for cs, ci in sorted(current - kept) if cs == entry["subnet_id"]), None)
            if match:
                kept.add(match)
                rest.remove(entry)
    for sid, ip in current - kept:
        s.execute(a.__table__.delete().where(a.subnet_id == sid, a.ip_address == ip))
    s.flush()
    for sid, ip in allocate(s, port.network_id, port.mac_address, rest, keep=kept):
        s.add(models.IPAllocation(subnet_id=sid, ip_address=ip, port_id=port.id, network_id=port.network_id))


RESOURCE = Resource(name="port", collection="ports", attributes=ATTRIBUTES, handler=PortHandler(),
                    not_found=errors.PortNotFound, not_found_key="port_id", quota="port",
                    has_network=True, core=True)

QUOTAS = {"port": "quotas.quota_port"}

EXTENSIONS = [
    Extension("binding", "Port Binding", "Expose port bindings of a virtual port to external application",
              "2014-02-03T10:00:00-00:00"),
    Extension("tag-ports-during-bulk-creation", "Tag Ports During Bulk Creation",
              "Allow to tag ports during bulk creation", "2019-12-29T19:00:00-00:00"),
]
