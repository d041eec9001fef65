"""Routers: CRUD, the external gateway (ext-gw-mode) and the member actions
add_router_interface / remove_router_interface (docs/API.md "Routers").

A router's ports are ordinary ports with device_id = router id:
`network:router_interface` on internal subnets (owned by the router's
project), one `network:router_gateway` on an external network (project '').
"""
from __future__ import annotations

from sqlalchemy import delete, select

from controller.api import errors, l3_logic, l3_ports
from controller.api import l3_errors as l3
from controller.api.attributes import (ATTR_NOT_SPECIFIED, Attr, convert_to_boolean,
                                       project_attrs, standard_attrs, validate_fixed_ips,
                                       validate_name, validate_uuid)
from controller.api.context import Context
from controller.api.registry import Extension
from controller.api.resource import (Handler, Resource, bump, project_dict, standard_dict)
from controller.db import models

ADMIN = Context.admin()


def convert_gateway_info(value):
    """external_gateway_info: null or {} clears; otherwise network_id is required."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise errors.HTTPBadRequest(
            f"Invalid input for external_gateway_info. Reason: '{value}' is not a dictionary.")
    unknown = sorted(set(value) - {"network_id", "enable_snat", "external_fixed_ips"})
    if unknown:
        raise errors.HTTPBadRequest(
            f"Invalid input for external_gateway_info. Reason: Unrecognized attribute(s) "
            f"'{', '.join(unknown)}'.")
    if "network_id" not in value:
        raise errors.HTTPBadRequest(
            "Invalid input for external_gateway_info. Reason: Validation of dictionary's keys "
            f"failed. Expected keys: {{'network_id'}} Provided keys: {set(value)}.")
    reason = validate_uuid(value["network_id"])
    out = {"network_id": value["network_id"]}
    if "enable_snat" in value:
        out["enable_snat"] = convert_to_boolean(value["enable_snat"])
    if "external_fixed_ips" in value:
        ips = value["external_fixed_ips"] or []
        reason = reason or validate_fixed_ips(ips)
        out["external_fixed_ips"] = ips
    if reason:
        raise errors.HTTPBadRequest(f"Invalid input for external_gateway_info. Reason: {reason}.")
    return out


ATTRIBUTES = {
    "id": Attr(is_filter=True, is_sort_key=True),
    "name": Attr(allow_post=True, allow_put=True, default="", validate=validate_name,
                 is_filter=True, is_sort_key=True),
    "admin_state_up": Attr(allow_post=True, allow_put=True, default=True,
                           convert_to=convert_to_boolean, is_filter=True, is_sort_key=True),
    "status": Attr(is_sort_key=True),
    **project_attrs(),
    "external_gateway_info": Attr(allow_post=True, allow_put=True, default=None,
                                  convert_to=convert_gateway_info),
    **standard_attrs(),
}


class RouterHandler(Handler):
    model = models.Router

    def __init__(self):
        self.actions = {"add_router_interface": add_interface,
                        "remove_router_interface": remove_interface}

    def make_dict(self, r):
        return {"id": r["id"], "name": r["name"], "admin_state_up": r["admin_state_up"],
                "status": r["status"], **project_dict(r), "external_gateway_info": None,
                "_gw_port_id": r["gw_port_id"], "_enable_snat": r["enable_snat"],
                **standard_dict(r)}

    def to_dicts(self, s, rows):
        out = super().to_dicts(s, rows)
        gw = {d["_gw_port_id"]: d for d in out if d["_gw_port_id"]}
        if gw:
            p, a = models.Port, models.IPAllocation
            nets = dict(s.execute(select(p.id, p.network_id).where(p.id.in_(list(gw)))).all())
            ips: dict[str, list] = {pid: [] for pid in gw}
            for pid, sid, ip in s.execute(select(a.port_id, a.subnet_id, a.ip_address)
                                          .where(a.port_id.in_(list(gw))).order_by(a.ip_address)):
                ips[pid].append({"subnet_id": sid, "ip_address": ip})
            for pid, d in gw.items():
                d["external_gateway_info"] = {"network_id": nets.get(pid),
                                              "enable_snat": d["_enable_snat"],
                                              "external_fixed_ips": ips[pid]}
        for d in out:
            del d["_gw_port_id"], d["_enable_snat"]
        return out

    # --- writes ---------------------------------------------------------------------
    def create(self, tx, ctx, body):
        router = models.Router(id=models.new_id(), project_id=body["project_id"],
                               name=body["name"], admin_state_up=body["admin_state_up"],
                               description=body["description"], status="ACTIVE")
        tx.s.add(router)
        tx.s.flush()
        if body["external_gateway_info"] is not None:
            _set_gateway(tx, router, body["external_gateway_info"])
        tx.changed("router", router.id, "create")
        return self.get(tx.s, ADMIN, router.id)

    def update(self, tx, ctx, id_, body, current):
        router = tx.s.get(models.Router, id_)
        for k in ("name", "admin_state_up", "description"):
            if k in body:
                setattr(router, k, body[k])
        if "external_gateway_info" in body:
            _set_gateway(tx, router, body["external_gateway_info"])
        bump(router)
        tx.s.flush()
        tx.changed("router", id_, "update")
        return self.get(tx.s, ADMIN, id_)

    def delete(self, tx, ctx, id_, current):
        s = tx.s
        interfaces = [pid for pid, _ in _router_ports(s, id_, interfaces_only=True)]
        if interfaces:
            raise l3.RouterInUse(router_id=id_,
                                 reason="has ports still attached: " + ", ".join(interfaces))
        router = s.get(models.Router, id_)
        _set_gateway(tx, router, None)
        s.execute(delete(models.Tag).where(models.Tag.resource_id == id_))
        s.execute(delete(models.Router).where(models.Router.id == id_))
        tx.changed("router", id_, "delete")


def _router_ports(s, router_id: str, interfaces_only: bool = False) -> list[tuple[str, str]]:
    """(port_id, device_owner) of the router's ports."""
    p = models.Port
    stmt = select(p.id, p.device_owner).where(p.device_id == router_id,
                                              p.device_owner.in_(l3_ports.ROUTER_OWNERS))
    if interfaces_only:
        stmt = stmt.where(p.device_owner != l3_ports.ROUTER_GATEWAY)
    return [(pid, owner) for pid, owner in s.execute(stmt.order_by(p.created_at, p.id))]


def _port_subnets(s, port_ids: list[str]) -> list[tuple[str, str]]:
    """(subnet_id, cidr) of every address of these ports."""
    if not port_ids:
        return []
    a, sn = models.IPAllocation, models.Subnet
    return sorted({(sid, cidr) for sid, cidr in s.execute(
        select(a.subnet_id, sn.cidr).join(sn, sn.id == a.subnet_id).where(a.port_id.in_(port_ids)))})


# --- the gateway -------------------------------------------------------------------------

def _set_gateway(tx, router: models.Router, info: dict | None) -> None:
    """Make the router's gateway match `info` (None: no gateway)."""
    s = tx.s
    old_port = s.get(models.Port, router.gw_port_id) if router.gw_port_id else None
    old_net = old_port.network_id if old_port else None
    if info is not None and info["network_id"] == old_net and "external_fixed_ips" not in info:
        router.enable_snat = info.get("enable_snat", router.enable_snat)
        return
    if old_port is not None:
        if info is None or info["network_id"] != old_net:
            _refuse_if_fips_need(s, router.id, old_net)
        router.gw_port_id = None
        s.flush()
        l3_ports.remove_port(tx, old_port.id)
    if info is None:
        router.enable_snat = True
        return
    net = s.get(models.Network, info["network_id"])
    if net is None:
        raise errors.NetworkNotFound(net_id=info["network_id"])
    if not net.external:
        raise l3_logic.router_error(f"Network {net.id} is not an external network")
    requested = info.get("external_fixed_ips", ATTR_NOT_SPECIFIED)
    if requested is not ATTR_NOT_SPECIFIED:
        _refuse_subnet_gateway_ips(s, requested)
        if not requested:
            requested = ATTR_NOT_SPECIFIED
    port = l3_ports.make_port(tx, net.id, "", l3_ports.ROUTER_GATEWAY, router.id, requested,
                              status="ACTIVE")
    interfaces = [pid for pid, _ in _router_ports(s, router.id, interfaces_only=True)]
    attached = _port_subnets(s, interfaces)
    for sub in _port_subnets(s, [port.id]):
        l3_logic.check_router_subnets(sub, attached)
    router.gw_port_id = port.id
    router.enable_snat = info.get("enable_snat", True)
    s.flush()


def _refuse_subnet_gateway_ips(s, requested: list[dict]) -> None:
    for entry in requested:
        ip, sid = entry.get("ip_address"), entry.get("subnet_id")
        if ip is None:
            continue
        stmt = select(models.Subnet.id).where(models.Subnet.gateway_ip == ip)
        if sid:
            stmt = stmt.where(models.Subnet.id == sid)
        if s.execute(stmt).first():
            raise l3_logic.router_error(f"External IP {ip} is the same as the gateway IP")


def _refuse_if_fips_need(s, router_id: str, network_id: str) -> None:
    f = models.FloatingIP
    if s.execute(select(f.id).where(f.router_id == router_id,
                                    f.floating_network_id == network_id).limit(1)).first():
        raise l3.RouterExternalGatewayInUseByFloatingIp(router_id=router_id, net_id=network_id)


# --- member actions -------------------------------------------------------------------------

def _router_for_action(api, tx, ctx, router_id: str, action: str) -> models.Router:
    current = RESOURCE.handler.get(tx.s, ctx, router_id)      # 404 RouterNotFound if invisible
    api.policy.enforce(ctx, action, {**current, "_resource": "router"})
    return tx.s.get(models.Router, router_id)


def _interface_info(body, for_removal: bool) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        raise errors.HTTPBadRequest("Body contains invalid data")
    port_id, subnet_id = body.get("port_id"), body.get("subnet_id")
    if "port_id" not in body and "subnet_id" not in body:
        raise l3_logic.router_error("Either subnet_id or port_id must be specified")
    for key in ("port_id", "subnet_id"):
        if key in body:
            reason = validate_uuid(body[key])
            if reason:
                raise l3_logic.router_error(reason)
    if not for_removal and "port_id" in body and "subnet_id" in body:
        raise l3_logic.router_error("Cannot specify both subnet-id and port-id")
    return port_id, subnet_id


def _interface_result(s, router: models.Router, port: models.Port,
                      subnet_ids: list[str]) -> dict:
    return {"id": router.id, "tenant_id": port.project_id, "project_id": port.project_id,
            "port_id": port.id, "network_id": port.network_id,
            "subnet_id": subnet_ids[0] if subnet_ids else None, "subnet_ids": subnet_ids}


def _attached_subnets(s, router_id: str) -> list[tuple[str, str]]:
    return _port_subnets(s, [pid for pid, _ in _router_ports(s, router_id)])


def add_interface(api, tx, ctx, router_id: str, body) -> dict:
    s = tx.s
    port_id, subnet_id = _interface_info(body, for_removal=False)
    router = _router_for_action(api, tx, ctx, router_id, "add_router_interface")
    if port_id:
        port = _attach_port(tx, ctx, router, port_id)
    else:
        port = _attach_subnet(tx, ctx, router, subnet_id)
    bump(router)
    s.flush()
    tx.changed("router", router.id, "update")
    subnet_ids = [sid for sid, _ in l3_ports.port_ips(s, port.id)]
    return _interface_result(s, router, port, sorted(set(subnet_ids), key=subnet_ids.index))


def _attach_subnet(tx, ctx, router, subnet_id: str) -> models.Port:
    from controller.api.resources.subnets import RESOURCE as SUBNETS
    s = tx.s
    subnet = SUBNETS.handler.get(s, ctx, subnet_id)           # 404 SubnetNotFound
    if not subnet["gateway_ip"]:
        raise l3_logic.router_error("Subnet for router interface must have a gateway IP")
    if not ctx.is_admin and subnet["project_id"] != ctx.project_id:
        raise l3_logic.router_error(
            f"Cannot add interface to router because subnet {subnet_id} is not owned by "
            f"project making the request")
    l3_logic.check_router_subnets((subnet_id, subnet["cidr"]), _attached_subnets(s, router.id))
    return l3_ports.make_port(tx, subnet["network_id"], router.project_id,
                              l3_ports.ROUTER_INTERFACE, router.id,
                              [{"subnet_id": subnet_id, "ip_address": subnet["gateway_ip"]}])


def _attach_port(tx, ctx, router, port_id: str) -> models.Port:
    from controller.api.resources.ports import RESOURCE as PORTS
    s = tx.s
    current = PORTS.handler.get(s, ctx, port_id)              # 404 PortNotFound
    if current["device_id"]:
        raise l3.PortInUse(port_id=port_id, net_id=current["network_id"],
                           device_id=current["device_id"])
    ips = current["fixed_ips"]
    if not ips:
        raise l3_logic.router_error("Router port must have at least one fixed IP")
    subnets = {sid: cidr for sid, cidr in _port_subnets(s, [port_id])}
    v4 = {sid for sid, cidr in subnets.items() if ":" not in cidr}
    if len(v4) > 1:
        raise l3_logic.router_error("Cannot have multiple IPv4 subnets on router port")
    attached = _attached_subnets(s, router.id)
    for sid, cidr in subnets.items():
        l3_logic.check_router_subnets((sid, cidr), attached)
    port = s.get(models.Port, port_id)
    port.device_id = router.id
    port.device_owner = l3_ports.ROUTER_INTERFACE
    # Router ports are not filtered by security groups.
    s.execute(delete(models.PortSecurityGroup).where(models.PortSecurityGroup.port_id == port_id))
    bump(port)
    s.flush()
    tx.changed("port", port_id, "update")
    return port


def remove_interface(api, tx, ctx, router_id: str, body) -> dict:
    s = tx.s
    port_id, subnet_id = _interface_info(body, for_removal=True)
    router = _router_for_action(api, tx, ctx, router_id, "remove_router_interface")
    interfaces = {pid for pid, _ in _router_ports(s, router.id, interfaces_only=True)}
    if port_id:
        if port_id not in interfaces:
            raise l3.RouterInterfaceNotFound(router_id=router.id, port_id=port_id)
        ips = l3_ports.port_ips(s, port_id)
        if subnet_id and subnet_id not in {sid for sid, _ in ips}:
            raise l3.SubnetMismatchForPort(port_id=port_id, subnet_id=subnet_id)
    else:
        from controller.api.resources.subnets import RESOURCE as SUBNETS
        SUBNETS.handler.get(s, ctx, subnet_id)                 # 404 SubnetNotFound
        a = models.IPAllocation
        row = s.execute(select(a.port_id).where(a.subnet_id == subnet_id,
                                                a.port_id.in_(interfaces)).limit(1)).first()
        if row is None:
            raise l3.RouterInterfaceNotFoundForSubnet(router_id=router.id, subnet_id=subnet_id)
        port_id = row[0]
        ips = l3_ports.port_ips(s, port_id)
    removing = [subnet_id] if subnet_id else sorted({sid for sid, _ in ips})
    for sid in removing:
        _refuse_if_fips_use_subnet(s, router.id, sid)
    port = s.get(models.Port, port_id)
    result = _interface_result(s, router, port, removing)
    remaining = [ip for ip in ips if ip[0] not in removing]
    if remaining:
        # Only that subnet goes; the port stays for its other subnets.
        a = models.IPAllocation
        s.execute(delete(a).where(a.port_id == port_id, a.subnet_id.in_(removing)))
        bump(port)
        tx.changed("port", port_id, "update")
    else:
        l3_ports.remove_port(tx, port_id)
    bump(router)
    s.flush()
    tx.changed("router", router.id, "update")
    return result


def _refuse_if_fips_use_subnet(s, router_id: str, subnet_id: str) -> None:
    import netaddr
    cidr = s.get(models.Subnet, subnet_id).cidr
    f = models.FloatingIP
    for (fixed,) in s.execute(select(f.fixed_ip_address).where(f.router_id == router_id,
                                                               f.fixed_ip_address.is_not(None))):
        if netaddr.IPAddress(fixed) in netaddr.IPNetwork(cidr):
            raise l3.RouterInterfaceInUseByFloatingIP(router_id=router_id, subnet_id=subnet_id)


# --- hooks on other resources --------------------------------------------------------------

def _network_updated(tx, ctx, body, result) -> None:
    """router:external true -> false is refused while routers use the network."""
    if body.get("router:external") is False:
        p = models.Port
        if tx.s.execute(select(p.id).where(p.network_id == result["id"],
                                           p.device_owner == l3_ports.ROUTER_GATEWAY)
                        .limit(1)).first():
            raise l3.ExternalNetworkInUse(net_id=result["id"])


def _port_deleting(tx, ctx, current) -> None:
    """Ports that exist for a router or a floating IP go with their owner."""
    owner, device_id = current["device_owner"], current["device_id"]
    owned = ((owner in l3_ports.ROUTER_OWNERS and tx.s.get(models.Router, device_id)) or
             (owner == l3_ports.FLOATINGIP and tx.s.get(models.FloatingIP, device_id)))
    if owned:
        raise l3.ServicePortInUse(port_id=current["id"], reason=f"has device owner {owner}")


# --- declarations ----------------------------------------------------------------------------

RESOURCE = Resource(name="router", collection="routers", attributes=ATTRIBUTES,
                    handler=RouterHandler(), not_found=l3.RouterNotFound,
                    not_found_key="router_id", quota="router")

QUOTAS = {"router": "quotas.quota_router"}

POLICY = {
    "create_router": "rule:admin_or_project_member",
    "get_router": "rule:admin_or_project_reader",
    "update_router": "rule:admin_or_project_member",
    "delete_router": "rule:admin_or_project_member",
    # the gateway's sub-attributes (dispatch checks each key the request names)
    **{f"{op}_router:external_gateway_info{sub}": rule
       for op in ("create", "update")
       for sub, rule in (("", "rule:admin_or_project_member"),
                         (":network_id", "rule:admin_or_project_member"),
                         (":enable_snat", "rule:admin_only"),
                         (":external_fixed_ips", "rule:admin_only"))},
    "add_router_interface": "rule:admin_or_project_member",
    "remove_router_interface": "rule:admin_or_project_member",
}

EXTENSIONS = [
    Extension("router", "Neutron L3 Router",
              "Router abstraction for basic L3 forwarding between L2 Neutron networks and "
              "access to external networks via a NAT gateway.", "2012-07-20T10:00:00-00:00"),
    Extension("ext-gw-mode", "Neutron L3 Configurable external gateway mode",
              "Extension of the router abstraction for specifying whether SNAT should occur "
              "on the external gateway", "2013-03-28T10:00:00-00:00"),
]


def setup(resources: dict) -> None:
    resources["network"].hooks["update"].append(_network_updated)
    resources["port"].hooks["delete"].append(_port_deleting)
