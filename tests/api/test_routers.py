"""Routers: CRUD, the external gateway, add/remove_router_interface by subnet
and by port with every error, the cross-resource 409s and tenancy (plain
HTTP with noauth headers; the CLI workflow is in test_l3_cli.py)."""
from tests.api.l3_support import (add_interface, create_net, create_port, create_subnet,
                                  ext_network, next_cidr, ports_of, private_net, router)

INTERFACE_KEYS = {"id", "tenant_id", "project_id", "port_id", "network_id", "subnet_id",
                  "subnet_ids"}


def test_router_defaults_crud_and_list(member, other_member):
    r = router(member, name="r1")
    assert r["external_gateway_info"] is None and r["status"] == "ACTIVE"
    assert r["admin_state_up"] is True and r["project_id"] == r["tenant_id"] == member.project
    assert r["revision_number"] == 0 and r["description"] == "" and r["tags"] == []
    u = member.put(f"/v2.0/routers/{r['id']}", {"router": {"name": "r2", "admin_state_up": False}})
    assert u.status == 200 and u.body["router"]["name"] == "r2"
    assert u.body["router"]["revision_number"] == 1
    assert [x["id"] for x in member.get("/v2.0/routers?name=r2").body["routers"]] == [r["id"]]
    # another project sees nothing of it
    assert other_member.get("/v2.0/routers").body["routers"] == []
    g = other_member.get(f"/v2.0/routers/{r['id']}")
    assert g.status == 404 and g.error_type == "RouterNotFound"
    assert g.message == f"Router {r['id']} could not be found"
    assert other_member.delete(f"/v2.0/routers/{r['id']}").status == 404
    assert member.put(f"/v2.0/routers/{r['id']}", {"router": {"status": "DOWN"}}).status == 400
    assert member.post("/v2.0/routers", {"router": {"bogus": 1}}).status == 400
    assert member.delete(f"/v2.0/routers/{r['id']}").status == 204
    assert member.get(f"/v2.0/routers/{r['id']}").status == 404


def test_gateway_set_change_and_clear(admin, member):
    ext, ext_sub = ext_network(admin)
    r = router(member, external_gateway_info={"network_id": ext["id"]})
    gw = r["external_gateway_info"]
    assert gw["network_id"] == ext["id"] and gw["enable_snat"] is True
    [fixed] = gw["external_fixed_ips"]
    assert fixed["subnet_id"] == ext_sub["id"] and fixed["ip_address"] != ext_sub["gateway_ip"]
    # the gateway port: admin sees it, the tenant does not
    [port] = ports_of(admin, device_id=r["id"])
    assert port["device_owner"] == "network:router_gateway" and port["project_id"] == ""
    assert port["fixed_ips"] == [fixed] and port["network_id"] == ext["id"]
    assert ports_of(member, device_id=r["id"]) == []
    # enable_snat and external_fixed_ips are admin-only
    for info in ({"network_id": ext["id"], "enable_snat": False},
                 {"network_id": ext["id"], "external_fixed_ips": [{"subnet_id": ext_sub["id"]}]}):
        x = member.put(f"/v2.0/routers/{r['id']}", {"router": {"external_gateway_info": info}})
        assert x.status == 403 and x.error_type == "PolicyNotAuthorized", x
    x = admin.put(f"/v2.0/routers/{r['id']}", {"router": {"external_gateway_info": {
        "network_id": ext["id"], "enable_snat": False}}})
    assert x.status == 200 and x.body["router"]["external_gateway_info"]["enable_snat"] is False
    assert x.body["router"]["external_gateway_info"]["external_fixed_ips"] == [fixed]
    # a chosen address (admin); the subnet's gateway address is refused
    ip = ext_sub["allocation_pools"][0]["end"]
    x = admin.put(f"/v2.0/routers/{r['id']}", {"router": {"external_gateway_info": {
        "network_id": ext["id"], "external_fixed_ips": [{"ip_address": ip}]}}})
    assert x.status == 200, x
    assert x.body["router"]["external_gateway_info"]["external_fixed_ips"] == [
        {"subnet_id": ext_sub["id"], "ip_address": ip}]
    x = admin.put(f"/v2.0/routers/{r['id']}", {"router": {"external_gateway_info": {
        "network_id": ext["id"], "external_fixed_ips": [{"ip_address": ext_sub["gateway_ip"]}]}}})
    assert x.status == 400 and x.error_type == "BadRequest"
    # move to another external network: the old port goes
    ext2, _ = ext_network(admin)
    x = member.put(f"/v2.0/routers/{r['id']}", {"router": {"external_gateway_info": {
        "network_id": ext2["id"]}}})
    assert x.status == 200 and x.body["router"]["external_gateway_info"]["network_id"] == ext2["id"]
    [port2] = ports_of(admin, device_id=r["id"])
    assert port2["network_id"] == ext2["id"] and port2["id"] != port["id"]
    # the external network cannot stop being external while a gateway uses it
    x = admin.put(f"/v2.0/networks/{ext2['id']}", {"network": {"router:external": False}})
    assert x.status == 409 and x.error_type == "ExternalNetworkInUse"
    # clearing with {} or null removes the port
    for clear in ({}, None):
        x = member.put(f"/v2.0/routers/{r['id']}", {"router": {"external_gateway_info": clear}})
        assert x.status == 200 and x.body["router"]["external_gateway_info"] is None
        assert ports_of(admin, device_id=r["id"]) == []
    assert member.delete(f"/v2.0/routers/{r['id']}").status == 204


def test_gateway_errors(admin, member):
    net, _ = private_net(member)
    x = member.post("/v2.0/routers", {"router": {"external_gateway_info": {"network_id": net["id"]}}})
    assert x.status == 400 and x.error_type == "BadRequest"
    assert x.message == f"Bad router request: Network {net['id']} is not an external network."
    missing = "00000000-0000-4000-8000-000000000000"
    x = member.post("/v2.0/routers", {"router": {"external_gateway_info": {"network_id": missing}}})
    assert x.status == 404 and x.error_type == "NetworkNotFound"
    for bad in ({"enable_snat": True}, {"network_id": "nope"}, "x",
                {"network_id": net["id"], "foo": 1}):
        x = member.post("/v2.0/routers", {"router": {"external_gateway_info": bad}})
        assert x.status == 400, (bad, x)
    # nothing was left behind by the failures
    assert member.get("/v2.0/routers").body["routers"] == []
    # a gateway deleted with its router
    ext, _ = ext_network(admin)
    r = router(member, external_gateway_info={"network_id": ext["id"]})
    assert member.delete(f"/v2.0/routers/{r['id']}").status == 204
    assert ports_of(admin, device_id=r["id"]) == []


def test_interface_by_subnet_and_the_409s(member):
    net, sub = private_net(member)
    r = router(member)
    info = add_interface(member, r["id"], subnet_id=sub["id"])
    assert set(info) == INTERFACE_KEYS
    assert info["id"] == r["id"] and info["subnet_id"] == sub["id"]
    assert info["subnet_ids"] == [sub["id"]] and info["network_id"] == net["id"]
    assert info["project_id"] == member.project
    port = member.get(f"/v2.0/ports/{info['port_id']}").body["port"]
    assert port["device_owner"] == "network:router_interface" and port["device_id"] == r["id"]
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": sub["gateway_ip"]}]
    assert port["security_groups"] == []
    # the interface holds the router, subnet, network and port in place
    x = member.delete(f"/v2.0/routers/{r['id']}")
    assert x.status == 409 and x.error_type == "RouterInUse" and info["port_id"] in x.message
    x = member.delete(f"/v2.0/ports/{info['port_id']}")
    assert x.status == 409 and x.error_type == "ServicePortInUse"
    assert x.message == (f"Port {info['port_id']} cannot be deleted directly via the port API: "
                         f"has device owner network:router_interface.")
    x = member.delete(f"/v2.0/subnets/{sub['id']}")
    assert x.status == 409 and x.error_type == "SubnetInUse"
    x = member.delete(f"/v2.0/networks/{net['id']}")
    assert x.status == 409 and x.error_type == "NetworkInUse"
    # remove by subnet
    out = member.put(f"/v2.0/routers/{r['id']}/remove_router_interface", {"subnet_id": sub["id"]})
    assert out.status == 200 and set(out.body) == INTERFACE_KEYS
    assert out.body["port_id"] == info["port_id"]
    assert member.get(f"/v2.0/ports/{info['port_id']}").status == 404
    x = member.put(f"/v2.0/routers/{r['id']}/remove_router_interface", {"subnet_id": sub["id"]})
    assert x.status == 404 and x.error_type == "RouterInterfaceNotFoundForSubnet"
    assert x.message == f"Router {r['id']} has no interface on subnet {sub['id']}"
    assert member.delete(f"/v2.0/routers/{r['id']}").status == 204
    assert member.delete(f"/v2.0/networks/{net['id']}").status == 204


def test_add_interface_errors_leave_nothing_behind(member):
    net, sub = private_net(member, cidr="10.200.0.0/24")
    r = router(member)
    add_interface(member, r["id"], subnet_id=sub["id"])
    _, overlapping = private_net(member, cidr="10.200.0.0/16")
    no_gw_net = create_net(member)
    no_gw = create_subnet(member, no_gw_net, next_cidr(), gateway_ip=None)
    ports_before = len(member.get("/v2.0/ports").body["ports"])
    url = f"/v2.0/routers/{r['id']}/add_router_interface"
    cases = [
        ({}, "Either subnet_id or port_id must be specified"),
        ({"subnet_id": sub["id"], "port_id": sub["id"]}, "Cannot specify both subnet-id and port-id"),
        ({"subnet_id": "not-a-uuid"}, "'not-a-uuid' is not a valid UUID"),
        ({"subnet_id": no_gw["id"]}, "Subnet for router interface must have a gateway IP"),
        ({"subnet_id": sub["id"]}, f"Router already has a port on subnet {sub['id']}"),
        ({"subnet_id": overlapping["id"]}, f"Cidr 10.200.0.0/16 of subnet {overlapping['id']} "
                                           f"overlaps with cidr 10.200.0.0/24 of subnet {sub['id']}"),
    ]
    for body, msg in cases:
        x = member.put(url, body)
        assert x.status == 400 and x.error_type == "BadRequest", (body, x)
        assert x.message == f"Bad router request: {msg}.", x
    missing = "00000000-0000-4000-8000-000000000000"
    x = member.put(url, {"subnet_id": missing})
    assert x.status == 404 and x.error_type == "SubnetNotFound"
    x = member.put(url, {"port_id": missing})
    assert x.status == 404 and x.error_type == "PortNotFound"
    x = member.put(f"/v2.0/routers/{missing}/add_router_interface", {"subnet_id": sub["id"]})
    assert x.status == 404 and x.error_type == "RouterNotFound"
    # the gateway address already taken by another router's interface: 409, no stray port
    r2 = router(member)
    x = member.put(f"/v2.0/routers/{r2['id']}/add_router_interface", {"subnet_id": sub["id"]})
    assert x.status == 409 and x.error_type == "IpAddressAlreadyAllocated", x
    assert len(member.get("/v2.0/ports").body["ports"]) == ports_before
    assert member.get(f"/v2.0/ports?device_id={r2['id']}").body["ports"] == []
    assert member.put(f"/v2.0/routers/{r['id']}", {"router": {}}).status == 200


def test_interface_by_port(member):
    net, sub = private_net(member)
    r = router(member)
    p = create_port(member, net, fixed_ips=[{"subnet_id": sub["id"], "ip_address": sub["gateway_ip"]}])
    info = add_interface(member, r["id"], port_id=p["id"])
    assert info["port_id"] == p["id"] and info["subnet_ids"] == [sub["id"]]
    port = member.get(f"/v2.0/ports/{p['id']}").body["port"]
    assert port["device_id"] == r["id"] and port["device_owner"] == "network:router_interface"
    assert port["fixed_ips"] == p["fixed_ips"]
    # an attached port cannot go to a second router
    r2 = router(member)
    x = member.put(f"/v2.0/routers/{r2['id']}/add_router_interface", {"port_id": p["id"]})
    assert x.status == 409 and x.error_type == "PortInUse"
    # a port with a device, and a port without addresses
    used = create_port(member, net, device_id="vm-1")
    x = member.put(f"/v2.0/routers/{r2['id']}/add_router_interface", {"port_id": used["id"]})
    assert x.status == 409 and x.error_type == "PortInUse"
    bare = create_port(member, net, fixed_ips=[])
    x = member.put(f"/v2.0/routers/{r2['id']}/add_router_interface", {"port_id": bare["id"]})
    assert x.status == 400 and x.message == "Bad router request: Router port must have at least one fixed IP."
    # remove: wrong router, mismatched subnet, then by port (the port is deleted)
    url = f"/v2.0/routers/{r['id']}/remove_router_interface"
    x = member.put(f"/v2.0/routers/{r2['id']}/remove_router_interface", {"port_id": p["id"]})
    assert x.status == 404 and x.error_type == "RouterInterfaceNotFound"
    assert x.message == f"Router {r2['id']} does not have an interface with id {p['id']}"
    _, other_sub = private_net(member)
    x = member.put(url, {"port_id": p["id"], "subnet_id": other_sub["id"]})
    assert x.status == 400 and x.error_type == "SubnetMismatchForPort"
    x = member.put(url, {"port_id": p["id"]})
    assert x.status == 200 and x.body["port_id"] == p["id"] and x.body["subnet_ids"] == [sub["id"]]
    assert member.get(f"/v2.0/ports/{p['id']}").status == 404


def test_two_subnets_on_one_router_port_multiple_ipv4_refused(member):
    net = create_net(member)
    a = create_subnet(member, net, next_cidr())
    b = create_subnet(member, net, next_cidr())
    p = create_port(member, net, fixed_ips=[{"subnet_id": a["id"]}, {"subnet_id": b["id"]}])
    r = router(member)
    x = member.put(f"/v2.0/routers/{r['id']}/add_router_interface", {"port_id": p["id"]})
    assert x.status == 400 and x.message == "Bad router request: Cannot have multiple IPv4 subnets on router port."


def test_tenancy_of_interfaces(admin, member, other_member):
    mine_net, mine = private_net(member)
    theirs_net, theirs = private_net(other_member)
    r = router(member)
    url = f"/v2.0/routers/{r['id']}/add_router_interface"
    # another project's private subnet or port is invisible: 404
    x = member.put(url, {"subnet_id": theirs["id"]})
    assert x.status == 404 and x.error_type == "SubnetNotFound"
    their_port = create_port(other_member, theirs_net)
    x = member.put(url, {"port_id": their_port["id"]})
    assert x.status == 404 and x.error_type == "PortNotFound"
    # another project's router is invisible: 404
    x = other_member.put(url, {"subnet_id": theirs["id"]})
    assert x.status == 404 and x.error_type == "RouterNotFound"
    # a visible (shared) subnet the caller does not own is refused: 400
    shared_net = create_net(admin, shared=True)
    shared = create_subnet(admin, shared_net, next_cidr())
    x = member.put(url, {"subnet_id": shared["id"]})
    assert x.status == 400 and x.message == (
        f"Bad router request: Cannot add interface to router because subnet {shared['id']} is "
        f"not owned by project making the request.")
    # admins can attach anyone's subnet; the port belongs to the router's project
    info = add_interface(admin, r["id"], subnet_id=theirs["id"])
    assert info["project_id"] == member.project
    info = add_interface(admin, r["id"], subnet_id=mine["id"])
    x = other_member.put(f"/v2.0/routers/{r['id']}/remove_router_interface", {"subnet_id": mine["id"]})
    assert x.status == 404 and x.error_type == "RouterNotFound"
    # a reader cannot change the router
    from tests.api.conftest import Http
    reader = Http(member.url, project=member.project, roles="reader")
    x = reader.put(f"/v2.0/routers/{r['id']}/remove_router_interface", {"subnet_id": mine["id"]})
    assert x.status == 403 and x.error_type == "PolicyNotAuthorized"


def test_changes_are_logged_for_the_data_path(api_controller, admin, member):
    """Every L3/SG commit adds ChangeLog rows (what other controller processes
    and the reconciler follow), in the same transaction as the change."""
    import os
    import sqlite3

    db = sqlite3.connect(os.path.join(api_controller.state_dir, "quantum.db"))

    def logged_since(rev):
        return {(k, i) for k, i in db.execute(
            "SELECT kind, resource_id FROM changelog WHERE revision > ?", (rev,))}

    def head():
        return db.execute("SELECT COALESCE(MAX(revision), 0) FROM changelog").fetchone()[0]

    try:
        ext, _ = ext_network(admin)
        net, sub = private_net(member)
        rev = head()
        r = router(member, external_gateway_info={"network_id": ext["id"]})
        [gw] = ports_of(admin, device_id=r["id"])
        assert {("router", r["id"]), ("port", gw["id"])} <= logged_since(rev)
        rev = head()
        info = add_interface(member, r["id"], subnet_id=sub["id"])
        assert {("router", r["id"]), ("port", info["port_id"])} <= logged_since(rev)
        vm = create_port(member, net)
        rev = head()
        fip = member.post("/v2.0/floatingips", {"floatingip": {
            "floating_network_id": ext["id"], "port_id": vm["id"]}}).body["floatingip"]
        assert ("floatingip", fip["id"]) in logged_since(rev)
        rev = head()
        [sg] = member.get("/v2.0/security-groups").body["security_groups"]
        member.post("/v2.0/security-group-rules", {"security_group_rule": {
            "security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22}})
        assert ("security_group", sg["id"]) in logged_since(rev)
        # a failed call logs nothing
        rev = head()
        x = member.put(f"/v2.0/routers/{r['id']}/add_router_interface", {"subnet_id": sub["id"]})
        assert x.status == 400 and logged_since(rev) == set()
    finally:
        db.close()


def test_ipv6_interface_takes_the_subnet_gateway(member):
    net = create_net(member)
    v6 = create_subnet(member, net, "2001:db8:77::/64")
    r = router(member)
    info = add_interface(member, r["id"], subnet_id=v6["id"])
    port = member.get(f"/v2.0/ports/{info['port_id']}").body["port"]
    assert port["fixed_ips"] == [{"subnet_id": v6["id"], "ip_address": "2001:db8:77::"}]
    x = member.put(f"/v2.0/routers/{r['id']}/remove_router_interface", {"port_id": info["port_id"]})
    assert x.status == 200
