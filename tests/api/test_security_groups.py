"""Security groups and rules: the per-project default group, rule validation
and normalisation, the 409s, tenancy, and what ports get (security_groups,
allowed_address_pairs) (plain HTTP with noauth headers)."""
import pytest

from tests.api.conftest import Http
from tests.api.l3_support import create_port, private_net

SG = "/v2.0/security-groups"
RULES = "/v2.0/security-group-rules"


def default_group(client):
    [g] = [g for g in client.get(SG).body["security_groups"] if g["name"] == "default"]
    return g


def create_sg(client, name="web", **attrs):
    r = client.post(SG, {"security_group": {"name": name, **attrs}})
    assert r.status == 201, r
    return r.body["security_group"]


def add_rule(client, sg, **attrs):
    return client.post(RULES, {"security_group_rule": {"security_group_id": sg["id"],
                                                       "direction": "ingress", **attrs}})


def shape(rule):
    return (rule["direction"], rule["ethertype"], rule["protocol"], rule["remote_group_id"],
            rule["remote_ip_prefix"], rule["port_range_min"], rule["port_range_max"])


def test_default_group_made_on_demand_with_neutrons_rules(member):
    [g] = member.get(SG).body["security_groups"]
    assert g["name"] == "default" and g["description"] == "Default security group"
    assert g["project_id"] == g["tenant_id"] == member.project and g["stateful"] is True
    assert sorted(shape(r) for r in g["security_group_rules"]) == [
        ("egress", "IPv4", None, None, None, None, None),
        ("egress", "IPv6", None, None, None, None, None),
        ("ingress", "IPv4", None, g["id"], None, None, None),
        ("ingress", "IPv6", None, g["id"], None, None, None)]
    assert all(r["belongs_to_default_sg"] for r in g["security_group_rules"])
    # listing again does not make a second one
    assert [x["id"] for x in member.get(SG).body["security_groups"]] == [g["id"]]
    assert len(member.get(f"{RULES}?security_group_id={g['id']}").body["security_group_rules"]) == 4
    # protected: no rename, no delete by its project; named "default" is refused
    x = member.put(f"{SG}/{g['id']}", {"security_group": {"name": "other"}})
    assert x.status == 409 and x.error_type == "SecurityGroupCannotUpdateDefault"
    x = member.delete(f"{SG}/{g['id']}")
    assert x.status == 409 and x.error_type == "SecurityGroupCannotRemoveDefault"
    x = member.post(SG, {"security_group": {"name": "default"}})
    assert x.status == 409 and x.error_type == "SecurityGroupDefaultAlreadyExists"
    assert member.put(f"{SG}/{g['id']}", {"security_group": {"description": "d"}}).status == 200


def test_default_group_with_first_network(admin, member):
    # an admin creating a network for a project makes that project's default group
    admin.post("/v2.0/networks", {"network": {"project_id": member.project}})
    groups = admin.get(f"{SG}?project_id={member.project}").body["security_groups"]
    assert [g["name"] for g in groups] == ["default"]


def test_new_group_crud_and_tenancy(member, other_member):
    sg = create_sg(member, description="web servers")
    assert sorted(shape(r) for r in sg["security_group_rules"]) == [
        ("egress", "IPv4", None, None, None, None, None),
        ("egress", "IPv6", None, None, None, None, None)]
    assert not any(r["belongs_to_default_sg"] for r in sg["security_group_rules"])
    x = member.put(f"{SG}/{sg['id']}", {"security_group": {"name": "web2"}})
    assert x.status == 200 and x.body["security_group"]["name"] == "web2"
    assert x.body["security_group"]["revision_number"] == 1
    x = member.put(f"{SG}/{sg['id']}", {"security_group": {"name": "default"}})
    assert x.status == 409 and x.error_type == "SecurityGroupDefaultAlreadyExists"
    # other projects: 404 everywhere
    x = other_member.get(f"{SG}/{sg['id']}")
    assert x.status == 404 and x.error_type == "SecurityGroupNotFound"
    assert x.message == f"Security group {sg['id']} does not exist"
    x = add_rule(other_member, sg, protocol="tcp", port_range_min=1, port_range_max=2)
    assert x.status == 404 and x.error_type == "SecurityGroupNotFound"
    rule_id = sg["security_group_rules"][0]["id"]
    x = other_member.get(f"{RULES}/{rule_id}")
    assert x.status == 404 and x.error_type == "SecurityGroupRuleNotFound"
    assert other_member.delete(f"{RULES}/{rule_id}").status == 404
    assert sg["id"] not in {g["id"] for g in other_member.get(SG).body["security_groups"]}
    x = Http(member.url, project=member.project, roles="reader").post(SG, {"security_group": {}})
    assert x.status == 403
    assert member.delete(f"{SG}/{sg['id']}").status == 204
    assert member.get(f"{RULES}/{rule_id}").status == 404


@pytest.mark.parametrize("attrs,status,error", [
    ({"protocol": "tcp", "port_range_min": 80, "port_range_max": 22}, 400, "SecurityGroupInvalidPortRange"),
    ({"protocol": "tcp", "port_range_min": 80}, 400, "SecurityGroupInvalidPortRange"),
    ({"protocol": "udp", "port_range_min": 0, "port_range_max": 5}, 400, "SecurityGroupInvalidPortValue"),
    ({"protocol": "tcp", "port_range_min": 1, "port_range_max": 70000}, 400, "SecurityGroupInvalidPortValue"),
    ({"port_range_min": 22, "port_range_max": 22}, 400, "SecurityGroupProtocolRequiredWithPorts"),
    ({"protocol": "gre", "port_range_min": 22, "port_range_max": 22}, 400, "SecurityGroupInvalidProtocolForPort"),
    ({"protocol": "icmp", "port_range_min": 300}, 400, "SecurityGroupInvalidIcmpValue"),
    ({"protocol": "icmp", "port_range_max": 0}, 400, "SecurityGroupMissingIcmpType"),
    ({"protocol": "xyz"}, 400, "SecurityGroupRuleInvalidProtocol"),
    ({"protocol": "300"}, 400, "SecurityGroupRuleInvalidProtocol"),
    ({"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}, 400, "SecurityGroupRuleParameterConflict"),
    ({"protocol": "ipv6-icmp"}, 400, "SecurityGroupEthertypeConflictWithProtocol"),
    ({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "00000000-0000-4000-8000-000000000000"},
     400, "SecurityGroupMultipleRemoteEntites"),
    ({"remote_ip_prefix": "nonsense"}, 400, "InvalidCIDR"),
    ({"direction": "sideways"}, 400, "HTTPBadRequest"),
    ({"ethertype": "IPv5"}, 400, "HTTPBadRequest"),
    ({"remote_group_id": "00000000-0000-4000-8000-000000000000"}, 404, "SecurityGroupNotFound"),
    ({"security_group_id": "00000000-0000-4000-8000-000000000000"}, 404, "SecurityGroupNotFound"),
])
def test_rule_validation(member, attrs, status, error):
    sg = default_group(member)
    x = add_rule(member, sg, **attrs)
    assert x.status == status and x.error_type == error, x
    assert len(member.get(f"{RULES}?security_group_id={sg['id']}").body["security_group_rules"]) == 4


def test_rule_normalisation_and_duplicates(member):
    sg = create_sg(member)
    x = add_rule(member, sg, protocol="TCP", port_range_min=1, port_range_max=65535,
                 remote_ip_prefix="10.1.2.3/8", ethertype="ipv4")
    assert x.status == 201, x
    r = x.body["security_group_rule"]
    assert shape(r) == ("ingress", "IPv4", "tcp", None, "10.0.0.0/8", None, None)
    assert r["project_id"] == member.project and r["security_group_id"] == sg["id"]
    # the same rule again (protocol by number this time): 409
    x = add_rule(member, sg, protocol="6", remote_ip_prefix="10.0.0.0/8")
    assert x.status == 409 and x.error_type == "SecurityGroupRuleExists"
    assert x.message == f"Security group rule already exists. Rule id is {r['id']}."
    x = add_rule(member, sg, ethertype="IPv6", protocol="icmp", port_range_min=128, port_range_max=0)
    assert x.status == 201 and x.body["security_group_rule"]["protocol"] == "ipv6-icmp"
    x = add_rule(member, sg, protocol="any", remote_group_id=sg["id"])
    assert x.status == 201 and x.body["security_group_rule"]["protocol"] is None
    x = add_rule(member, sg, protocol="132", port_range_min=5, port_range_max=6)
    assert x.status == 201 and x.body["security_group_rule"]["protocol"] == "132"
    # bulk: all or nothing; a POST repeating a rule is its own 409
    two = [{"security_group_id": sg["id"], "direction": "egress", "protocol": "udp",
            "port_range_min": 53, "port_range_max": 53}] * 2
    x = member.post(RULES, {"security_group_rules": two})
    assert x.status == 409 and x.error_type == "DuplicateSecurityGroupRuleInPost"
    x = member.post(RULES, {"security_group_rules": two[:1] + [dict(two[0], port_range_max=54)]})
    assert x.status == 201 and len(x.body["security_group_rules"]) == 2
    for made in x.body["security_group_rules"]:
        assert member.delete(f"{RULES}/{made['id']}").status == 204
    # rules are create/show/delete only
    rid = r["id"]
    assert member.put(f"{RULES}/{rid}", {"security_group_rule": {"description": "x"}}).status in (400, 405)
    got = member.get(f"{SG}/{sg['id']}").body["security_group"]
    assert len(got["security_group_rules"]) == 6 and got["revision_number"] >= 4
    assert member.delete(f"{RULES}/{rid}").status == 204
    assert member.get(f"{RULES}/{rid}").status == 404
    # the filter works on the rules' own attributes
    assert {x["protocol"] for x in member.get(f"{RULES}?security_group_id={sg['id']}&direction=ingress")
            .body["security_group_rules"]} == {"ipv6-icmp", None, "132"}


def test_ports_get_groups(member, other_member):
    net, sub = private_net(member)
    default = default_group(member)
    p = create_port(member, net)
    assert p["security_groups"] == [default["id"]] and p["allowed_address_pairs"] == []
    assert member.get(f"/v2.0/ports/{p['id']}").body["port"]["security_groups"] == [default["id"]]
    # the DHCP port has none
    [dhcp] = member.get(f"/v2.0/ports?network_id={net['id']}&device_owner=network:dhcp").body["ports"]
    assert dhcp["security_groups"] == []
    web = create_sg(member)
    q = create_port(member, net, security_groups=[web["id"], default["id"]])
    assert q["security_groups"] == sorted([web["id"], default["id"]])
    listed = member.get(f"/v2.0/ports?security_groups={web['id']}").body["ports"]
    assert [x["id"] for x in listed] == [q["id"]]
    # the group in use cannot go
    x = member.delete(f"{SG}/{web['id']}")
    assert x.status == 409 and x.error_type == "SecurityGroupInUse"
    assert x.message == f"Security Group {web['id']} in use."
    x = member.put(f"/v2.0/ports/{q['id']}", {"port": {"security_groups": []}})
    assert x.status == 200 and x.body["port"]["security_groups"] == []
    assert member.delete(f"{SG}/{web['id']}").status == 204
    # without port security: no groups
    r = create_port(member, net, port_security_enabled=False)
    assert r["security_groups"] == [] and r["port_security_enabled"] is False
    x = member.post("/v2.0/ports", {"port": {"network_id": net["id"], "port_security_enabled": False,
                                             "security_groups": [default["id"]]}})
    assert x.status == 400 and x.error_type == "PortSecurityAndIPRequiredForSecurityGroups"
    x = member.put(f"/v2.0/ports/{p['id']}", {"port": {"port_security_enabled": False}})
    assert x.status == 409 and x.error_type == "PortSecurityPortHasSecurityGroup"
    x = member.put(f"/v2.0/ports/{p['id']}", {"port": {"port_security_enabled": False,
                                                        "security_groups": []}})
    assert x.status == 200 and x.body["port"]["security_groups"] == []
    # unknown and foreign groups: 404
    theirs = default_group(other_member)
    for gid in (theirs["id"], "00000000-0000-4000-8000-000000000000"):
        x = member.post("/v2.0/ports", {"port": {"network_id": net["id"], "security_groups": [gid]}})
        assert x.status == 404 and x.error_type == "SecurityGroupNotFound"
    x = member.post("/v2.0/ports", {"port": {"network_id": net["id"], "security_groups": ["x"]}})
    assert x.status == 400


def test_allowed_address_pairs(member):
    net, _ = private_net(member)
    p = create_port(member, net, allowed_address_pairs=[
        {"ip_address": "10.99.0.5"}, {"ip_address": "10.98.0.0/24", "mac_address": "FA:16:3E:00:00:01"}])
    assert p["allowed_address_pairs"] == [
        {"ip_address": "10.99.0.5", "mac_address": p["mac_address"]},
        {"ip_address": "10.98.0.0/24", "mac_address": "fa:16:3e:00:00:01"}]
    x = member.put(f"/v2.0/ports/{p['id']}", {"port": {"allowed_address_pairs": []}})
    assert x.status == 200 and x.body["port"]["allowed_address_pairs"] == []
    url = f"/v2.0/ports/{p['id']}"
    for bad, error in (([{"mac_address": "fa:16:3e:00:00:01"}], "AllowedAddressPairsMissingIP"),
                       ([{"ip_address": "10.0.0.1"}, {"ip_address": "10.0.0.1"}], "DuplicateAddressPairInRequest"),
                       ([{"ip_address": "nope"}], "HTTPBadRequest"),
                       ([{"ip_address": f"10.0.0.{i}"} for i in range(11)], "AllowedAddressPairExhausted")):
        x = member.put(url, {"port": {"allowed_address_pairs": bad}})
        assert x.status == 400 and x.error_type == error, (bad, x)
    x = member.post("/v2.0/ports", {"port": {"network_id": net["id"], "port_security_enabled": False,
                                             "security_groups": [],
                                             "allowed_address_pairs": [{"ip_address": "10.0.0.9"}]}})
    assert x.status == 409 and x.error_type == "AddressPairAndPortSecurityRequired"


def test_admin_may_delete_a_default_group(admin, member):
    g = default_group(member)
    assert admin.delete(f"{SG}/{g['id']}").status == 204
    # and the project gets a new one on its next listing
    assert default_group(member)["id"] != g["id"]
