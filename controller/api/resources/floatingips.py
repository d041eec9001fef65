"""Floating IPs (docs/API.md "Floating IPs"): an address on an external network,
held by a `network:floatingip` port, optionally mapped to one fixed IP of an
internal port. `router_id` is computed: the router with an interface on that
fixed IP's subnet and its gateway on the floating network."""
from __future__ import annotations

from sqlalchemy import delete, select

from controller import ipam
from controller.api import errors, l3_logic, l3_ports
from controller.api import l3_errors as l3
from controller.api.attributes import (ATTR_NOT_SPECIFIED, Attr, project_attrs, standard_attrs,
                                       validate_ip_or_none, validate_uuid, validate_uuid_or_none)
from controller.api.context import Context
from controller.api.registry import Extension
from controller.api.resource import (Handler, Resource, bump, project_dict, standard_dict)
from controller.db import models

ADMIN = Context.admin()


def _ip_or_not_specified(v):
    return None if v is ATTR_NOT_SPECIFIED else validate_ip_or_none(v)


ATTRIBUTES = {
    "id": Attr(is_filter=True, is_sort_key=True),
    "floating_ip_address": Attr(allow_post=True, default=ATTR_NOT_SPECIFIED,
                                validate=_ip_or_not_specified, is_filter=True, is_sort_key=True),
    "floating_network_id": Attr(allow_post=True, validate=validate_uuid, is_filter=True,
                                is_sort_key=True),
    "subnet_id": Attr(allow_post=True, default=None, validate=validate_uuid_or_none,
                      is_visible=False),
    "router_id": Attr(is_filter=True, is_sort_key=True),
    "port_id": Attr(allow_post=True, allow_put=True, default=None, validate=validate_uuid_or_none,
                    is_filter=True, is_sort_key=True),
    "fixed_ip_address": Attr(allow_post=True, allow_put=True, default=None,
                             validate=validate_ip_or_none, is_filter=True, is_sort_key=True),
    "status": Attr(is_filter=True, is_sort_key=True),
    **project_attrs(),
    **standard_attrs(),
}


def _fip_error(msg: str) -> errors.BadRequest:
    return errors.BadRequest(resource="floatingip", msg=msg)


class FloatingIPHandler(Handler):
    model = models.FloatingIP

    def make_dict(self, r):
        return {"id": r["id"], "floating_ip_address": r["floating_ip_address"],
                "floating_network_id": r["floating_network_id"], "router_id": r["router_id"],
                "port_id": r["port_id"], "fixed_ip_address": r["fixed_ip_address"],
                "status": r["status"], **project_dict(r), **standard_dict(r)}

    def create(self, tx, ctx, body):
        s = tx.s
        net = s.get(models.Network, body["floating_network_id"])
        if net is None:
            raise errors.NetworkNotFound(net_id=body["floating_network_id"])
        if not net.external:
            raise _fip_error(f"Network {net.id} is not a valid external network")
        v4 = [sn for sn in net.subnets if sn.ip_version == 4]
        if not v4:
            raise _fip_error(f"Network {net.id} does not contain any IPv4 subnet")
        fip = models.FloatingIP(id=models.new_id(), project_id=body["project_id"],
                                floating_network_id=net.id, description=body["description"],
                                status="DOWN")
        port = l3_ports.make_port(tx, net.id, "", l3_ports.FLOATINGIP, fip.id,
                                  _address_request(s, net, v4, body), status="N/A")
        address = next((ip for _, ip in l3_ports.port_ips(s, port.id) if ":" not in ip), None)
        if address is None:
            raise l3.ExternalIpAddressExhausted(net_id=net.id)
        fip.floating_port_id, fip.floating_ip_address = port.id, address
        s.add(fip)
        s.flush()
        if body["port_id"] is not None or body["fixed_ip_address"] is not None:
            _associate(tx, ctx, fip, body["port_id"], body["fixed_ip_address"])
        tx.changed("floatingip", fip.id, "create")
        return self.get(s, ADMIN, fip.id)

    def update(self, tx, ctx, id_, body, current):
        fip = tx.s.get(models.FloatingIP, id_)
        if "description" in body:
            fip.description = body["description"]
        # An empty body disassociates; one with other keys but no port_id keeps
        # the association (neutron bug #1610045).
        if "port_id" in body or not body:
            _associate(tx, ctx, fip, body.get("port_id"), body.get("fixed_ip_address"))
        elif "fixed_ip_address" in body:
            _associate(tx, ctx, fip, fip.port_id, body["fixed_ip_address"])
        bump(fip)
        tx.s.flush()
        tx.changed("floatingip", id_, "update")
        return self.get(tx.s, ADMIN, id_)

    def delete(self, tx, ctx, id_, current):
        fip = tx.s.get(models.FloatingIP, id_)
        port_id = fip.floating_port_id
        tx.s.execute(delete(models.Tag).where(models.Tag.resource_id == id_))
        tx.s.delete(fip)
        tx.s.flush()
        l3_ports.remove_port(tx, port_id)
        tx.changed("floatingip", id_, "delete")


def _address_request(s, net, v4_subnets, body):
    """fixed_ips for the floating port: the requested address or subnet, or
    the first IPv4 subnet with a free address."""
    address, subnet_id = body["floating_ip_address"], body["subnet_id"]
    if subnet_id is not None:
        sub = next((sn for sn in v4_subnets if sn.id == subnet_id), None)
        if sub is None:
            raise _fip_error(f"Subnet {subnet_id} is not an IPv4 subnet of network {net.id}")
    if address is not ATTR_NOT_SPECIFIED and address is not None:
        entry = {"ip_address": address}
        if subnet_id:
            entry["subnet_id"] = subnet_id
        return [entry]
    candidates = [sn for sn in v4_subnets if subnet_id in (None, sn.id)]
    for sn in candidates:
        ip = ipam.allocate_random(s, {"id": sn.id, "cidr": sn.cidr, "ip_version": 4,
                                      "allocation_pools": sn.allocation_pools})
        if ip is not None:
            return [{"subnet_id": sn.id, "ip_address": ip}]
    raise l3.ExternalIpAddressExhausted(net_id=net.id)


def _associate(tx, ctx, fip: models.FloatingIP, port_id, fixed_ip) -> None:
    """Point the FIP at (port, fixed IP), or nowhere when port_id is None."""
    s = tx.s
    if port_id is None:
        if fixed_ip is not None:
            raise _fip_error("fixed_ip_address cannot be specified without a port_id")
        fip.port_id = fip.fixed_ip_address = fip.router_id = None
        fip.status = "DOWN"
        return
    from controller.api.resources.ports import RESOURCE as PORTS
    port = PORTS.handler.get(s, ctx, port_id)                   # 404 PortNotFound
    if not ctx.is_admin and port["project_id"] != fip.project_id:
        raise _fip_error(f"Cannot process floating IP association with Port {port_id}, since "
                         f"that port is owned by a different project")
    if port["device_owner"].startswith("network:"):
        raise _fip_error(f"Port {port_id} has owner {port['device_owner']} and therefore cannot "
                         f"be associated with a floating IP")
    v4 = [ip["ip_address"] for ip in port["fixed_ips"] if ":" not in ip["ip_address"]]
    fixed = l3_logic.choose_fixed_ip(port_id, v4, fixed_ip)
    subnet_id = next(ip["subnet_id"] for ip in port["fixed_ips"] if ip["ip_address"] == fixed)
    router_id = _router_for(s, subnet_id, fip.floating_network_id)
    if router_id is None:
        raise l3.ExternalGatewayForFloatingIPNotFound(
            external_network_id=fip.floating_network_id, subnet_id=subnet_id, port_id=port_id)
    f = models.FloatingIP
    taken = s.execute(select(f.id).where(f.port_id == port_id, f.fixed_ip_address == fixed,
                                         f.floating_network_id == fip.floating_network_id,
                                         f.id != fip.id)).first()
    if taken:
        raise l3.FloatingIPPortAlreadyAssociated(
            floating_ip_address=fip.floating_ip_address, fip_id=fip.id, port_id=port_id,
            fixed_ip=fixed, net_id=fip.floating_network_id)
    fip.port_id, fip.fixed_ip_address, fip.router_id = port_id, fixed, router_id
    # No agent reports back: the controller programs NAT from this row.
    fip.status = "ACTIVE"


def _router_for(s, subnet_id: str, external_network_id: str) -> str | None:
    p, a, r = models.Port, models.IPAllocation, models.Router
    gw = models.Port.__table__.alias("gw")
    rows = s.execute(
        select(r.id, a.ip_address, gw.c.network_id)
        .select_from(a)
        .join(p, p.id == a.port_id)
        .join(r, r.id == p.device_id)
        .outerjoin(gw, gw.c.id == r.gw_port_id)
        .where(a.subnet_id == subnet_id, p.device_owner.in_(l3_ports.ROUTER_OWNERS),
               p.device_owner != l3_ports.ROUTER_GATEWAY)
        .order_by(p.created_at, p.id)).all()
    candidates = [l3_logic.RouterCandidate(rid, ip, net) for rid, ip, net in rows]
    gateway_ip = s.get(models.Subnet, subnet_id).gateway_ip
    return l3_logic.router_for_floatingip(candidates, external_network_id, gateway_ip)


# --- hooks on ports ------------------------------------------------------------------------

def _port_deleting(tx, ctx, current) -> None:
    """A deleted port takes its floating IPs' associations with it."""
    f = models.FloatingIP
    for fip in tx.s.execute(select(f).where(f.port_id == current["id"])).scalars():
        if not ctx.is_admin and fip.project_id != ctx.project_id:
            raise l3.FipAssociated(port_id=current["id"], fip_id=fip.id)
        fip.port_id = fip.fixed_ip_address = fip.router_id = None
        fip.status = "DOWN"
        bump(fip)
        tx.changed("floatingip", fip.id, "update")
    tx.s.flush()


def _port_updated(tx, ctx, body, result) -> None:
    """fixed_ips may not drop an address a floating IP maps to."""
    if "fixed_ips" not in body:
        return
    kept = {ip["ip_address"] for ip in result["fixed_ips"]}
    f = models.FloatingIP
    for (fixed,) in tx.s.execute(select(f.fixed_ip_address).where(f.port_id == result["id"])):
        if fixed not in kept:
            raise errors.BadRequest(resource="port", msg=(
                f"Cannot update the fixed_ips of the port {result['id']}, because its original "
                f"fixed_ip has been associated to a floating ip"))



# --- declarations ----------------------------------------------------------------------------

RESOURCE = Resource(name="floatingip", collection="floatingips", attributes=ATTRIBUTES,
                    handler=FloatingIPHandler(), not_found=l3.FloatingIPNotFound,
                    not_found_key="floatingip_id", quota="floatingip")

QUOTAS = {"floatingip": "quotas.quota_floatingip"}

POLICY = {
    "create_floatingip": "rule:admin_or_project_member",
    "create_floatingip:floating_ip_address": "rule:admin_or_project_manager",
    "get_floatingip": "rule:admin_or_project_reader",
    "update_floatingip": "rule:admin_or_project_member",
    "delete_floatingip": "rule:admin_or_project_member",
}

EXTENSIONS: list[Extension] = []    # floating IPs are part of the `router` extension


def setup(resources: dict) -> None:
    resources["port"].hooks["delete"].append(_port_deleting)
    resources["port"].hooks["update"].append(_port_updated)
