"""allowed_address_pairs on another project's shared network (issue 18,
finding 1): the L2 anti-spoofing flows let a port send from its pairs'
addresses, so a tenant that could set pairs on a shared network could spoof
the network owner's addresses. Only admins and the network's owner may set
them (Neutron's create_port/update_port:allowed_address_pairs rules)."""
from tests.api.conftest import ADMIN_ROLES, Http, new_project
from tests.api.test_networks import create_net
from tests.api.test_subnets_ports import create_port, create_subnet


def test_tenant_cannot_set_address_pairs_on_a_shared_network(api_controller):
    admin = Http(api_controller.url, project="admin-project", roles=ADMIN_ROLES)
    a = Http(api_controller.url, project=new_project())
    b = Http(api_controller.url, project=new_project())
    shared = create_net(admin, project_id=a.project, shared=True)
    create_subnet(a, shared, "10.62.0.0/24")
    victim = create_port(a, shared)
    victim_ip = victim["fixed_ips"][0]["ip_address"]
    spoof = [{"ip_address": victim_ip, "mac_address": victim["mac_address"]}]

    for pairs in (spoof, [{"ip_address": "0.0.0.0/0"}], [{"ip_address": victim_ip}], []):
        r = b.post("/v2.0/ports", {"port": {"network_id": shared["id"], "allowed_address_pairs": pairs}})
        assert r.status == 403 and r.error_type == "PolicyNotAuthorized", r
        assert "allowed_address_pairs" in r.message
    mine = create_port(b, shared)
    for pairs in (spoof, [{"ip_address": "0.0.0.0/0"}], []):
        r = b.put(f"/v2.0/ports/{mine['id']}", {"port": {"allowed_address_pairs": pairs}})
        assert r.status == 403 and r.error_type == "PolicyNotAuthorized", r
    assert b.get(f"/v2.0/ports/{mine['id']}").body["port"]["allowed_address_pairs"] == []
    assert len(b.get(f"/v2.0/ports?network_id={shared['id']}").body["ports"]) == 1

    # The network's owner, and admins, may.
    own = create_port(a, shared, allowed_address_pairs=[{"ip_address": "10.62.0.200"}])
    assert own["allowed_address_pairs"][0]["ip_address"] == "10.62.0.200"
    r = admin.put(f"/v2.0/ports/{mine['id']}", {"port": {"allowed_address_pairs": [
        {"ip_address": "10.62.0.201"}]}})
    assert r.status == 200, r
    # On its own network a tenant may set any pairs.
    b_net = create_net(b)
    create_subnet(b, b_net, "10.63.0.0/24")
    p = create_port(b, b_net, allowed_address_pairs=[{"ip_address": "0.0.0.0/0"}])
    r = b.put(f"/v2.0/ports/{p['id']}", {"port": {"allowed_address_pairs": [
        {"ip_address": "10.63.0.9", "mac_address": "fa:16:3e:00:00:09"}]}})
    assert r.status == 200, r


def test_gateway_sub_attributes_come_from_the_policy(controller_factory, tmp_path):
    """enable_snat is admin-only by the rule create_router:external_gateway_info:enable_snat
    (not by a check in the router handler), so a policy file can open it."""
    policy = tmp_path / "policy.json"
    policy.write_text('{"create_router:external_gateway_info:enable_snat": "rule:admin_or_project_member"}')
    ctl = controller_factory(args=["--policy-file", str(policy)])
    admin = Http(ctl.url, project="admin-project", roles=ADMIN_ROLES)
    b = Http(ctl.url, project=new_project())
    ext = create_net(admin, **{"router:external": True})
    create_subnet(admin, ext, "172.24.40.0/24")
    r = b.post("/v2.0/routers", {"router": {"external_gateway_info": {
        "network_id": ext["id"], "enable_snat": False}}})
    assert r.status == 201 and r.body["router"]["external_gateway_info"]["enable_snat"] is False, r
    r = b.post("/v2.0/routers", {"router": {"external_gateway_info": {
        "network_id": ext["id"], "external_fixed_ips": [{"ip_address": "172.24.40.9"}]}}})
    assert r.status == 403 and r.message == (
        "rule:create_router:external_gateway_info:external_fixed_ips is disallowed by policy"), r
