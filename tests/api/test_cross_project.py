"""Cross-project matrix (issue 18): a member of project B against every
resource of project A and every writable attribute, on A's private network
and on a network A shares, with the answers of Neutron's default policy
(docs/API.md "Tenancy and policy"; Neutron's new defaults):

* what B cannot see (A's private network and everything on it, A's ports on
  the shared network, A's routers, floating IPs, security groups, rules) is
  404 <Resource>NotFound for show, update (each attribute) and delete, and
  absent from B's lists;
* what B can see but not change (the shared network and its subnet) is 403;
* on the shared network B may create and update its own ports, but not the
  attributes Neutron keeps for the network's owner (mac_address, fixed IP
  addresses, port_security_enabled, allowed_address_pairs, network:* owners);
* B's own router cannot take A's subnets or ports; quotas of A are 403.

A's objects are unchanged afterwards (same revision_number, same body).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest

from controller.api import registry
from tests.api.conftest import ADMIN_ROLES, Http, new_project

# A valid value for every writable attribute (so policy is the only reason to refuse).
VALUES: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("network", "name"): lambda w: "x", ("network", "admin_state_up"): lambda w: False,
    ("network", "description"): lambda w: "d", ("network", "shared"): lambda w: True,
    ("network", "router:external"): lambda w: True,
    ("network", "provider:network_type"): lambda w: "vlan",
    ("network", "provider:physical_network"): lambda w: "physnet1",
    ("network", "provider:segmentation_id"): lambda w: 120,
    ("network", "port_security_enabled"): lambda w: False,
    ("subnet", "name"): lambda w: "x", ("subnet", "description"): lambda w: "d",
    ("subnet", "gateway_ip"): lambda w: w.gateway_ip,
    ("subnet", "allocation_pools"): lambda w: [{"start": w.pool[0], "end": w.pool[1]}],
    ("subnet", "dns_nameservers"): lambda w: ["192.0.2.53"],
    ("subnet", "host_routes"): lambda w: [{"destination": "192.0.2.0/24", "nexthop": w.gateway_ip}],
    ("subnet", "enable_dhcp"): lambda w: False,
    ("port", "name"): lambda w: "x", ("port", "admin_state_up"): lambda w: False,
    ("port", "description"): lambda w: "d", ("port", "device_id"): lambda w: "vm-1",
    ("port", "device_owner"): lambda w: "compute:nova",
    ("port", "mac_address"): lambda w: "fa:16:3e:12:34:56",
    ("port", "fixed_ips"): lambda w: [{"subnet_id": w.subnet_id, "ip_address": w.free_ip}],
    ("port", "port_security_enabled"): lambda w: False,
    ("port", "security_groups"): lambda w: [w.ids["b_default_sg"]],
    ("port", "allowed_address_pairs"): lambda w: [{"ip_address": w.victim_ip, "mac_address": w.victim_mac}],
    ("port", "tags"): lambda w: ["t"],
    ("router", "name"): lambda w: "x", ("router", "admin_state_up"): lambda w: False,
    ("router", "description"): lambda w: "d",
    ("router", "external_gateway_info"): lambda w: {"network_id": w.ids["ext"]},
    ("floatingip", "port_id"): lambda w: None, ("floatingip", "fixed_ip_address"): lambda w: None,
    ("floatingip", "description"): lambda w: "d",
    ("security_group", "name"): lambda w: "x", ("security_group", "description"): lambda w: "d",
    ("security_group", "stateful"): lambda w: False,
}

NOT_FOUND = {"network": "NetworkNotFound", "subnet": "SubnetNotFound", "port": "PortNotFound",
             "router": "RouterNotFound", "floatingip": "FloatingIPNotFound",
             "security_group": "SecurityGroupNotFound", "security_group_rule": "SecurityGroupRuleNotFound"}
PATHS = {"network": "networks", "subnet": "subnets", "port": "ports", "router": "routers",
         "floatingip": "floatingips", "security_group": "security-groups",
         "security_group_rule": "security-group-rules"}


class World:
    """Project A's objects, a network A shares, and B's own ones."""

    def __init__(self, url: str):
        self.admin = Http(url, project="admin-project", roles=ADMIN_ROLES)
        self.a = Http(url, project=new_project())
        self.b = Http(url, project=new_project())
        self.ids: dict[str, str] = {}
        self.objects: dict[str, tuple[str, str]] = {}     # name -> (resource, id), A's
        a, b, admin = self.a, self.b, self.admin
        ext = self.make(admin, "network", {"router:external": True}, "ext")
        self.make(admin, "subnet", {"network_id": ext, "cidr": "172.31.0.0/24", "ip_version": 4}, "ext_subnet")
        net = self.make(a, "network", {"name": "a-private"}, "a_net", own=True)
        sub = self.make(a, "subnet", {"network_id": net, "cidr": "10.110.0.0/24", "ip_version": 4},
                        "a_subnet", own=True)
        port = self.make(a, "port", {"network_id": net}, "a_port", own=True)
        shared = self.make(admin, "network", {"shared": True, "project_id": a.project}, "shared", own=True)
        self.make(a, "subnet", {"network_id": shared, "cidr": "10.120.0.0/24", "ip_version": 4},
                  "shared_subnet", own=True)
        self.make(a, "port", {"network_id": shared}, "a_shared_port", own=True)
        self.make(b, "port", {"network_id": shared}, "b_shared_port")
        router = self.make(a, "router", {"external_gateway_info": {"network_id": ext}}, "a_router", own=True)
        r = a.put(f"/v2.0/routers/{router}/add_router_interface", {"subnet_id": sub})
        assert r.status == 200, r
        self.make(a, "floatingip", {"floating_network_id": ext, "port_id": port}, "a_fip", own=True)
        sg = self.make(a, "security_group", {"name": "web"}, "a_sg", own=True)
        self.make(a, "security_group_rule", {"security_group_id": sg, "direction": "ingress",
                                             "protocol": "tcp", "port_range_min": 22,
                                             "port_range_max": 22}, "a_rule", own=True)
        self.ids["a_default_sg"] = self.default_sg(a)
        self.objects["a_default_sg"] = ("security_group", self.ids["a_default_sg"])
        self.ids["b_default_sg"] = self.default_sg(b)
        self.make(b, "router", {}, "b_router")
        a_port = a.get(f"/v2.0/ports/{port}").body["port"]
        self.victim_ip, self.victim_mac = a_port["fixed_ips"][0]["ip_address"], a_port["mac_address"]
        self.subnet_id = self.ids["shared_subnet"]
        self.gateway_ip, self.pool, self.free_ip = "10.120.0.1", ("10.120.0.100", "10.120.0.200"), "10.120.0.50"

    def make(self, client, res, attrs, name, own=False) -> str:
        key = res
        r = client.post(f"/v2.0/{PATHS[res]}", {key: attrs})
        assert r.status == 201, (res, attrs, r)
        self.ids[name] = r.body[key]["id"]
        if own:
            self.objects[name] = (res, self.ids[name])
        return self.ids[name]

    @staticmethod
    def default_sg(client) -> str:
        groups = client.get("/v2.0/security-groups?name=default").body["security_groups"]
        return groups[0]["id"]

    def a_view(self) -> dict:
        """A's (or, for the shared network, admin's) view of A's objects."""
        out = {}
        for name, (res, id_) in self.objects.items():
            r = self.admin.get(f"/v2.0/{PATHS[res]}/{id_}")
            assert r.status == 200, (name, r)
            out[name] = r.body[res]
        return out


@dataclass
class Case:
    name: str
    method: str
    path: Callable[[World], str]
    body: Callable[[World], Any] | None
    status: int
    type: str | None = None


def writable(res_name: str, op: str) -> list[str]:
    registry.load()
    res = next(r for r in registry.RESOURCES if r.name == res_name)
    flag = "allow_post" if op == "create" else "allow_put"
    return [k for k, a in res.attributes.items() if getattr(a, flag)
            and k not in ("tenant_id", "project_id") and (res_name, k) in VALUES]


def invisible(obj: str, res: str) -> list[Case]:
    """Show, update of each writable attribute, delete and tags: 404."""
    nf = NOT_FOUND[res]
    url = lambda w, o=obj: f"/v2.0/{PATHS[res]}/{w.ids[o]}"      # noqa: E731
    cases = [Case(f"{obj}: show", "GET", url, None, 404, nf),
             Case(f"{obj}: delete", "DELETE", url, None, 404, nf)]
    for attr in writable(res, "update"):
        cases.append(Case(f"{obj}: update {attr}", "PUT", url,
                          lambda w, a=attr, r=res: {r: {a: VALUES[(r, a)](w)}}, 404, nf))
    if res not in ("security_group_rule",):
        cases += [Case(f"{obj}: get tags", "GET", lambda w, o=obj: url(w) + "/tags", None, 404, nf),
                  Case(f"{obj}: add tag", "PUT", lambda w, o=obj: url(w) + "/tags/t", None, 404, nf)]
    return cases


def visible_read_only(obj: str, res: str) -> list[Case]:
    """Seen (shared), not changed: show 200, update of each attribute and delete 403."""
    url = lambda w, o=obj: f"/v2.0/{PATHS[res]}/{w.ids[o]}"      # noqa: E731
    cases = [Case(f"{obj}: show", "GET", url, None, 200),
             Case(f"{obj}: delete", "DELETE", url, None, 403, "PolicyNotAuthorized"),
             Case(f"{obj}: add tag", "PUT", lambda w: url(w) + "/tags/t", None, 403, "PolicyNotAuthorized")]
    for attr in writable(res, "update"):
        cases.append(Case(f"{obj}: update {attr}", "PUT", url,
                          lambda w, a=attr, r=res: {r: {a: VALUES[(r, a)](w)}}, 403, "PolicyNotAuthorized"))
    return cases


# fixed_ips with an ip_address (VALUES has one); a subnet_id alone is allowed on a shared network
NET_OWNER_ONLY_ON_CREATE = {"mac_address", "fixed_ips", "port_security_enabled", "allowed_address_pairs"}
NET_OWNER_ONLY_ON_UPDATE = {"mac_address", "fixed_ips", "port_security_enabled", "allowed_address_pairs"}


def ports_on_the_shared_network() -> list[Case]:
    post = lambda w: "/v2.0/ports"                                    # noqa: E731
    mine = lambda w: f"/v2.0/ports/{w.ids['b_shared_port']}"         # noqa: E731
    cases = [Case("shared: create port", "POST", post,
                  lambda w: {"port": {"network_id": w.ids["shared"]}}, 201)]
    for attr in writable("port", "create"):
        if attr == "network_id":
            continue
        refused = attr in NET_OWNER_ONLY_ON_CREATE
        cases.append(Case(f"shared: create port with {attr}", "POST", post,
                          lambda w, a=attr: {"port": {"network_id": w.ids["shared"],
                                                      a: VALUES[("port", a)](w)}},
                          403 if refused else 201, "PolicyNotAuthorized" if refused else None))
    cases += [
        Case("shared: create port with fixed_ips subnet_id only", "POST", post,
             lambda w: {"port": {"network_id": w.ids["shared"], "fixed_ips": [{"subnet_id": w.subnet_id}]}}, 201),
        Case("shared: create port with fixed_ips ip_address", "POST", post,
             lambda w: {"port": {"network_id": w.ids["shared"], "fixed_ips": [{"ip_address": "10.120.0.60"}]}},
             403, "PolicyNotAuthorized"),
        Case("shared: create port with a network:* owner", "POST", post,
             lambda w: {"port": {"network_id": w.ids["shared"], "device_owner": "network:router_interface"}},
             403, "PolicyNotAuthorized"),
        Case("shared: create port with A's security group", "POST", post,
             lambda w: {"port": {"network_id": w.ids["shared"], "security_groups": [w.ids["a_sg"]]}},
             404, "SecurityGroupNotFound"),
        Case("shared: create port for project A", "POST", post,
             lambda w: {"port": {"network_id": w.ids["shared"], "project_id": w.a.project}}, 400, "HTTPBadRequest"),
        Case("shared: create subnet", "POST", lambda w: "/v2.0/subnets",
             lambda w: {"subnet": {"network_id": w.ids["shared"], "cidr": "10.121.0.0/24", "ip_version": 4}},
             403, "PolicyNotAuthorized"),
    ]
    for attr in writable("port", "update"):
        refused = attr in NET_OWNER_ONLY_ON_UPDATE
        cases.append(Case(f"shared: update own port {attr}", "PUT", mine,
                          lambda w, a=attr: {"port": {a: VALUES[("port", a)](w)}},
                          403 if refused else 200, "PolicyNotAuthorized" if refused else None))
    cases += [
        Case("shared: update own port to a network:* owner", "PUT", mine,
             lambda w: {"port": {"device_owner": "network:dhcp"}}, 403, "PolicyNotAuthorized"),
        Case("shared: update own port with A's security group", "PUT", mine,
             lambda w: {"port": {"security_groups": [w.ids["a_sg"]]}}, 404, "SecurityGroupNotFound"),
    ]
    return cases


def children_of_a() -> list[Case]:
    iface = lambda w: f"/v2.0/routers/{w.ids['b_router']}/add_router_interface"   # noqa: E731
    a_iface = lambda w: f"/v2.0/routers/{w.ids['a_router']}/add_router_interface"  # noqa: E731
    rule = lambda sg, **kw: {"security_group_rule": {"security_group_id": sg, "direction": "ingress",  # noqa: E731
                                                     "protocol": "udp", "port_range_min": 53,
                                                     "port_range_max": 53, **kw}}
    return [
        Case("private: create subnet on A's network", "POST", lambda w: "/v2.0/subnets",
             lambda w: {"subnet": {"network_id": w.ids["a_net"], "cidr": "10.111.0.0/24", "ip_version": 4}},
             403, "PolicyNotAuthorized"),
        Case("private: create port on A's network", "POST", lambda w: "/v2.0/ports",
             lambda w: {"port": {"network_id": w.ids["a_net"]}}, 404, "NetworkNotFound"),
        Case("router: add interface to A's router", "PUT", a_iface,
             lambda w: {"subnet_id": w.ids["a_subnet"]}, 404, "RouterNotFound"),
        Case("router: remove interface of A's router", "PUT",
             lambda w: f"/v2.0/routers/{w.ids['a_router']}/remove_router_interface",
             lambda w: {"subnet_id": w.ids["a_subnet"]}, 404, "RouterNotFound"),
        Case("router: own router, A's private subnet", "PUT", iface,
             lambda w: {"subnet_id": w.ids["a_subnet"]}, 404, "SubnetNotFound"),
        Case("router: own router, the shared subnet (not B's)", "PUT", iface,
             lambda w: {"subnet_id": w.ids["shared_subnet"]}, 400, "BadRequest"),
        Case("router: own router, A's private port", "PUT", iface,
             lambda w: {"port_id": w.ids["a_port"]}, 404, "PortNotFound"),
        Case("router: own router, A's port on the shared network", "PUT", iface,
             lambda w: {"port_id": w.ids["a_shared_port"]}, 404, "PortNotFound"),
        Case("router: own gateway with enable_snat", "PUT", lambda w: f"/v2.0/routers/{w.ids['b_router']}",
             lambda w: {"router": {"external_gateway_info": {"network_id": w.ids["ext"], "enable_snat": False}}},
             403, "PolicyNotAuthorized"),
        Case("router: own gateway with external_fixed_ips", "PUT", lambda w: f"/v2.0/routers/{w.ids['b_router']}",
             lambda w: {"router": {"external_gateway_info": {"network_id": w.ids["ext"],
                                                             "external_fixed_ips": [{"ip_address": "172.31.0.99"}]}}},
             403, "PolicyNotAuthorized"),
        Case("fip: associate A's private port", "POST", lambda w: "/v2.0/floatingips",
             lambda w: {"floatingip": {"floating_network_id": w.ids["ext"], "port_id": w.ids["a_port"]}},
             404, "PortNotFound"),
        Case("fip: associate A's port on the shared network", "POST", lambda w: "/v2.0/floatingips",
             lambda w: {"floatingip": {"floating_network_id": w.ids["ext"], "port_id": w.ids["a_shared_port"]}},
             404, "PortNotFound"),
        Case("fip: a chosen floating_ip_address", "POST", lambda w: "/v2.0/floatingips",
             lambda w: {"floatingip": {"floating_network_id": w.ids["ext"], "floating_ip_address": "172.31.0.98"}},
             403, "PolicyNotAuthorized"),
        Case("sg: rule in A's group", "POST", lambda w: "/v2.0/security-group-rules",
             lambda w: rule(w.ids["a_sg"]), 404, "SecurityGroupNotFound"),
        Case("sg: rule in A's default group", "POST", lambda w: "/v2.0/security-group-rules",
             lambda w: rule(w.ids["a_default_sg"]), 404, "SecurityGroupNotFound"),
        Case("sg: own rule naming A's group as remote", "POST", lambda w: "/v2.0/security-group-rules",
             lambda w: rule(w.ids["b_default_sg"], remote_group_id=w.ids["a_sg"]), 404, "SecurityGroupNotFound"),
        Case("quota: show A's", "GET", lambda w: f"/v2.0/quotas/{w.a.project}", None, 403, "PolicyNotAuthorized"),
        Case("quota: A's defaults", "GET", lambda w: f"/v2.0/quotas/{w.a.project}/default", None, 403,
             "PolicyNotAuthorized"),
        Case("quota: update A's", "PUT", lambda w: f"/v2.0/quotas/{w.a.project}",
             lambda w: {"quota": {"network": 1}}, 403, "PolicyNotAuthorized"),
        Case("quota: delete A's", "DELETE", lambda w: f"/v2.0/quotas/{w.a.project}", None, 403,
             "PolicyNotAuthorized"),
        Case("quota: list", "GET", lambda w: "/v2.0/quotas", None, 403, "PolicyNotAuthorized"),
        # neutron 29.0.0: a member may not delete a compute:* port (the update above made it one)
        Case("shared: delete own compute port", "DELETE", lambda w: f"/v2.0/ports/{w.ids['b_shared_port']}",
             None, 403, "PolicyNotAuthorized"),
        Case("shared: own port back to no owner", "PUT", lambda w: f"/v2.0/ports/{w.ids['b_shared_port']}",
             lambda w: {"port": {"device_owner": ""}}, 200),
        Case("shared: delete own port", "DELETE", lambda w: f"/v2.0/ports/{w.ids['b_shared_port']}", None, 204),
    ]


CASES: list[Case] = [
    *invisible("a_net", "network"), *invisible("a_subnet", "subnet"), *invisible("a_port", "port"),
    *invisible("a_shared_port", "port"), *invisible("a_router", "router"), *invisible("a_fip", "floatingip"),
    *invisible("a_sg", "security_group"), *invisible("a_default_sg", "security_group"),
    *invisible("a_rule", "security_group_rule"),
    *visible_read_only("shared", "network"), *visible_read_only("shared_subnet", "subnet"),
    *ports_on_the_shared_network(), *children_of_a(),
]


@pytest.fixture(scope="module")
def world(api_controller):
    w = World(api_controller.url)
    w.before = w.a_view()
    return w


def test_every_writable_attribute_has_a_value():
    registry.load()
    served = {(r.name, k) for r in registry.RESOURCES if r.name in NOT_FOUND
              for k, a in r.attributes.items() if (a.allow_post or a.allow_put)}
    missing = {x for x in served - set(VALUES)
               if x[1] not in ("tenant_id", "project_id")
               and (x[0], x[1]) not in {("subnet", "network_id"), ("subnet", "ip_version"), ("subnet", "cidr"),
                                        ("subnet", "ipv6_ra_mode"), ("subnet", "ipv6_address_mode"),
                                        ("subnet", "subnetpool_id"), ("port", "network_id"),
                                        ("floatingip", "floating_network_id"), ("floatingip", "floating_ip_address"),
                                        ("floatingip", "subnet_id")}
               and x[0] != "security_group_rule"}
    assert not missing        # create-only attributes above are covered by the create cases


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_member_of_b_against_a(world, case):
    body = case.body(world) if case.body else None
    r = world.b.request(case.method, case.path(world), body)
    assert r.status == case.status, r
    if case.type:
        assert r.error_type == case.type, r


def test_lists_of_b_hold_nothing_of_a(world):
    b, ids = world.b, world.ids
    listed = {coll: {x["id"] for x in b.get(f"/v2.0/{coll}").body[coll.replace("-", "_")]}
              for coll in ("networks", "subnets", "ports", "routers", "floatingips", "security-groups",
                           "security-group-rules")}
    assert ids["shared"] in listed["networks"] and ids["ext"] in listed["networks"]
    assert ids["shared_subnet"] in listed["subnets"]
    for name, (res, id_) in world.objects.items():
        if name not in ("shared", "shared_subnet"):
            assert id_ not in listed[PATHS[res]], name
    for key in ("a_net", "a_subnet", "a_port"):
        res = world.objects[key][0]
        assert b.get(f"/v2.0/{PATHS[res]}?id={ids[key]}").body[PATHS[res]] == []


def test_a_is_unchanged(world):
    """Run last in the module: whatever B tried, A's objects are as they were."""
    assert world.a_view() == world.before
