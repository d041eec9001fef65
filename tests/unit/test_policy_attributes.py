"""Every writable attribute of every resource and the policy rule that guards
it, checked against Neutron's default policy (neutron/conf/policies/*.py,
new defaults; docs/API.md "Tenancy and policy").

An attribute with its own rule (`create_port:mac_address`) is listed with
that rule's text; one without is guarded by the action's rule alone
(`create_port`), which is listed under ACTION_RULES. A resource attribute
added later fails `test_every_writable_attribute_is_listed` until it is
listed here with the rule Neutron gives it.
"""
from __future__ import annotations

import pytest

from controller.api import policy, registry
from controller.api.context import Context

ADMIN = "rule:admin_only"
MEMBER = "rule:admin_or_project_member"
NET_OWNER = "rule:admin_only or rule:net_owner_member or rule:service_api"   # ADMIN_OR_NET_OWNER_MEMBER or SERVICE
SERVICE_OR_NET_OWNER = "rule:admin_or_service or rule:net_owner_member"
DEVICE_OWNER = "not rule:network_device or rule:admin_or_service or rule:net_owner_member"

# The action rules: what guards an attribute that has no rule of its own.
ACTION_RULES = {
    "create_network": MEMBER,
    "update_network": MEMBER,
    "create_subnet": "rule:admin_only or rule:net_owner_member",
    "update_subnet": "rule:admin_or_project_member or rule:net_owner_member",
    "create_port": "rule:admin_or_service or rule:net_owner_member or rule:shared",
    "update_port": "rule:admin_or_service or rule:project_member",
    "create_security_group": MEMBER,
    "update_security_group": MEMBER,
    "create_security_group_rule": "rule:admin_only or (role:member and rule:sg_owner)",
    "create_router": MEMBER,
    "update_router": MEMBER,
    "create_floatingip": MEMBER,
    "update_floatingip": MEMBER,
    # nodes are the controller's own: admins and node-bootstrap's service user (README)
    "create_node": "rule:admin_or_service",
    "update_node": "rule:admin_or_service",
}

# (resource, attribute) -> {rule name: rule text} for the attribute's own
# rules and sub-attribute rules; {} means the action rule alone guards it.
ATTRIBUTE_RULES: dict[tuple[str, str], dict[str, str]] = {
    # networks
    ("network", "name"): {}, ("network", "admin_state_up"): {}, ("network", "description"): {},
    ("network", "tenant_id"): {}, ("network", "project_id"): {},
    ("network", "shared"): {"create_network:shared": ADMIN, "update_network:shared": ADMIN},
    ("network", "router:external"): {"create_network:router:external": ADMIN,
                                     "update_network:router:external": ADMIN},
    **{("network", a): {f"create_network:{a}": ADMIN, f"update_network:{a}": ADMIN}
       for a in ("provider:network_type", "provider:physical_network", "provider:segmentation_id")},
    ("network", "port_security_enabled"): {"create_network:port_security_enabled": MEMBER,
                                           "update_network:port_security_enabled": MEMBER},
    # subnets: no attribute rules (segment_id and service_types are not served)
    **{("subnet", a): {} for a in (
        "name", "network_id", "ip_version", "cidr", "gateway_ip", "allocation_pools",
        "dns_nameservers", "host_routes", "enable_dhcp", "ipv6_ra_mode", "ipv6_address_mode",
        "subnetpool_id", "tenant_id", "project_id", "description")},
    # ports
    ("port", "name"): {}, ("port", "network_id"): {}, ("port", "admin_state_up"): {},
    ("port", "description"): {}, ("port", "tenant_id"): {}, ("port", "project_id"): {},
    ("port", "security_groups"): {},      # the handler refuses groups of another project (404)
    ("port", "mac_address"): {"create_port:mac_address": SERVICE_OR_NET_OWNER,
                              "update_port:mac_address": "rule:admin_or_service or rule:net_owner_manager"},
    ("port", "fixed_ips"): {
        "create_port:fixed_ips": SERVICE_OR_NET_OWNER + " or rule:shared",
        "create_port:fixed_ips:ip_address": SERVICE_OR_NET_OWNER,
        "create_port:fixed_ips:subnet_id": SERVICE_OR_NET_OWNER + " or rule:shared",
        "update_port:fixed_ips": SERVICE_OR_NET_OWNER,
        "update_port:fixed_ips:ip_address": SERVICE_OR_NET_OWNER,
        "update_port:fixed_ips:subnet_id": SERVICE_OR_NET_OWNER + " or rule:shared"},
    ("port", "device_id"): {"create_port:device_id": MEMBER + " or rule:service_api",
                            "update_port:device_id": MEMBER + " or rule:service_api"},
    ("port", "device_owner"): {"create_port:device_owner": DEVICE_OWNER,
                               "update_port:device_owner": DEVICE_OWNER},
    ("port", "port_security_enabled"): {"create_port:port_security_enabled": SERVICE_OR_NET_OWNER,
                                        "update_port:port_security_enabled": SERVICE_OR_NET_OWNER},
    ("port", "tags"): {"create_port:tags": MEMBER + " or rule:service_api"},
    ("port", "allowed_address_pairs"): {
        f"{op}_port:allowed_address_pairs{sub}": NET_OWNER
        for op in ("create", "update") for sub in ("", ":mac_address", ":ip_address")},
    # nodes: admin-only resource
    **{("node", a): {} for a in ("hostname", "role", "tunnel_ip", "tunnel_type", "ovsdb",
                                 "bridge_mappings", "bridges")},
    # security groups and rules
    **{("security_group", a): {} for a in ("name", "tenant_id", "project_id", "stateful",
                                           "description")},
    **{("security_group_rule", a): {} for a in (
        "security_group_id", "direction", "ethertype", "protocol", "port_range_min",
        "port_range_max", "remote_ip_prefix", "remote_group_id", "tenant_id", "project_id",
        "description")},
    # routers
    ("router", "name"): {}, ("router", "admin_state_up"): {}, ("router", "description"): {},
    ("router", "tenant_id"): {}, ("router", "project_id"): {},
    ("router", "external_gateway_info"): {
        f"{op}_router:external_gateway_info{sub}": rule
        for op in ("create", "update")
        for sub, rule in (("", MEMBER), (":network_id", MEMBER), (":enable_snat", ADMIN),
                          (":external_fixed_ips", ADMIN))},
    # floating IPs
    ("floatingip", "floating_ip_address"): {
        "create_floatingip:floating_ip_address": "rule:admin_or_project_manager"},
    **{("floatingip", a): {} for a in ("floating_network_id", "subnet_id", "port_id",
                                       "fixed_ip_address", "tenant_id", "project_id",
                                       "description")},
}


@pytest.fixture(scope="module")
def enforcer():
    registry.load()
    return policy.Enforcer()


def writable() -> set[tuple[str, str]]:
    registry.load()
    return {(r.name, n) for r in registry.RESOURCES for n, a in r.attributes.items()
            if a.allow_post or a.allow_put}


def test_every_writable_attribute_is_listed():
    assert writable() == set(ATTRIBUTE_RULES)


@pytest.mark.parametrize("key", sorted(ATTRIBUTE_RULES), ids=lambda k: f"{k[0]}.{k[1]}")
def test_attribute_rule_is_neutrons(enforcer, key):
    res_name, attr = key
    expected = ATTRIBUTE_RULES[key]
    # No other rule names this attribute: an extra rule would be a rule Neutron lacks.
    present = {name for name in enforcer.texts for op in ("create", "update")
               if name == f"{op}_{res_name}:{attr}" or name.startswith(f"{op}_{res_name}:{attr}:")}
    assert present == set(expected)
    for name, text in expected.items():
        assert enforcer.texts[name] == text, name


@pytest.mark.parametrize("action", sorted(ACTION_RULES))
def test_action_rule_is_neutrons(enforcer, action):
    assert enforcer.texts[action] == ACTION_RULES[action]


# --- the rules' meaning, for the callers Neutron's defaults tell apart -------------------

def ctx(project, *roles):
    c = Context(project_id=project, user_id="u", roles=list(roles))
    c.is_admin = "admin" in roles
    return c


def port_target(port_project, net_project, shared):
    return {"_resource": "port", "project_id": port_project, "tenant_id": port_project,
            "device_owner": "", "network:project_id": net_project,
            "network:tenant_id": net_project, "network:shared": shared}


@pytest.mark.parametrize("op", ["create", "update"])
@pytest.mark.parametrize("sub", ["", ":mac_address", ":ip_address"])
def test_address_pairs_only_for_the_networks_owner(enforcer, op, sub):
    rule = f"{op}_port:allowed_address_pairs{sub}"
    a_member, b_member = ctx("A", "member", "reader"), ctx("B", "member", "reader")
    # B's own port on A's shared network: the breach of issue 18
    assert not enforcer.check(b_member, rule, port_target("B", "A", True))
    assert enforcer.check(a_member, rule, port_target("A", "A", True))
    assert enforcer.check(b_member, rule, port_target("B", "B", False))
    assert enforcer.check(ctx("X", "admin"), rule, port_target("B", "A", True))
    assert enforcer.check(ctx("X", "service"), rule, port_target("B", "A", True))
    assert not enforcer.check(ctx("A", "reader"), rule, port_target("A", "A", True))


def test_gateway_sub_attributes(enforcer):
    member = ctx("B", "member", "reader")
    router = {"_resource": "router", "project_id": "B"}
    for op in ("create", "update"):
        assert enforcer.check(member, f"{op}_router:external_gateway_info:network_id", router)
        assert not enforcer.check(member, f"{op}_router:external_gateway_info:enable_snat", router)
        assert not enforcer.check(member, f"{op}_router:external_gateway_info:external_fixed_ips",
                                  router)
        assert enforcer.check(ctx("X", "admin"), f"{op}_router:external_gateway_info:enable_snat",
                              router)


def test_security_group_rules_follow_the_groups_owner(enforcer):
    rule = {"_resource": "security_group_rule", "project_id": "B",
            "security_group:project_id": "A"}
    for action in ("create_security_group_rule", "delete_security_group_rule"):
        assert not enforcer.check(ctx("B", "member", "reader"), action, rule)
        assert enforcer.check(ctx("A", "member", "reader"), action, rule)
    assert not enforcer.check(ctx("B", "member", "reader"), "get_security_group_rule", rule)
    assert enforcer.check(ctx("A", "reader"), "get_security_group_rule", rule)
