"""Floating IPs: allocation, association (router_id computed), one FIP per
fixed IP, disassociation forms, port deletion, the L3 409s and tenancy
(plain HTTP; openstacksdk and the CLI in test_l3_cli.py)."""
import pytest

from tests.api.conftest import Http
from tests.api.l3_support import (add_interface, create_net, create_port, create_subnet,
                                  ext_network, next_cidr, ports_of, private_net, router)


@pytest.fixture
def topo(admin, member):
    """ext network, a tenant network behind a router with a gateway, a VM port."""
    ext, ext_sub = ext_network(admin)
    net, sub = private_net(member)
    r = router(member, external_gateway_info={"network_id": ext["id"]})
    add_interface(member, r["id"], subnet_id=sub["id"])
    # (no compute: owner, so that the tenant may delete it: neutron 29 policy)
    vm = create_port(member, net, device_id="vm-1")
    return {"ext": ext, "ext_sub": ext_sub, "net": net, "sub": sub, "router": r, "vm": vm}


def create_fip(client, ext, **attrs):
    r = client.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"], **attrs}})
    assert r.status == 201, r
    return r.body["floatingip"]


def test_allocate_associate_and_disassociate(admin, member, topo):
    ext, vm = topo["ext"], topo["vm"]
    fip = create_fip(member, ext)
    assert fip["port_id"] is None and fip["router_id"] is None and fip["fixed_ip_address"] is None
    assert fip["status"] == "DOWN" and fip["project_id"] == fip["tenant_id"] == member.project
    assert "subnet_id" not in fip
    pool = topo["ext_sub"]["allocation_pools"][0]
    assert pool["start"].rsplit(".", 1)[0] == fip["floating_ip_address"].rsplit(".", 1)[0]
    # the address is held by a network:floatingip port (admin sees it)
    [port] = ports_of(admin, device_id=fip["id"])
    assert port["device_owner"] == "network:floatingip" and port["project_id"] == ""
    assert port["fixed_ips"][0]["ip_address"] == fip["floating_ip_address"]
    x = admin.delete(f"/v2.0/ports/{port['id']}")
    assert x.status == 409 and x.error_type == "ServicePortInUse"
    # associate; router_id is computed
    x = member.put(f"/v2.0/floatingips/{fip['id']}", {"floatingip": {"port_id": vm["id"]}})
    assert x.status == 200, x
    got = x.body["floatingip"]
    assert got["port_id"] == vm["id"] and got["router_id"] == topo["router"]["id"]
    assert got["fixed_ip_address"] == vm["fixed_ips"][0]["ip_address"] and got["status"] == "ACTIVE"
    assert [f["id"] for f in member.get(f"/v2.0/floatingips?port_id={vm['id']}").body["floatingips"]] == [fip["id"]]
    # a description-only update keeps the association
    x = member.put(f"/v2.0/floatingips/{fip['id']}", {"floatingip": {"description": "web"}})
    assert x.body["floatingip"]["port_id"] == vm["id"] and x.body["floatingip"]["description"] == "web"
    # port_id null disassociates
    x = member.put(f"/v2.0/floatingips/{fip['id']}", {"floatingip": {"port_id": None}})
    got = x.body["floatingip"]
    assert (got["port_id"], got["fixed_ip_address"], got["router_id"], got["status"]) == (None, None, None, "DOWN")
    # re-associate, then an empty body disassociates too
    assert member.put(f"/v2.0/floatingips/{fip['id']}", {"floatingip": {"port_id": vm["id"]}}).status == 200
    x = member.put(f"/v2.0/floatingips/{fip['id']}", {"floatingip": {}})
    assert x.body["floatingip"]["port_id"] is None
    # delete: the floating port goes too
    assert member.delete(f"/v2.0/floatingips/{fip['id']}").status == 204
    assert ports_of(admin, device_id=fip["id"]) == []
    x = member.get(f"/v2.0/floatingips/{fip['id']}")
    assert x.status == 404 and x.error_type == "FloatingIPNotFound"


def test_one_fip_per_fixed_ip_and_port_deletion(member, topo):
    ext, vm = topo["ext"], topo["vm"]
    a = create_fip(member, ext, port_id=vm["id"])
    assert a["router_id"] == topo["router"]["id"]
    x = member.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"],
                                                          "port_id": vm["id"]}})
    assert x.status == 409 and x.error_type == "FloatingIPPortAlreadyAssociated", x
    b = create_fip(member, ext)
    x = member.put(f"/v2.0/floatingips/{b['id']}", {"floatingip": {"port_id": vm["id"]}})
    assert x.status == 409 and x.error_type == "FloatingIPPortAlreadyAssociated"
    assert member.get(f"/v2.0/floatingips/{b['id']}").body["floatingip"]["port_id"] is None
    # the FIP's fixed IP cannot be taken off the port
    other_ip = topo["sub"]["allocation_pools"][0]["end"]
    x = member.put(f"/v2.0/ports/{vm['id']}", {"port": {"fixed_ips": [{"ip_address": other_ip}]}})
    assert x.status == 400 and x.error_type == "BadRequest"
    # the interface and the gateway the FIP needs stay
    r = topo["router"]
    x = member.put(f"/v2.0/routers/{r['id']}/remove_router_interface", {"subnet_id": topo["sub"]["id"]})
    assert x.status == 409 and x.error_type == "RouterInterfaceInUseByFloatingIP"
    x = member.put(f"/v2.0/routers/{r['id']}", {"router": {"external_gateway_info": None}})
    assert x.status == 409 and x.error_type == "RouterExternalGatewayInUseByFloatingIp"
    # deleting the port disassociates
    assert member.delete(f"/v2.0/ports/{vm['id']}").status == 204
    got = member.get(f"/v2.0/floatingips/{a['id']}").body["floatingip"]
    assert (got["port_id"], got["fixed_ip_address"], got["router_id"]) == (None, None, None)
    # now the interface and the gateway can go
    assert member.put(f"/v2.0/routers/{r['id']}/remove_router_interface",
                      {"subnet_id": topo["sub"]["id"]}).status == 200
    assert member.put(f"/v2.0/routers/{r['id']}", {"router": {"external_gateway_info": None}}).status == 200


def test_association_errors(admin, member, topo):
    ext, net, vm = topo["ext"], topo["net"], topo["vm"]
    fip = create_fip(member, ext)
    url = f"/v2.0/floatingips/{fip['id']}"
    x = member.put(url, {"floatingip": {"fixed_ip_address": "10.0.0.3"}})
    assert x.status == 400 and x.message == (
        "Bad floatingip request: fixed_ip_address cannot be specified without a port_id.")
    x = member.put(url, {"floatingip": {"port_id": vm["id"], "fixed_ip_address": "10.9.9.9"}})
    assert x.status == 400 and x.error_type == "BadRequest"
    # a subnet no router connects to the external network: 404
    lonely_net, lonely_sub = private_net(member)
    lonely = create_port(member, lonely_net)
    x = member.put(url, {"floatingip": {"port_id": lonely["id"]}})
    assert x.status == 404 and x.error_type == "ExternalGatewayForFloatingIPNotFound"
    assert x.message == (f"External network {ext['id']} is not reachable from subnet "
                         f"{lonely_sub['id']}.  Therefore, cannot associate Port {lonely['id']} "
                         f"with a Floating IP.")
    # two IPv4 addresses need fixed_ip_address
    second = create_subnet(member, net, next_cidr())
    add_interface(member, topo["router"]["id"], subnet_id=second["id"])
    two = create_port(member, net, fixed_ips=[{"subnet_id": topo["sub"]["id"]},
                                              {"subnet_id": second["id"]}])
    x = member.put(url, {"floatingip": {"port_id": two["id"]}})
    assert x.status == 400 and "has multiple fixed IPv4 addresses" in x.message
    chosen = two["fixed_ips"][1]["ip_address"]
    x = member.put(url, {"floatingip": {"port_id": two["id"], "fixed_ip_address": chosen}})
    assert x.status == 200 and x.body["floatingip"]["fixed_ip_address"] == chosen
    # a router port cannot get a floating IP
    rport = ports_of(member, device_owner="network:router_interface", network_id=net["id"])[0]
    x = member.put(url, {"floatingip": {"port_id": rport["id"]}})
    assert x.status == 400 and x.error_type == "BadRequest"
    # unknown port
    x = member.put(url, {"floatingip": {"port_id": "00000000-0000-4000-8000-000000000000"}})
    assert x.status == 404 and x.error_type == "PortNotFound"
    # read-only and unknown attributes
    assert member.put(url, {"floatingip": {"router_id": topo["router"]["id"]}}).status == 400
    assert member.put(url, {"floatingip": {"floating_network_id": ext["id"]}}).status == 400


def test_create_errors_and_requested_address(admin, member):
    ext, ext_sub = ext_network(admin)
    net, _ = private_net(member)
    x = member.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": net["id"]}})
    assert x.status == 400 and x.message == (
        f"Bad floatingip request: Network {net['id']} is not a valid external network.")
    x = member.post("/v2.0/floatingips", {"floatingip": {}})
    assert x.status == 400 and "floating_network_id" in x.message
    missing = "00000000-0000-4000-8000-000000000000"
    x = member.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": missing}})
    assert x.status == 404 and x.error_type == "NetworkNotFound"
    empty_ext = create_net(admin, **{"router:external": True})
    x = member.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": empty_ext["id"]}})
    assert x.status == 400 and "does not contain any IPv4 subnet" in x.message
    # a chosen address: admin (or manager) only
    ip = ext_sub["allocation_pools"][0]["end"]
    x = member.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"],
                                                          "floating_ip_address": ip}})
    assert x.status == 403 and x.error_type == "PolicyNotAuthorized"
    f = create_fip(admin, ext, floating_ip_address=ip)
    assert f["floating_ip_address"] == ip
    x = admin.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"],
                                                         "floating_ip_address": ip}})
    assert x.status == 409 and x.error_type == "IpAddressAlreadyAllocated"
    x = admin.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"],
                                                         "floating_ip_address": "192.0.2.1"}})
    assert x.status == 400 and x.error_type == "InvalidIpForNetwork"
    # by subnet
    g = create_fip(member, ext, subnet_id=ext_sub["id"])
    assert g["floating_ip_address"] != ip
    # failed creates left no port behind
    assert len(ports_of(admin, network_id=ext["id"], device_owner="network:floatingip")) == 2


def test_exhausted_external_network(admin, member):
    ext, ext_sub = ext_network(admin, cidr=next_cidr("172")[:-3] + "/30")   # one usable address
    create_fip(member, ext)
    x = member.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"]}})
    assert x.status == 400 and x.error_type == "ExternalIpAddressExhausted"
    assert len(ports_of(admin, network_id=ext["id"])) == 1


def test_tenancy(admin, member, other_member, topo):
    ext, vm = topo["ext"], topo["vm"]
    theirs = create_fip(other_member, ext)
    # invisible to other projects
    x = member.get(f"/v2.0/floatingips/{theirs['id']}")
    assert x.status == 404 and x.error_type == "FloatingIPNotFound"
    assert member.delete(f"/v2.0/floatingips/{theirs['id']}").status == 404
    assert theirs["id"] not in {f["id"] for f in member.get("/v2.0/floatingips").body["floatingips"]}
    # a tenant cannot point its FIP at another tenant's port
    x = other_member.put(f"/v2.0/floatingips/{theirs['id']}", {"floatingip": {"port_id": vm["id"]}})
    assert x.status == 404 and x.error_type == "PortNotFound"
    # ... even one it can see (it owns the network), but an admin can
    shared_net = create_net(other_member)
    shared_sub = create_subnet(other_member, shared_net, next_cidr())
    add_interface(admin, topo["router"]["id"], subnet_id=shared_sub["id"])
    foreign = create_port(admin, shared_net, project_id=member.project)
    x = other_member.put(f"/v2.0/floatingips/{theirs['id']}", {"floatingip": {"port_id": foreign["id"]}})
    assert x.status == 400 and "owned by a different project" in x.message
    x = admin.put(f"/v2.0/floatingips/{theirs['id']}", {"floatingip": {"port_id": vm["id"]}})
    assert x.status == 200 and x.body["floatingip"]["router_id"] == topo["router"]["id"]
    # the owner of the port cannot delete it while another project's FIP uses it
    x = member.delete(f"/v2.0/ports/{vm['id']}")
    assert x.status == 409 and x.error_type == "FipAssociated"
    assert admin.delete(f"/v2.0/ports/{vm['id']}").status == 204
    assert other_member.get(f"/v2.0/floatingips/{theirs['id']}").body["floatingip"]["port_id"] is None
    reader = Http(member.url, project=member.project, roles="reader")
    x = reader.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"]}})
    assert x.status == 403
