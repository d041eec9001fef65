"""Networks: core attributes plus the provider, external-net, net-mtu and
port-security extensions (docs/API.md "Networks")."""
from __future__ import annotations

from sqlalchemy import delete, or_, select

from controller import segments
from controller.api import errors
from controller.api.attributes import (ATTR_NOT_SPECIFIED, Attr, convert_to_boolean,
                                       convert_to_int, convert_to_int_or_none, project_attrs,
                                       standard_attrs, validate_name, validate_string)
from controller.api.context import Context
from controller.api.registry import Extension
from controller.api.resource import (Handler, Resource, bump, project_dict, select_by_ids,
                                      standard_dict)
from controller.db import models
from controller.model.owners import DHCP as DHCP_OWNER

# Ports deleted together with their network (neutron's AUTO_DELETE_PORT_OWNERS).
AUTO_DELETE_OWNERS = (DHCP_OWNER, "network:distributed", "network:floatingip_agent_gateway")

ADMIN = Context.admin()

ATTRIBUTES = {
    "id": Attr(is_filter=True, is_sort_key=True),
    "name": Attr(allow_post=True, allow_put=True, default="", validate=validate_name,
                 is_filter=True, is_sort_key=True),
    "admin_state_up": Attr(allow_post=True, allow_put=True, default=True,
                           convert_to=convert_to_boolean, is_filter=True, is_sort_key=True),
    "status": Attr(is_filter=True, is_sort_key=True),
    "subnets": Attr(default=[]),
    **project_attrs(),
    "shared": Attr(allow_post=True, allow_put=True, default=False, convert_to=convert_to_boolean,
                   is_filter=True, is_sort_key=True),
    "router:external": Attr(allow_post=True, allow_put=True, default=False, column="external",
                            convert_to=convert_to_boolean, is_filter=True, is_sort_key=True),
    "provider:network_type": Attr(allow_post=True, allow_put=True, default=ATTR_NOT_SPECIFIED,
                                  validate=validate_string(32), column="network_type", is_filter=True),
    "provider:physical_network": Attr(allow_post=True, allow_put=True, default=ATTR_NOT_SPECIFIED,
                                      validate=validate_string(64, nullable=True),
                                      column="physical_network", is_filter=True),
    "provider:segmentation_id": Attr(allow_post=True, allow_put=True, default=ATTR_NOT_SPECIFIED,
                                     convert_to=convert_to_int_or_none, column="segmentation_id",
                                     is_filter=True),
    "mtu": Attr(is_filter=True, is_sort_key=True, filter_convert=convert_to_int),
    "port_security_enabled": Attr(allow_post=True, allow_put=True, default=True,
                                  convert_to=convert_to_boolean),
    **standard_attrs(),
}
PROVIDER = ("provider:network_type", "provider:physical_network", "provider:segmentation_id")


class NetworkHandler(Handler):
    model = models.Network

    def scope(self, ctx, stmt):
        if ctx.is_admin:
            return stmt
        n = models.Network
        return stmt.where(or_(n.project_id == ctx.project_id, n.shared.is_(True), n.external.is_(True)))

    def make_dict(self, r) -> dict:
        return {"id": r["id"], "name": r["name"], "admin_state_up": r["admin_state_up"],
                "status": r["status"], "subnets": [], **project_dict(r),
                "shared": r["shared"], "router:external": r["external"],
                "provider:network_type": r["network_type"],
                "provider:physical_network": r["physical_network"],
                "provider:segmentation_id": r["segmentation_id"],
                "mtu": r["mtu"], "port_security_enabled": r["port_security_enabled"],
                **standard_dict(r)}

    def to_dicts(self, s, rows):
        out = super().to_dicts(s, rows)
        by_id = {d["id"]: d for d in out}
        sn = models.Subnet
        for nid, sid in select_by_ids(s, sn.network_id, [sn.id], list(by_id),
                                      order_by=(sn.created_at, sn.id)):
            by_id[nid]["subnets"].append(sid)
        return out

    # --- writes ----------------------------------------------------------------
    def create(self, tx, ctx, body):
        conf = segments.SegmentConfig.from_cfg(tx.cfg)
        requested = None
        if any(body.get(k) is not ATTR_NOT_SPECIFIED for k in PROVIDER):
            ntype = body.get("provider:network_type")
            if ntype is ATTR_NOT_SPECIFIED or not ntype:
                raise errors.InvalidInput(error_message="provider:network_type required")
            physnet = body.get("provider:physical_network")
            seg_id = body.get("provider:segmentation_id")
            requested = segments.validate_provider(
                conf, ntype, None if physnet is ATTR_NOT_SPECIFIED else physnet,
                None if seg_id is ATTR_NOT_SPECIFIED else seg_id)
        net = models.Network(id=models.new_id(), project_id=body["project_id"], name=body["name"],
                             admin_state_up=body["admin_state_up"], shared=body["shared"],
                             external=body["router:external"], description=body["description"],
                             port_security_enabled=body["port_security_enabled"], status="ACTIVE")
        seg = segments.allocate(tx.s, conf, net.id, requested)
        net.network_type = seg.network_type
        net.physical_network = seg.physical_network
        net.segmentation_id = seg.segmentation_id
        net.mtu = conf.mtu(seg.network_type)
        tx.s.add(net)
        tx.s.flush()
        tx.changed("network", net.id, "create")
        result = self.get(tx.s, ADMIN, net.id)
        self.run_hooks("create", tx, ctx, body, result)
        return result

    def update(self, tx, ctx, id_, body, current):
        for k in PROVIDER:
            if k in body and body[k] != current[k]:
                raise errors.InvalidInput(error_message="Plugin does not support updating provider attributes")
        net = tx.s.get(models.Network, id_)
        if body.get("shared") is False and net.shared:
            others = tx.s.execute(select(models.Port.id).where(
                models.Port.network_id == id_,
                models.Port.project_id.not_in([net.project_id, ""])).limit(1)).first()
            if others:
                raise errors.InvalidSharedSetting(network=id_)
        simple = {"name": "name", "admin_state_up": "admin_state_up", "shared": "shared",
                  "router:external": "external", "description": "description",
                  "port_security_enabled": "port_security_enabled"}
        for api_name, col in simple.items():
            if api_name in body:
                setattr(net, col, body[api_name])
        bump(net)
        tx.s.flush()
        tx.changed("network", id_, "update")
        result = self.get(tx.s, ADMIN, id_)
        self.run_hooks("update", tx, ctx, body, result)
        return result

    def delete(self, tx, ctx, id_, current):
        s = tx.s
        ports = s.execute(select(models.Port.id, models.Port.device_owner)
                          .where(models.Port.network_id == id_)).all()
        in_use = [pid for pid, owner in ports if owner not in AUTO_DELETE_OWNERS]
        if in_use:
            raise errors.NetworkInUse(net_id=id_, reason=(
                "There are one or more ports still in use on the network, id for these ports is: "
                + ", ".join(in_use)))
        self.run_hooks("delete", tx, ctx, current)
        for pid, _ in ports:
            delete_port_rows(s, pid)
            tx.changed("port", pid, "delete")
        for sid in current["subnets"]:
            s.execute(delete(models.Tag).where(models.Tag.resource_id == sid))
            s.execute(delete(models.Subnet).where(models.Subnet.id == sid))
            tx.changed("subnet", sid, "delete")
        segments.release(s, id_)
        s.execute(delete(models.Tag).where(models.Tag.resource_id == id_))
        s.execute(delete(models.Network).where(models.Network.id == id_))
        tx.changed("network", id_, "delete")


def network_target(s, network_id: str, ctx) -> dict:
    """The network:* keys of a child's policy target. With a ctx, a network
    the caller cannot see is a 404 (as neutron's rule:shared lookup does)."""
    n = models.Network
    stmt = select(n.id, n.project_id, n.shared, n.external).where(n.id == network_id)
    if ctx is not None:
        stmt = RESOURCE.handler.scope(ctx, stmt)
    row = s.execute(stmt).first()
    if row is None:
        raise errors.NetworkNotFound(net_id=network_id)
    return {"network:project_id": row.project_id, "network:tenant_id": row.project_id,
            "network:shared": row.shared, "network:router:external": row.external}


def delete_port_rows(s, port_id: str) -> None:
    """Remove a port with its addresses, security group bindings and tags."""
    s.execute(delete(models.IPAllocation).where(models.IPAllocation.port_id == port_id))
    s.execute(delete(models.PortSecurityGroup).where(models.PortSecurityGroup.port_id == port_id))
    s.execute(delete(models.Tag).where(models.Tag.resource_id == port_id))
    s.execute(delete(models.Port).where(models.Port.id == port_id))


RESOURCE = Resource(name="network", collection="networks", attributes=ATTRIBUTES,
                    handler=NetworkHandler(), not_found=errors.NetworkNotFound,
                    not_found_key="net_id", quota="network", core=True)

QUOTAS = {"network": "quotas.quota_network"}

EXTENSIONS = [
    Extension("provider", "Provider Network", "Expose mapping of virtual networks to physical networks",
              "2012-09-07T10:00:00-00:00"),
    Extension("external-net", "Neutron external network", "Adds external network attribute to network resource.",
              "2013-01-14T10:00:00-00:00"),
    Extension("net-mtu", "Network MTU", "Provides MTU attribute for a network resource.",
              "2015-03-25T10:00:00-00:00"),
    Extension("port-security", "Port Security", "Provides port security",
              "2012-07-23T10:00:00-00:00"),
]
