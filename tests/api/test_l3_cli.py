"""The seed workflow with real, unchanged clients: the `openstack` CLI
(`--os-auth-type none`, i.e. neutron's noauth admin `fake_project_id`) and
openstacksdk. net1/net2 with subnets, an external network without DHCP, a
router with a gateway and both interfaces, a floating IP on a VM port."""
from tests.api.conftest import Http
from tests.api.l3_support import osc, sdk


def test_seed_workflow_with_the_cli(api_controller):
    url = api_controller.url
    http = Http(url)         # no identity headers: the same caller as the CLI
    ext = http.post("/v2.0/networks", {"network": {"name": "public", "router:external": True}}).body["network"]
    http.post("/v2.0/subnets", {"subnet": {"network_id": ext["id"], "cidr": "172.24.4.0/24",
                                           "ip_version": 4, "enable_dhcp": False, "name": "public-sub"}})
    subs = {}
    for i in (1, 2):
        net = http.post("/v2.0/networks", {"network": {"name": f"net{i}"}}).body["network"]
        subs[i] = http.post("/v2.0/subnets", {"subnet": {"network_id": net["id"], "name": f"sub{i}",
                                                         "cidr": f"10.{i}.0.0/24", "ip_version": 4}}).body["subnet"]
    vm = http.post("/v2.0/ports", {"port": {"network_id": subs[1]["network_id"], "name": "vm1",
                                            "device_owner": "compute:nova"}}).body["port"]

    r = osc(url, "router", "create", "r1", "-f", "json")
    assert r["name"] == "r1" and r["external_gateway_info"] is None
    osc(url, "router", "set", "r1", "--external-gateway", "public")
    osc(url, "router", "add", "subnet", "r1", "sub1")
    osc(url, "router", "add", "subnet", "r1", "sub2")
    shown = http.get(f"/v2.0/routers/{r['id']}").body["router"]
    assert shown["external_gateway_info"]["network_id"] == ext["id"]
    owners = sorted((p["device_owner"], p["fixed_ips"][0]["ip_address"])
                    for p in http.get(f"/v2.0/ports?device_id={r['id']}").body["ports"])
    assert owners[:2] == [("network:router_gateway", owners[0][1]),
                          ("network:router_interface", "10.1.0.1")]
    assert owners[2] == ("network:router_interface", "10.2.0.1")

    fip = osc(url, "floating", "ip", "create", "public", "-f", "json")
    assert fip["floating_ip_address"].startswith("172.24.4.") and fip["port_id"] is None
    osc(url, "floating", "ip", "set", "--port", vm["id"], fip["floating_ip_address"])
    got = http.get(f"/v2.0/floatingips/{fip['id']}").body["floatingip"]
    assert got["port_id"] == vm["id"] and got["router_id"] == r["id"]
    assert got["fixed_ip_address"] == vm["fixed_ips"][0]["ip_address"]
    osc(url, "floating", "ip", "unset", "--port", fip["floating_ip_address"])
    assert http.get(f"/v2.0/floatingips/{fip['id']}").body["floatingip"]["port_id"] is None
    osc(url, "router", "remove", "subnet", "r1", "sub2")
    assert len(http.get(f"/v2.0/ports?device_id={r['id']}").body["ports"]) == 2

    sg = osc(url, "security", "group", "create", "web", "-f", "json")
    rule = osc(url, "security", "group", "rule", "create", "web", "--protocol", "tcp",
               "--dst-port", "80", "-f", "json")
    assert rule["security_group_id"] == sg["id"] and rule["protocol"] == "tcp"
    assert (rule["port_range_min"], rule["port_range_max"]) == (80, 80)
    assert rule["direction"] == "ingress"


def test_sdk_router_fip_and_security_groups(api_controller):
    conn = sdk(api_controller.url)
    ext = conn.network.create_network(name="sdk-ext", is_router_external=True)
    conn.network.create_subnet(network_id=ext.id, cidr="198.51.100.0/24", ip_version=4,
                               is_dhcp_enabled=False)
    net = conn.network.create_network(name="sdk-net")
    sub = conn.network.create_subnet(network_id=net.id, cidr="10.50.0.0/24", ip_version=4)
    r = conn.network.create_router(name="sdk-r", external_gateway_info={"network_id": ext.id})
    assert r.external_gateway_info["enable_snat"] is True
    info = conn.network.add_interface_to_router(r, subnet_id=sub.id)
    assert info["subnet_id"] == sub.id and info["id"] == r.id
    port = conn.network.create_port(network_id=net.id, name="sdk-vm")
    fip = conn.network.create_ip(floating_network_id=ext.id, port_id=port.id)
    assert fip.router_id == r.id and fip.port_id == port.id and fip.status == "ACTIVE"
    fip = conn.network.update_ip(fip, port_id=None)
    assert fip.port_id is None and fip.router_id is None
    conn.network.delete_ip(fip)
    conn.network.remove_interface_from_router(r, subnet_id=sub.id)
    conn.network.delete_router(r)
    assert conn.network.find_router("sdk-r") is None
    sg = conn.network.create_security_group(name="sdk-sg")
    rule = conn.network.create_security_group_rule(security_group_id=sg.id, direction="ingress",
                                                   protocol="icmp", ether_type="IPv4")
    assert rule.protocol == "icmp"
    assert {g.name for g in conn.network.security_groups()} >= {"default", "sdk-sg"}
    assert conn.network.get_port(port.id).security_group_ids == [
        conn.network.find_security_group("default").id]
