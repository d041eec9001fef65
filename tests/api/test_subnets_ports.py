"""Subnets, IPAM and ports: gateways, pools, DNS, host routes, fixed IP
requests, IPv6, MACs, the DHCP port and the 409s."""
import netaddr

from tests.api.test_networks import create_net


def create_subnet(client, net, cidr, **attrs):
    version = 6 if ":" in cidr else 4
    r = client.post("/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": cidr,
                                                 "ip_version": version, **attrs}})
    assert r.status == 201, r
    return r.body["subnet"]


def create_port(client, net, **attrs):
    r = client.post("/v2.0/ports", {"port": {"network_id": net["id"], **attrs}})
    assert r.status == 201, r
    return r.body["port"]


def dhcp_ports(client, net):
    return client.get(f"/v2.0/ports?network_id={net['id']}&device_owner=network:dhcp").body["ports"]


def test_subnet_defaults_and_dhcp_port(member):
    net = create_net(member)
    sub = create_subnet(member, net, "10.0.0.5/24")
    assert sub["cidr"] == "10.0.0.0/24" and sub["gateway_ip"] == "10.0.0.1"
    assert sub["allocation_pools"] == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert sub["enable_dhcp"] is True and sub["dns_nameservers"] == [] and sub["host_routes"] == []
    assert sub["project_id"] == sub["tenant_id"] == member.project and "shared" not in sub
    assert member.get(f"/v2.0/networks/{net['id']}").body["network"]["subnets"] == [sub["id"]]
    [dhcp] = dhcp_ports(member, net)
    assert dhcp["device_id"] == f"dhcp{net['id']}" and dhcp["project_id"] == member.project
    assert dhcp["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.0.0.2"}]
    assert dhcp["mac_address"].startswith("fa:16:3e:")
    port = create_port(member, net)
    assert port["status"] == "DOWN" and port["mac_address"].startswith("fa:16:3e:")
    [ip] = port["fixed_ips"]
    assert ip["subnet_id"] == sub["id"] and ip["ip_address"] not in ("10.0.0.1", "10.0.0.2")
    # the network cannot go while a user port remains; the DHCP port goes with it
    r = member.delete(f"/v2.0/networks/{net['id']}")
    assert r.status == 409 and r.error_type == "NetworkInUse" and port["id"] in r.message
    r = member.delete(f"/v2.0/subnets/{sub['id']}")
    assert r.status == 409 and r.error_type == "SubnetInUse"
    assert member.delete(f"/v2.0/ports/{port['id']}").status == 204
    assert member.delete(f"/v2.0/networks/{net['id']}").status == 204
    assert member.get(f"/v2.0/subnets/{sub['id']}").status == 404
    assert member.get(f"/v2.0/ports/{dhcp['id']}").status == 404


def test_dhcp_port_follows_enable_dhcp_and_subnets(member):
    net = create_net(member)
    a = create_subnet(member, net, "10.1.0.0/24", enable_dhcp=False)
    assert dhcp_ports(member, net) == []
    b = create_subnet(member, net, "10.2.0.0/24", gateway_ip="10.2.0.254")
    [dhcp] = dhcp_ports(member, net)
    assert dhcp["fixed_ips"] == [{"subnet_id": b["id"], "ip_address": "10.2.0.1"}]
    assert member.put(f"/v2.0/subnets/{a['id']}", {"subnet": {"enable_dhcp": True}}).status == 200
    [dhcp2] = dhcp_ports(member, net)
    assert dhcp2["id"] == dhcp["id"]
    assert sorted(f["ip_address"] for f in dhcp2["fixed_ips"]) == ["10.1.0.2", "10.2.0.1"]
    assert member.put(f"/v2.0/subnets/{b['id']}", {"subnet": {"enable_dhcp": False}}).status == 200
    assert [f["ip_address"] for f in dhcp_ports(member, net)[0]["fixed_ips"]] == ["10.1.0.2"]
    assert member.delete(f"/v2.0/subnets/{a['id']}").status == 204
    assert dhcp_ports(member, net) == []


def test_gateway_and_pool_rules(member):
    net = create_net(member)
    s = create_subnet(member, net, "10.3.0.0/24", gateway_ip=None, enable_dhcp=False)
    assert s["gateway_ip"] is None and s["allocation_pools"] == [{"start": "10.3.0.1", "end": "10.3.0.254"}]
    s = create_subnet(member, net, "10.4.0.0/24", gateway_ip="10.4.0.254", enable_dhcp=False)
    assert s["allocation_pools"] == [{"start": "10.4.0.1", "end": "10.4.0.253"}]
    s = create_subnet(member, net, "10.5.0.0/24", enable_dhcp=False,
                      allocation_pools=[{"start": "10.5.0.100", "end": "10.5.0.110"},
                                        {"start": "10.5.0.10", "end": "10.5.0.20"}],
                      dns_nameservers=["8.8.8.8", "1.1.1.1"],
                      host_routes=[{"destination": "192.168.0.0/16", "nexthop": "10.5.0.254"}])
    assert s["dns_nameservers"] == ["8.8.8.8", "1.1.1.1"]
    assert s["host_routes"] == [{"destination": "192.168.0.0/16", "nexthop": "10.5.0.254"}]
    cases = [
        ("10.3.0.0/25", {}, 400, "InvalidInput"),                         # overlaps
        ("10.6.0.0/24", {"allocation_pools": [{"start": "10.6.0.0", "end": "10.6.0.9"}]}, 400,
         "OutOfBoundsAllocationPool"),
        ("10.6.0.0/24", {"allocation_pools": [{"start": "10.6.1.1", "end": "10.6.1.9"}]}, 400,
         "OutOfBoundsAllocationPool"),
        ("10.6.0.0/24", {"allocation_pools": [{"start": "10.6.0.9", "end": "10.6.0.2"}]}, 400,
         "InvalidAllocationPool"),
        ("10.6.0.0/24", {"allocation_pools": [{"start": "10.6.0.2", "end": "10.6.0.9"},
                                              {"start": "10.6.0.5", "end": "10.6.0.20"}]}, 409,
         "OverlappingAllocationPools"),
        ("10.6.0.0/24", {"gateway_ip": "10.6.0.5",
                         "allocation_pools": [{"start": "10.6.0.2", "end": "10.6.0.9"}]}, 409,
         "GatewayConflictWithAllocationPools"),
        ("10.6.0.0/24", {"gateway_ip": "10.6.0.255"}, 400, "InvalidInput"),
        ("10.6.0.0/24", {"gateway_ip": "2001:db8::1"}, 400, "InvalidInput"),
        ("10.6.0.0/24", {"dns_nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5",
                                             "1.1.1.6"]}, 400, "DNSNameServersExhausted"),
        ("10.6.0.0/24", {"dns_nameservers": ["1.1.1.1", "1.1.1.1"]}, 400, "HTTPBadRequest"),
        ("10.6.0.0/30", {"allocation_pools": [{"start": "10.6.0.1", "end": "10.6.0.2"}],
                         "gateway_ip": None, "enable_dhcp": True, "host_routes": [
                             {"destination": "2001:db8::/64", "nexthop": "10.6.0.1"}]}, 400, "InvalidInput"),
        ("10.6.0.0/31", {}, 400, "InvalidInput"),                           # DHCP needs /30 or larger
        ("224.0.0.0/24", {}, 400, "InvalidInput"),
        ("0.0.0.0/24", {}, 400, "InvalidInput"),
        ("0.0.0.0/0", {}, 400, "InvalidInput"),
        ("2001:db8::/64", {"ip_version": 4}, 400, "InvalidInput"),
        ("10.6.0.0/24", {"ipv6_address_mode": "slaac"}, 400, "InvalidInput"),
    ]
    for cidr, extra, status, err in cases:
        body = {"network_id": net["id"], "cidr": cidr, "ip_version": 4, **extra}
        r = member.post("/v2.0/subnets", {"subnet": body})
        assert (r.status, r.error_type) == (status, err), (cidr, extra, r)
    # update: pools and gateway are re-validated
    r = member.put(f"/v2.0/subnets/{s['id']}", {"subnet": {"gateway_ip": "10.5.0.15"}})
    assert r.status == 409 and r.error_type == "GatewayConflictWithAllocationPools"
    r = member.put(f"/v2.0/subnets/{s['id']}", {"subnet": {"cidr": "10.7.0.0/24"}})
    assert r.status == 400 and "read-only" in r.message
    r = member.put(f"/v2.0/subnets/{s['id']}", {"subnet": {"allocation_pools": [
        {"start": "10.5.0.30", "end": "10.5.0.40"}], "dns_nameservers": [], "name": "renamed"}})
    assert r.status == 200 and r.body["subnet"]["allocation_pools"] == [{"start": "10.5.0.30", "end": "10.5.0.40"}]
    assert r.body["subnet"]["dns_nameservers"] == [] and r.body["subnet"]["revision_number"] == 1


def test_ipv6_subnets(member):
    net = create_net(member)
    s = create_subnet(member, net, "2001:db8:1234::/64")
    assert s["gateway_ip"] == "2001:db8:1234::"
    assert s["allocation_pools"] == [{"start": "2001:db8:1234::1", "end": "2001:db8:1234:0:ffff:ffff:ffff:ffff"}]
    slaac = create_subnet(member, net, "2001:db8:5678::/64", ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    port = create_port(member, net)
    by_subnet = {f["subnet_id"]: f["ip_address"] for f in port["fixed_ips"]}
    assert set(by_subnet) == {s["id"], slaac["id"]}
    eui64 = netaddr.EUI(port["mac_address"]).ipv6(netaddr.IPNetwork("2001:db8:5678::/64").first)
    assert by_subnet[slaac["id"]] == str(eui64)
    p = create_port(member, net, fixed_ips=[{"subnet_id": s["id"], "ip_address": "2001:db8:1234::99"}])
    assert p["fixed_ips"] == [{"subnet_id": s["id"], "ip_address": "2001:db8:1234::99"}]
    r = member.post("/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": "::/64", "ip_version": 6}})
    assert r.status == 400


def test_fixed_ip_requests_and_conflicts(member, admin):
    net = create_net(member)
    sub = create_subnet(member, net, "10.10.0.0/29", enable_dhcp=False)   # pool .2-.6
    other_net = create_net(member)
    other = create_subnet(member, other_net, "10.11.0.0/24")
    p = create_port(member, net, fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.10.0.5"}])
    assert p["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.10.0.5"}]
    p2 = create_port(member, net, fixed_ips=[{"ip_address": "10.10.0.1"}])     # outside the pool, inside cidr
    assert p2["fixed_ips"][0]["ip_address"] == "10.10.0.1"
    unaddressed = create_port(member, net, fixed_ips=[])
    assert unaddressed["fixed_ips"] == []

    def err(fixed_ips, **kw):
        r = member.post("/v2.0/ports", {"port": {"network_id": net["id"], "fixed_ips": fixed_ips, **kw}})
        return r.status, r.error_type
    assert err([{"ip_address": "10.10.0.5"}]) == (409, "IpAddressAlreadyAllocated")
    assert err([{"subnet_id": sub["id"], "ip_address": "10.10.0.7"}]) == (400, "InvalidIpForSubnet")
    assert err([{"subnet_id": sub["id"], "ip_address": "10.10.0.0"}]) == (400, "InvalidIpForSubnet")
    assert err([{"ip_address": "10.99.0.1"}]) == (400, "InvalidIpForNetwork")
    assert err([{"subnet_id": other["id"]}]) == (400, "InvalidInput")
    assert err([{"subnet_id": "11111111-2222-3333-4444-555555555555"}]) == (404, "SubnetNotFound")
    assert err([{}]) == (400, "InvalidInput")
    assert err([{"ip_address": "10.10.0.3"}, {"ip_address": "10.10.0.3"}])[0] == 400
    # exhaust the pool (.2-.6 minus .5)
    taken = [create_port(member, net)["fixed_ips"][0]["ip_address"] for _ in range(4)]
    assert sorted(taken) == ["10.10.0.2", "10.10.0.3", "10.10.0.4", "10.10.0.6"]
    r = member.post("/v2.0/ports", {"port": {"network_id": net["id"]}})
    assert r.status == 409 and r.error_type == "IpAddressGenerationFailure"
    assert err([{"subnet_id": sub["id"]}]) == (409, "IpAddressGenerationFailure")
    # update replaces the list and returns addresses to the pool
    r = member.put(f"/v2.0/ports/{p['id']}", {"port": {"fixed_ips": [{"ip_address": "10.10.0.1"}]}})
    assert r.status == 409
    r = member.put(f"/v2.0/ports/{p2['id']}", {"port": {"fixed_ips": [{"subnet_id": sub["id"]}]}})
    assert r.status == 200 and r.body["port"]["fixed_ips"][0]["ip_address"] == "10.10.0.1"
    r = member.put(f"/v2.0/ports/{p['id']}", {"port": {"fixed_ips": []}})
    assert r.status == 200 and r.body["port"]["fixed_ips"] == []
    again = create_port(member, net)
    assert again["fixed_ips"][0]["ip_address"] == "10.10.0.5"


def test_mac_addresses(member, admin):
    net = create_net(member)
    p = create_port(member, net, mac_address="FA:16:3E:AA:BB:CC")
    assert p["mac_address"] == "fa:16:3e:aa:bb:cc"
    r = member.post("/v2.0/ports", {"port": {"network_id": net["id"], "mac_address": "fa:16:3e:aa:bb:cc"}})
    assert r.status == 409 and r.error_type == "MacAddressInUse"
    other = create_net(member)
    assert create_port(member, other, mac_address="fa:16:3e:aa:bb:cc")["mac_address"] == "fa:16:3e:aa:bb:cc"
    r = member.put(f"/v2.0/ports/{p['id']}", {"port": {"mac_address": "fa:16:3e:aa:bb:cd"}})
    assert r.status == 403
    r = admin.put(f"/v2.0/ports/{p['id']}", {"port": {"mac_address": "fa:16:3e:aa:bb:cd"}})
    assert r.status == 200 and r.body["port"]["mac_address"] == "fa:16:3e:aa:bb:cd"


def test_port_attributes_binding_and_policy(member, other_member, admin):
    net = create_net(member, port_security_enabled=False)
    p = create_port(member, net, name="vm1", device_id="vm-1", device_owner="compute:nova",
                    tags=["a", "b"], description="d")
    assert p["port_security_enabled"] is False            # inherited from the network
    assert p["tags"] == ["a", "b"] and p["admin_state_up"] is True
    assert "binding:host_id" not in p and "binding:vif_type" not in p
    full = admin.get(f"/v2.0/ports/{p['id']}").body["port"]
    assert full["binding:host_id"] == "" and full["binding:vif_type"] == "unbound"
    r = member.put(f"/v2.0/ports/{p['id']}", {"port": {"binding:host_id": "h"}})
    assert r.status == 400
    # members may not delete compute ports (neutron 29 defaults), admins may
    r = member.delete(f"/v2.0/ports/{p['id']}")
    assert r.status == 403
    r = member.post("/v2.0/ports", {"port": {"network_id": net["id"], "device_owner": "network:router_interface"}})
    assert r.status == 201       # the network owner may
    # another project's private network: 404 NetworkNotFound
    r = other_member.post("/v2.0/ports", {"port": {"network_id": net["id"]}})
    assert r.status == 404 and r.error_type == "NetworkNotFound"
    r = other_member.post("/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.20.0.0/24",
                                                       "ip_version": 4}})
    assert r.status == 403 and r.message == "rule:create_subnet is disallowed by policy"
    # a shared network: others may create ports, but not pick addresses or network:* owners
    shared = create_net(admin, shared=True)
    sub = create_subnet(admin, shared, "10.21.0.0/24")
    create_port(other_member, shared)
    r = other_member.post("/v2.0/ports", {"port": {"network_id": shared["id"],
                                                   "fixed_ips": [{"ip_address": "10.21.0.50"}]}})
    assert r.status == 403
    r = other_member.post("/v2.0/ports", {"port": {"network_id": shared["id"], "device_owner": "network:dhcp"}})
    assert r.status == 403
    assert sub["id"] in [s["id"] for s in other_member.get("/v2.0/subnets").body["subnets"]]
    assert admin.delete(f"/v2.0/ports/{p['id']}").status == 204
