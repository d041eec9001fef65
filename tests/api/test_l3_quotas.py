"""Quotas of the L3 and security-group resources: defaults, limits enforced
with 409 OverQuota, limits below usage refused, router ports count as ports."""
from tests.api.l3_support import add_interface, create_sg_or_fail, ext_network, private_net, router


def test_defaults_include_l3_resources(member):
    q = member.get(f"/v2.0/quotas/{member.project}").body["quota"]
    assert {k: q[k] for k in ("router", "floatingip", "security_group", "security_group_rule")} == {
        "router": 10, "floatingip": 50, "security_group": 10, "security_group_rule": 100}
    assert member.get(f"/v2.0/quotas/{member.project}/default").body["quota"]["router"] == 10


def test_router_and_floatingip_limits(admin, member):
    pid = member.project
    assert admin.put(f"/v2.0/quotas/{pid}", {"quota": {"router": 1, "floatingip": 1}}).status == 200
    router(member)
    x = member.post("/v2.0/routers", {"router": {}})
    assert x.status == 409 and x.error_type == "OverQuota"
    assert x.message == "Quota exceeded for resources: ['router']."
    ext, _ = ext_network(admin)
    assert member.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"]}}).status == 201
    x = member.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"]}})
    assert x.status == 409 and x.message == "Quota exceeded for resources: ['floatingip']."
    # below usage: refused unless forced
    x = admin.put(f"/v2.0/quotas/{pid}", {"quota": {"router": 0}})
    assert x.status == 400 and "already used 1" in x.message
    assert admin.put(f"/v2.0/quotas/{pid}", {"quota": {"router": 0, "force": True}}).status == 200


def test_security_group_and_rule_limits(admin, member):
    pid = member.project
    member.get("/v2.0/security-groups")          # the default group: 1 group, 4 rules
    assert admin.put(f"/v2.0/quotas/{pid}", {"quota": {"security_group": 2,
                                                       "security_group_rule": 7}}).status == 200
    sg = create_sg_or_fail(member, "a")          # +2 template rules: 6 of 7
    x = member.post("/v2.0/security-groups", {"security_group": {"name": "b"}})
    assert x.status == 409 and x.error_type == "OverQuota"
    assert x.message == "Quota exceeded for resources: ['security_group']."
    assert admin.put(f"/v2.0/quotas/{pid}", {"quota": {"security_group": 5}}).status == 200
    # a new group needs room for its two template rules
    x = member.post("/v2.0/security-groups", {"security_group": {"name": "b"}})
    assert x.status == 409 and x.message == "Quota exceeded for resources: ['security_group_rule']."
    rule = {"security_group_id": sg["id"], "direction": "ingress", "protocol": "icmp"}
    assert member.post("/v2.0/security-group-rules", {"security_group_rule": rule}).status == 201
    rule["protocol"] = "udp"
    x = member.post("/v2.0/security-group-rules", {"security_group_rule": rule})
    assert x.status == 409 and x.message == "Quota exceeded for resources: ['security_group_rule']."


def test_router_interface_ports_count_as_ports(admin, member):
    net, sub = private_net(member)
    used = len([p for p in member.get("/v2.0/ports").body["ports"]
                if p["device_owner"] != "network:dhcp"])
    assert admin.put(f"/v2.0/quotas/{member.project}", {"quota": {"port": used + 1}}).status == 200
    r = router(member)
    add_interface(member, r["id"], subnet_id=sub["id"])
    x = member.post("/v2.0/ports", {"port": {"network_id": net["id"]}})
    assert x.status == 409 and x.error_type == "OverQuota"
