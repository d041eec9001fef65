"""The port fast paths give exactly what the generic paths give:

* an admin's unpaginated port list is JSON written by the database
  (PortHandler.list_json); a paginated list (limit) takes the generic,
  dict-building path, and a show reads the port back the generic way;
* a create builds its answer from what it wrote instead of selecting it again.

Ports with several addresses (IPv4 and IPv6), tags, security groups, allowed
address pairs (with and without a MAC), port security off, odd names.
"""
from tests.api.conftest import new_project
from tests.api.test_networks import create_net
from tests.api.test_subnets_ports import create_port, create_subnet


def _ports(client, query: str) -> dict:
    r = client.get(f"/v2.0/ports?{query}")
    assert r.status == 200, r
    return {p["id"]: p for p in r.body["ports"]}


def test_port_list_json_matches_generic_path_and_creates(admin):
    project = new_project()
    net = create_net(admin, project_id=project, name="fast-path")
    v4 = create_subnet(admin, net, "10.77.0.0/24", project_id=project)
    create_subnet(admin, net, "fd00:77::/64", project_id=project)
    sg = admin.post("/v2.0/security-groups", {"security_group": {"name": "web", "project_id": project}})
    assert sg.status == 201, sg
    created = [
        create_port(admin, net, project_id=project),
        create_port(admin, net, project_id=project, name="n\u00e9 \"quoted\" \\ \u2603",
                    tags=["b", "a"], description="d\u00e9sc\n"),
        create_port(admin, net, project_id=project, security_groups=[sg.body["security_group"]["id"]],
                    allowed_address_pairs=[{"ip_address": "10.77.0.200"},
                                           {"ip_address": "10.77.1.0/24", "mac_address": "fa:16:3e:00:00:01"}]),
        create_port(admin, net, project_id=project, port_security_enabled=False,
                    fixed_ips=[{"subnet_id": v4["id"], "ip_address": "10.77.0.9"},
                               {"subnet_id": v4["id"], "ip_address": "10.77.0.10"}]),
        create_port(admin, net, project_id=project, admin_state_up=False, device_owner="compute:nova",
                    device_id="vm-1"),
    ]
    r = admin.put(f"/v2.0/ports/{created[0]['id']}/tags", {"tags": ["z", "y"]})
    assert r.status == 200, r

    fast = _ports(admin, f"network_id={net['id']}")
    generic = _ports(admin, f"network_id={net['id']}&limit=1000")
    assert fast == generic
    assert len(fast) == len(created) + 1                 # and the DHCP port
    for port in created[1:]:
        assert fast[port["id"]] == port                  # the create's answer is what is stored
        assert admin.get(f"/v2.0/ports/{port['id']}").body["port"] == port
    assert fast[created[0]["id"]]["tags"] == ["y", "z"]
    assert fast[created[1]["id"]]["tags"] == ["a", "b"]
    assert [ip["ip_address"] for ip in fast[created[3]["id"]]["fixed_ips"]] == ["10.77.0.10", "10.77.0.9"]
    assert fast[created[2]["id"]]["allowed_address_pairs"] == [
        {"ip_address": "10.77.0.200", "mac_address": created[2]["mac_address"]},
        {"ip_address": "10.77.1.0/24", "mac_address": "fa:16:3e:00:00:01"}]
    assert fast[created[3]["id"]]["port_security_enabled"] is False
    assert fast[created[4]["id"]]["admin_state_up"] is False

    # fields and sorting go through the fast path too
    r = admin.get(f"/v2.0/ports?network_id={net['id']}&fields=id&fields=fixed_ips&sort_key=name&sort_dir=desc")
    assert r.status == 200
    assert [p["id"] for p in r.body["ports"]] == [
        p["id"] for p in admin.get(f"/v2.0/ports?network_id={net['id']}&sort_key=name&sort_dir=desc"
                                   f"&limit=1000").body["ports"]]
    assert all(set(p) == {"id", "fixed_ips"} for p in r.body["ports"])
