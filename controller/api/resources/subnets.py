"""Subnets: cidr, gateway, allocation pools, DNS, host routes, IPv4 and IPv6
(docs/API.md "Subnets and addresses"). Address allocation itself is in controller/ipam.py; the
network's DHCP port follows every change (controller/api/dhcp_port.py)."""
from __future__ import annotations

import netaddr
from sqlalchemy import delete, or_, select

from controller import ipam
from controller.api import dhcp_port, errors
from controller.api.attributes import (ATTR_NOT_SPECIFIED, Attr, convert_none_to_empty_list, convert_cidr, convert_to_boolean,
                                       convert_to_int, parse_ip, project_attrs, standard_attrs,
                                       validate_hostroutes, validate_ip_or_none, validate_name,
                                       validate_nameservers, validate_pools, validate_subnet_or_none,
                                       validate_uuid, validate_values)
from controller.api.context import Context
from controller.api.resource import Handler, Resource, bump, project_dict, standard_dict
from controller.api.resources.networks import AUTO_DELETE_OWNERS, network_target
from controller.db import models

ADMIN = Context.admin()
IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")


ATTRIBUTES = {
    "id": Attr(is_filter=True, is_sort_key=True),
    "name": Attr(allow_post=True, allow_put=True, default="", validate=validate_name,
                 is_filter=True, is_sort_key=True),
    "network_id": Attr(allow_post=True, validate=validate_uuid, is_filter=True, is_sort_key=True),
    "ip_version": Attr(allow_post=True, convert_to=convert_to_int, validate=validate_values([4, 6]),
                       is_filter=True, is_sort_key=True),
    "cidr": Attr(allow_post=True, default=ATTR_NOT_SPECIFIED, convert_to=convert_cidr,
                 validate=validate_subnet_or_none, is_filter=True, is_sort_key=True),
    "gateway_ip": Attr(allow_post=True, allow_put=True, default=ATTR_NOT_SPECIFIED,
                       validate=validate_ip_or_none, is_filter=True, is_sort_key=True),
    "allocation_pools": Attr(allow_post=True, allow_put=True, default=ATTR_NOT_SPECIFIED,
                             convert_to=convert_none_to_empty_list, validate=validate_pools),
    "dns_nameservers": Attr(allow_post=True, allow_put=True, default=[], convert_to=convert_none_to_empty_list,
                            validate=validate_nameservers),
    "host_routes": Attr(allow_post=True, allow_put=True, default=[], convert_to=convert_none_to_empty_list,
                        validate=validate_hostroutes),
    "enable_dhcp": Attr(allow_post=True, allow_put=True, default=True, convert_to=convert_to_boolean,
                        is_filter=True, is_sort_key=True),
    "ipv6_ra_mode": Attr(allow_post=True, default=None, validate=lambda v: None if v is None else
                         validate_values(IPV6_MODES)(v), is_filter=True, is_sort_key=True),
    "ipv6_address_mode": Attr(allow_post=True, default=None, validate=lambda v: None if v is None else
                              validate_values(IPV6_MODES)(v), is_filter=True, is_sort_key=True),
    "subnetpool_id": Attr(allow_post=True, default=None, validate=lambda v: None if v is None else
                          "subnet pools are not supported", is_filter=True),
    **project_attrs(),
    "shared": Attr(is_visible=False, is_filter=True, convert_to=convert_to_boolean),
    **standard_attrs(),
}


class SubnetHandler(Handler):
    model = models.Subnet

    def base_select(self):
        n = models.Network
        return (select(models.Subnet.__table__, n.project_id.label("net_project_id"),
                       n.shared.label("net_shared"), n.external.label("net_external"))
                .join(n, n.id == models.Subnet.network_id))

    def scope(self, ctx, stmt):
        if ctx.is_admin:
            return stmt
        n = models.Network
        return stmt.where(or_(models.Subnet.project_id == ctx.project_id, n.project_id == ctx.project_id,
                              n.shared.is_(True), n.external.is_(True)))

    def filter(self, stmt, name, values):
        if name == "shared":
            col = models.Network.shared
            return stmt.where(col.in_(values))
        if name in ("gateway_ip", "cidr"):
            values = [_canonical(name, v) for v in values]
        return super().filter(stmt, name, values)

    def make_dict(self, r):
        return {"id": r["id"], "name": r["name"], "network_id": r["network_id"],
                "ip_version": r["ip_version"], "cidr": r["cidr"], "gateway_ip": r["gateway_ip"],
                "allocation_pools": r["allocation_pools"] or [],
                "dns_nameservers": r["dns_nameservers"] or [], "host_routes": r["host_routes"] or [],
                "enable_dhcp": r["enable_dhcp"], "ipv6_ra_mode": r["ipv6_ra_mode"],
                "ipv6_address_mode": r["ipv6_address_mode"], "subnetpool_id": None,
                **project_dict(r), "shared": r["net_shared"], **standard_dict(r),
                # for policy only (not attributes, never returned)
                "network:project_id": r["net_project_id"], "network:shared": r["net_shared"],
                "network:router:external": r["net_external"]}

    def policy_target(self, s, ctx, item):
        t = dict(item)
        if "network:project_id" not in t:
            t.update(network_target(s, item["network_id"], None))
        return t

    # --- writes ----------------------------------------------------------------
    def create(self, tx, ctx, body):
        s = tx.s
        net = s.get(models.Network, body["network_id"])
        if body["cidr"] is ATTR_NOT_SPECIFIED or body["cidr"] is None:
            raise errors.BadRequest(resource="subnets", msg="a subnetpool must be specified in the absence of a cidr")
        cidr = ipam.canonical_cidr(body["cidr"])
        version = body["ip_version"]
        if cidr.version != version:
            raise _invalid(f"cidr '{body['cidr']}' does not match the ip_version '{version}'")
        _check_cidr(cidr, body["enable_dhcp"])
        if version == 4 and (body["ipv6_ra_mode"] or body["ipv6_address_mode"]):
            raise _invalid("ipv6_ra_mode and ipv6_address_mode are only valid for IPv6 subnets")
        if body["ipv6_ra_mode"] and body["ipv6_address_mode"] and body["ipv6_ra_mode"] != body["ipv6_address_mode"]:
            raise _invalid("ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. "
                           "If both attributes are set, they must be the same value"
                           % (body["ipv6_ra_mode"], body["ipv6_address_mode"]))
        for other in s.execute(select(models.Subnet.cidr).where(models.Subnet.network_id == net.id)).scalars():
            if netaddr.IPNetwork(other).version == version and (netaddr.IPSet([cidr]) & netaddr.IPSet([other])):
                raise _invalid(f"Requested subnet with cidr: {cidr} for network: {net.id} "
                               "overlaps with another subnet")
        gateway = body["gateway_ip"]
        if gateway is ATTR_NOT_SPECIFIED:
            gateway = ipam.default_gateway(cidr)
        elif gateway is not None:
            gateway = _check_gateway(cidr, gateway)
        if body["allocation_pools"] is ATTR_NOT_SPECIFIED:
            pools = ipam.generate_pools(cidr, gateway)
        else:
            pools = ipam.validate_pools(cidr, body["allocation_pools"], gateway)
        dns, routes = _check_dns_routes(tx.cfg, None, version, body["dns_nameservers"], body["host_routes"])
        sub = models.Subnet(id=models.new_id(), project_id=body["project_id"], network_id=net.id,
                            name=body["name"], ip_version=version, cidr=str(cidr), gateway_ip=gateway,
                            enable_dhcp=body["enable_dhcp"], ipv6_ra_mode=body["ipv6_ra_mode"],
                            ipv6_address_mode=body["ipv6_address_mode"], allocation_pools=pools,
                            dns_nameservers=dns, host_routes=routes, description=body["description"])
        s.add(sub)
        s.flush()
        tx.changed("subnet", sub.id, "create")
        dhcp_port.sync(tx, net.id)
        result = self.get(s, ADMIN, sub.id)
        self.run_hooks("create", tx, ctx, body, result)
        return result

    def update(self, tx, ctx, id_, body, current):
        s = tx.s
        sub = s.get(models.Subnet, id_)
        cidr = netaddr.IPNetwork(sub.cidr)
        gateway = sub.gateway_ip
        if "gateway_ip" in body and body["gateway_ip"] != sub.gateway_ip:
            new_gw = _check_gateway(cidr, body["gateway_ip"]) if body["gateway_ip"] is not None else None
            if sub.gateway_ip:
                holder = s.execute(select(models.Port.id).join(
                    models.IPAllocation, models.IPAllocation.port_id == models.Port.id).where(
                    models.IPAllocation.subnet_id == id_, models.IPAllocation.ip_address == sub.gateway_ip,
                    models.Port.device_owner.like("network:router_interface%"))).first()
                if holder:
                    raise errors.GatewayIpInUse(ip_address=sub.gateway_ip, port_id=holder[0])
            gateway = new_gw
        pools = body.get("allocation_pools", sub.allocation_pools)
        if "allocation_pools" in body or "gateway_ip" in body:
            pools = ipam.validate_pools(cidr, pools, gateway)
        dns, routes = _check_dns_routes(tx.cfg, id_, sub.ip_version,
                                        body.get("dns_nameservers", sub.dns_nameservers),
                                        body.get("host_routes", sub.host_routes))
        sub.gateway_ip, sub.allocation_pools = gateway, pools
        sub.dns_nameservers, sub.host_routes = dns, routes
        for k in ("name", "description", "enable_dhcp"):
            if k in body:
                setattr(sub, k, body[k])
        bump(sub)
        s.flush()
        tx.changed("subnet", id_, "update")
        if "enable_dhcp" in body:
            dhcp_port.sync(tx, sub.network_id)
        result = self.get(s, ADMIN, id_)
        self.run_hooks("update", tx, ctx, body, result)
        return result

    def delete(self, tx, ctx, id_, current):
        s = tx.s
        users = s.execute(select(models.Port.id).join(
            models.IPAllocation, models.IPAllocation.port_id == models.Port.id).where(
            models.IPAllocation.subnet_id == id_,
            models.Port.device_owner.not_in(AUTO_DELETE_OWNERS)).limit(1)).first()
        if users:
            raise errors.SubnetInUse(subnet_id=id_)
        self.run_hooks("delete", tx, ctx, current)
        s.execute(delete(models.IPAllocation).where(models.IPAllocation.subnet_id == id_))
        s.execute(delete(models.Tag).where(models.Tag.resource_id == id_))
        s.execute(delete(models.Subnet).where(models.Subnet.id == id_))
        tx.changed("subnet", id_, "delete")
        dhcp_port.sync(tx, current["network_id"])


def _invalid(msg):
    return errors.InvalidInput(error_message=msg)


def _canonical(name, v):
    try:
        return str(netaddr.IPNetwork(v).cidr) if name == "cidr" else ipam.ip_text(v)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return v


def _check_cidr(cidr: netaddr.IPNetwork, enable_dhcp: bool) -> None:
    if cidr.prefixlen == 0:
        raise _invalid("0 is not allowed as CIDR prefix length")
    if cidr.version == 6 and cidr.first == 0:
        raise _invalid(f"Requested subnet with cidr: {cidr} is not allowed (:: is reserved)")
    if not enable_dhcp:
        return
    if (cidr.version == 4 and cidr.prefixlen > 30) or (cidr.version == 6 and cidr.prefixlen > 126):
        raise _invalid("Subnet has a prefix length that is incompatible with DHCP service enabled")
    if cidr.network.is_multicast() or cidr.network.is_loopback():
        raise _invalid(f"{'Multicast' if cidr.network.is_multicast() else 'Loopback'} IP subnet is not "
                       "supported if enable_dhcp is True")
    if cidr.version == 4 and cidr.first == 0:
        raise _invalid("First IP '0.0.0.0' in subnet is not supported if enable_dhcp is True")


def _check_gateway(cidr: netaddr.IPNetwork, gateway: str) -> str:
    ip = parse_ip(gateway)
    if ip is None or ip.version != cidr.version:
        raise _invalid(f"gateway_ip '{gateway}' does not match the ip_version '{cidr.version}'")
    if cidr.version == 4 and cidr.prefixlen < 31 and int(ip) in (cidr.first, cidr.last):
        raise _invalid("Gateway is not valid on subnet")
    return str(ip)


def _check_dns_routes(cfg, subnet_id, version, dns, routes):
    if len(dns) > cfg.get("DEFAULT.max_dns_nameservers"):
        raise errors.DNSNameServersExhausted(subnet_id=subnet_id, quota=cfg.get("DEFAULT.max_dns_nameservers"))
    if len(routes) > cfg.get("DEFAULT.max_subnet_host_routes"):
        raise errors.HostRoutesExhausted(subnet_id=subnet_id, quota=cfg.get("DEFAULT.max_subnet_host_routes"))
    for ns in dns:
        if netaddr.IPAddress(ns).version != version:
            raise _invalid(f"ip_version of nameserver {ns} does not match the subnet's ip_version {version}")
    out_routes = []
    for r in routes:
        dest, hop = netaddr.IPNetwork(r["destination"]), netaddr.IPAddress(r["nexthop"])
        if dest.version != version or hop.version != version:
            raise _invalid(f"Host route {r} does not match the ip_version {version}")
        out_routes.append({"destination": str(dest.cidr), "nexthop": str(hop)})
    return [ipam.ip_text(ns) for ns in dns], out_routes


RESOURCE = Resource(name="subnet", collection="subnets", attributes=ATTRIBUTES, handler=SubnetHandler(),
                    not_found=errors.SubnetNotFound, not_found_key="subnet_id", quota="subnet",
                    has_network=True, core=True)

QUOTAS = {"subnet": "quotas.quota_subnet"}
