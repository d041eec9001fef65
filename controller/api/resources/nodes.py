"""Nodes: the hypervisors and gateways node-bootstrap registers (admins and
the `service` role: with Keystone, node-bootstrap registers as a service user).

    POST   /v2.0/nodes        upsert by hostname: 201 when new, 200 when updated
    GET    /v2.0/nodes[/<id>]
    PUT    /v2.0/nodes/<id>
    DELETE /v2.0/nodes/<id>

Every change publishes Change("node", id, op).
"""
from __future__ import annotations

from sqlalchemy import delete, select

from controller.api import errors
from controller.api import policy
from controller.api.attributes import (Attr, validate_dict_of_strings, validate_ip_or_none,
                                       validate_string, validate_values)
from controller.api.registry import Extension
from controller.api.resource import Handler, Resource, fmt_time
from controller.db import models

ROLES = ("compute", "gateway", "compute,gateway")

policy.register_defaults({f"{op}_node": "rule:admin_or_service"
                          for op in ("create", "get", "update", "delete")})


def _normalize_role(v):
    if isinstance(v, str):
        parts = sorted({p.strip() for p in v.split(",") if p.strip()})
        return ",".join(parts)
    return v


def _validate_ovsdb(v):
    if not isinstance(v, str):
        return f"'{v}' is not a valid string"
    if v == "":
        return None
    if v.startswith("unix:") and len(v) > 5:
        return validate_string(255)(v)
    kind, _, rest = v.partition(":")
    host, _, port = rest.rpartition(":")
    if kind in ("tcp", "ssl") and host and port.isdigit() and 0 < int(port) < 65536:
        return validate_string(255)(v)
    return f"'{v}' is not an OVSDB address (tcp:IP:PORT, ssl:IP:PORT or unix:PATH)"


def _validate_bridges(v):
    if not isinstance(v, dict):
        return f"'{v}' is not a dictionary"
    for name, dpid in v.items():
        if validate_string(15)(name) or not name:
            return f"'{name}' is not a valid bridge name"
        if not isinstance(dpid, int) or isinstance(dpid, bool) or not 0 <= dpid < 2 ** 64:
            return f"datapath id of {name} must be an integer 0..2**64-1"
    return None


ATTRIBUTES = {
    "id": Attr(is_filter=True, is_sort_key=True),
    "hostname": Attr(allow_post=True, default=None, validate=validate_string(255),
                     is_filter=True, is_sort_key=True),
    "role": Attr(allow_post=True, allow_put=True, default="compute", convert_to=_normalize_role,
                 validate=validate_values(ROLES), is_filter=True),
    "tunnel_ip": Attr(allow_post=True, allow_put=True, default=None, validate=validate_ip_or_none,
                      is_filter=True),
    "tunnel_type": Attr(allow_post=True, allow_put=True, default="gre",
                        validate=validate_values(("gre", "vxlan")), is_filter=True),
    "ovsdb": Attr(allow_post=True, allow_put=True, default="", validate=_validate_ovsdb),
    "bridge_mappings": Attr(allow_post=True, allow_put=True, default={}, validate=validate_dict_of_strings),
    "bridges": Attr(allow_post=True, allow_put=True, default={}, validate=_validate_bridges,
                    db_integer=False),     # datapath ids: 48 bits (node-bootstrap), JSON column
    "created_at": Attr(is_sort_key=True),
    "updated_at": Attr(is_sort_key=True),
}
_SETTABLE = ("role", "tunnel_ip", "tunnel_type", "ovsdb", "bridge_mappings", "bridges")


class NodeHandler(Handler):
    model = models.Node

    def scope(self, ctx, stmt):
        return stmt        # policy (admin only) decides; nodes have no project

    def make_dict(self, r):
        return {"id": r["id"], "hostname": r["hostname"], "role": r["role"],
                "tunnel_ip": r["tunnel_ip"], "tunnel_type": r["tunnel_type"], "ovsdb": r["ovsdb"],
                "bridge_mappings": r["bridge_mappings"] or {}, "bridges": r["bridges"] or {},
                "created_at": fmt_time(r["created_at"]), "updated_at": fmt_time(r["updated_at"])}

    def create(self, tx, ctx, body):
        if not body.get("hostname"):
            raise errors.HTTPBadRequest("Failed to parse request. Required attribute 'hostname' not specified")
        node = tx.s.execute(select(models.Node).where(models.Node.hostname == body["hostname"])).scalar()
        op = "update"
        if node is None:
            node = models.Node(id=models.new_id(), hostname=body["hostname"])
            tx.s.add(node)
            op = "create"
        else:
            tx.status = 200
            node.updated_at = models.utcnow()
        for k in _SETTABLE:
            setattr(node, k, body[k])
        tx.s.flush()
        tx.changed("node", node.id, op)
        return self.get(tx.s, None, node.id)

    def get_row(self, s, ctx, id_):
        row = s.execute(self.base_select().where(models.Node.id == id_)).first()
        if row is None:
            raise self.resource.not_found_error(id_)
        return row

    def update(self, tx, ctx, id_, body, current):
        node = tx.s.get(models.Node, id_)
        for k in _SETTABLE:
            if k in body:
                setattr(node, k, body[k])
        node.updated_at = models.utcnow()
        tx.s.flush()
        tx.changed("node", id_, "update")
        return self.get(tx.s, None, id_)

    def delete(self, tx, ctx, id_, current):
        tx.s.execute(delete(models.LocalVlan).where(models.LocalVlan.node_id == id_))
        tx.s.execute(delete(models.Node).where(models.Node.id == id_))
        tx.changed("node", id_, "delete")

    def count(self, s, project_id):
        return 0


RESOURCE = Resource(name="node", collection="nodes", attributes=ATTRIBUTES, handler=NodeHandler(),
                    not_found=errors.NodeNotFound, not_found_key="node_id", tags=False)

EXTENSIONS = [Extension("quantum-controller-nodes", "Controller nodes",
                        "Hypervisors and gateways registered with the controller (admin only).",
                        "2026-01-01T00:00:00-00:00")]
