"""Property-based fuzzing of every GET, POST and PUT of the API (and DELETEs
that must be refused), on SQLite and on PostgreSQL, against a real controller
process over HTTP (issue 18).

Hypothesis draws a caller (admin, a member of project A or B, a reader, an
identity the database cannot hold), an
operation (list with filters/sort/paging, show, create single or bulk,
update, member actions, tags, quotas, a delete with a body or of an unknown
id) and its input: plausible values for
each attribute (ids of existing objects, cidrs, addresses, MACs) mixed with
hostile ones (huge integers, NaN, control characters, lone surrogates,
wrong types, nested junk). Every answer must hold:

* never a 5xx;
* every 4xx is JSON in the NeutronError shape {"type", "message", "detail"};
* a refused request (4xx) changes nothing in the database.

What a request creates becomes a target of the later ones.

Examples are bounded (QC_FUZZ_EXAMPLES, default 400 per database) and drawn
from a fixed seed (the same examples on every run of the same code, so the
suite stays deterministic); QC_FUZZ_SEED=<n> explores other examples.
"""
from __future__ import annotations

import json
import os
import time
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, inspect, text

from controller.api import registry
from controller.db.session import _with_driver
from tests.api.conftest import ADMIN_ROLES, Http, new_project
from tests.support.controller import ControllerProcess

EXAMPLES = int(os.environ.get("QC_FUZZ_EXAMPLES", "400"))
SEED = os.environ.get("QC_FUZZ_SEED")

# Tables the API writes (what a refused request must leave alone). Others are
# written in the background (HA heartbeats, learned neighbours, local VLANs).
API_TABLES = ("networks", "subnets", "ipallocations", "ports", "port_security_groups",
              "securitygroups", "securitygrouprules", "default_security_groups", "routers",
              "floatingips", "quotas", "tags", "segment_allocations", "nodes",
              "metadata_addresses")


def _quote(text: str, safe: str = "") -> str:
    # errors=surrogatepass: lone surrogates go on the wire as their (invalid) UTF-8 bytes
    return quote(text, safe=safe, errors="surrogatepass")


def _urlencode(pairs) -> str:
    return urlencode(pairs, errors="surrogatepass")


# --- the world the requests act on ----------------------------------------------------

class World:
    def __init__(self, ctl: ControllerProcess, db_url: str):
        self.ctl = ctl
        self.engine = create_engine(_with_driver(db_url))
        existing = set(inspect(self.engine).get_table_names())
        self.tables = [t for t in API_TABLES if t in existing]
        self.admin = Http(ctl.url, project="admin-project", roles=ADMIN_ROLES)
        self.a = Http(ctl.url, project=new_project())
        self.b = Http(ctl.url, project=new_project())
        self.reader = Http(ctl.url, project=self.a.project, roles="reader")
        self.ids: dict[str, list[str]] = {}
        self.seed()

    def _make(self, client, coll, body, kind):
        r = client.post(f"/v2.0/{coll}", body)
        assert r.status == 201, (coll, body, r)
        obj = next(iter(r.body.values()))
        self.ids.setdefault(kind, []).append(obj["id"])
        return obj

    def seed(self):
        a, b, admin = self.a, self.b, self.admin
        ext = self._make(admin, "networks", {"network": {"router:external": True}}, "network")
        self._make(admin, "subnets", {"subnet": {"network_id": ext["id"], "cidr": "172.30.0.0/24",
                                                 "ip_version": 4}}, "subnet")
        shared = self._make(admin, "networks", {"network": {"shared": True, "project_id": a.project}},
                            "network")
        nets = {}
        for who, name, cidr in ((a, "a", "10.10.0.0/24"), (b, "b", "10.30.0.0/24")):
            nets[name] = self._make(who, "networks", {"network": {"name": name}}, "network")
            sub = self._make(who, "subnets", {"subnet": {"network_id": nets[name]["id"], "cidr": cidr,
                                                         "ip_version": 4}}, "subnet")
            self._make(who, "ports", {"port": {"network_id": nets[name]["id"]}}, "port")
            nets[name + "_subnet"] = sub
        self._make(a, "subnets", {"subnet": {"network_id": shared["id"], "cidr": "10.20.0.0/24",
                                             "ip_version": 4}}, "subnet")
        self._make(a, "subnets", {"subnet": {"network_id": nets["a"]["id"], "cidr": "fd00:10::/64",
                                             "ip_version": 6, "ipv6_address_mode": "slaac",
                                             "ipv6_ra_mode": "slaac"}}, "subnet")
        port_a = self._make(a, "ports", {"port": {"network_id": nets["a"]["id"]}}, "port")
        self._make(b, "ports", {"port": {"network_id": shared["id"]}}, "port")
        router = self._make(a, "routers", {"router": {"external_gateway_info": {
            "network_id": ext["id"]}}}, "router")
        r = a.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                  {"subnet_id": nets["a_subnet"]["id"]})
        assert r.status == 200, r
        self._make(a, "floatingips", {"floatingip": {"floating_network_id": ext["id"],
                                                     "port_id": port_a["id"]}}, "floatingip")
        sg = self._make(a, "security-groups", {"security_group": {"name": "web"}}, "security_group")
        self._make(a, "security-group-rules", {"security_group_rule": {
            "security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp",
            "port_range_min": 80, "port_range_max": 80}}, "security_group_rule")
        self.ids["security_group"] += [g["id"] for g in b.get("/v2.0/security-groups").body["security_groups"]]
        admin.get("/v2.0/security-groups")     # the admin project's default group, made on first list

    def learn(self, body: dict) -> None:
        """Objects a request created become targets of the next requests (an
        update of a port made with five fixed IPs, a rule in a new group)."""
        registry.load()
        by_key = {k: r.name for r in registry.RESOURCES for k in (r.name, r.collection)}
        for key, value in body.items():
            for obj in value if isinstance(value, list) else [value]:
                if key in by_key and isinstance(obj, dict) and "id" in obj:
                    self.ids.setdefault(by_key[key], []).append(obj["id"])

    def snapshot(self) -> dict:
        out = {}
        with self.engine.connect() as conn:
            for t in self.tables:
                rows = conn.execute(text(f"SELECT * FROM {t}")).all()
                out[t] = sorted(repr(tuple(r)) for r in rows)
            out["changelog"] = conn.execute(text("SELECT max(revision) FROM changelog")).scalar()
        return out


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory):
    state = str(tmp_path_factory.mktemp("fuzz"))
    url = request.getfixturevalue("postgres").new_database() if request.param == "postgresql" else ""
    ctl = ControllerProcess(state, db_url=url).start()
    try:
        w = World(ctl, url or f"sqlite:///{state}/quantum.db")
        yield w
        w.engine.dispose()
    finally:
        ctl.stop()


# --- what to send ----------------------------------------------------------------------

HOSTILE_SCALARS = [
    0, -1, 1, 4, 6, 65535, 65536, 2 ** 31 - 1, 2 ** 31, -2 ** 31 - 1, 2 ** 63, 10 ** 30, -10 ** 30,
    1.5, 1e308, -0.0, float("nan"), float("inf"), True, False, None, "", " ", "0", "1", "true",
    "None", "x" * 256, "\x00", "a\nb", "\x1b[31m", "\ud800", "é漢字", "../..", "%00", "'; --",
    "10.0.0.1", "10.0.0.0/24", "10.0.0.5/24", "::/0", "0.0.0.0/0", "fd00::1", "1", "ff:ff:ff:ff:ff:ff",
    "fa:16:3e:00:00:01", "network:dhcp", "network:router_interface", "compute:nova", "tcp",
    "ingress", "IPv6", "slaac", "00000000-0000-4000-8000-000000000000",
]


EDGE_INTS = [2 ** 31 - 1, 2 ** 31, -2 ** 31 - 1, 2 ** 32, 2 ** 63 - 1, 2 ** 63, -2 ** 63 - 1, 2 ** 64, 10 ** 30]


def hostile():
    scalars = st.one_of(st.sampled_from(HOSTILE_SCALARS), st.sampled_from(EDGE_INTS),
                        st.integers(-2 ** 70, 2 ** 70),
                        st.text(max_size=12), st.floats())
    return st.recursive(scalars, lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=8), kids, max_size=3)),
        max_leaves=6)


def pick(world: World, kind: str | None):
    """An id of an existing object of a kind (None: any kind). The draw is a
    plain index, resolved against the ids known when the request is built:
    what earlier requests created joins the pool without making Hypothesis's
    data generation depend on that state."""
    def resolve(i: int) -> str:
        pool = (world.ids.get(kind) if kind else [x for v in world.ids.values() for x in v]) or [
            "00000000-0000-4000-8000-000000000000"]
        return pool[i % len(pool)]
    return st.integers(0, 255).map(resolve)


def plausible(world: World, key: str):
    """Values that get past the first checks for an attribute named `key`."""
    any_id = pick(world, None)
    ipv4 = st.builds(lambda a, b: f"10.{a}.0.{b}", st.sampled_from([10, 20, 30, 99]), st.integers(0, 255))
    fixed = st.fixed_dictionaries({}, optional={"subnet_id": pick(world, "subnet"),
                                                "ip_address": ipv4})
    table = {
        "network_id": pick(world, "network"), "floating_network_id": pick(world, "network"),
        "subnet_id": pick(world, "subnet"), "port_id": pick(world, "port"),
        "security_group_id": pick(world, "security_group"),
        "remote_group_id": pick(world, "security_group"),
        "security_groups": st.lists(pick(world, "security_group"), max_size=2),
        "project_id": st.sampled_from([world.a.project, world.b.project, "admin-project"]),
        "tenant_id": st.sampled_from([world.a.project, world.b.project]),
        "cidr": st.sampled_from(["10.40.0.0/24", "10.41.0.9/24", "fd00:41::/64", "10.10.0.0/25",
                                 "10.42.0.0/30", "224.0.0.0/24", "0.0.0.0/0"]),
        "ip_version": st.sampled_from([4, 6, "4", 5]),
        "gateway_ip": st.one_of(ipv4, st.none()), "fixed_ip_address": ipv4,
        "floating_ip_address": st.builds(lambda n: f"172.30.0.{n}", st.integers(0, 255)),
        "fixed_ips": st.lists(fixed, max_size=7),
        "allowed_address_pairs": st.lists(st.fixed_dictionaries(
            {"ip_address": st.sampled_from(["10.10.0.50", "0.0.0.0/0", "fd00::5"])},
            optional={"mac_address": st.sampled_from(["fa:16:3e:00:00:05", "1"])}), max_size=3),
        "allocation_pools": st.lists(st.fixed_dictionaries({"start": ipv4, "end": ipv4}), max_size=2),
        "dns_nameservers": st.lists(ipv4, max_size=6),
        "host_routes": st.lists(st.fixed_dictionaries({"destination": st.just("10.50.0.0/24"),
                                                       "nexthop": ipv4}), max_size=2),
        "mac_address": st.sampled_from(["fa:16:3e:11:22:33", "FA-16-3E-11-22-34", "1", "00:00:00:00:00:00"]),
        "external_gateway_info": st.fixed_dictionaries(
            {"network_id": pick(world, "network")},
            optional={"enable_snat": st.booleans(),
                      "external_fixed_ips": st.lists(st.fixed_dictionaries({"ip_address": st.just("172.30.0.77")}),
                                                     max_size=1)}),
        "direction": st.sampled_from(["ingress", "egress"]), "ethertype": st.sampled_from(["IPv4", "ipv6"]),
        "protocol": st.sampled_from(["tcp", "udp", "icmp", "6", "any", None]),
        "port_range_min": st.integers(-1, 70000), "port_range_max": st.integers(-1, 70000),
        "remote_ip_prefix": st.sampled_from(["10.0.0.0/8", "fd00::/8", "10.0.0.1"]),
        "device_owner": st.sampled_from(["", "compute:nova", "network:dhcp", "network:router_interface"]),
        "device_id": st.one_of(any_id, st.just("")),
        "provider:network_type": st.sampled_from(["vlan", "gre", "vxlan", "flat", "local"]),
        "provider:physical_network": st.sampled_from(["physnet1", "nope"]),
        "provider:segmentation_id": st.integers(0, 5000),
        "tags": st.lists(st.sampled_from(["a", "b", "x,y", ""]), max_size=3),
        "ipv6_ra_mode": st.sampled_from(["slaac", "dhcpv6-stateful"]),
        "ipv6_address_mode": st.sampled_from(["slaac", "dhcpv6-stateless"]),
    }
    if key in table:
        return table[key]
    if key in ("name", "description"):
        return st.text(max_size=20)
    return st.booleans()


def item_for(world: World, writable: list[str]):
    """A resource item: a few of its writable attributes (plus keys it does not
    take), each with a plausible value two times in three, else a hostile one."""
    keys = sorted(writable) + ["bogus", "id", "status"]
    return st.lists(st.sampled_from(keys), max_size=5, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries(
            {k: st.one_of(plausible(world, k), plausible(world, k), hostile()) for k in chosen}))


@st.composite
def requests(draw, world: World):
    registry.load()
    res = draw(st.sampled_from(registry.RESOURCES))
    coll = f"/v2.0/{res.path}"
    known = pick(world, res.name)
    member_id = draw(st.one_of(known, known,
                               st.text(min_size=1, max_size=20)))
    member = f"{coll}/{_quote(member_id, safe='')}"
    op = draw(st.sampled_from(["list", "list", "show", "create", "create", "bulk", "update", "update",
                               "action", "tags", "quota", "raw", "delete"]))
    if op == "list":
        keys = list(res.attributes) + ["fields", "sort_key", "sort_dir", "limit", "marker",
                                        "page_reverse", "tags", "not-tags-any", "bogus"]
        words = sorted(res.attributes) + ["asc", "desc", "True", "false", "ip_address=10.10.0.5",
                                          "subnet_id=x", "ip_address_substr=10.", "a,b"]
        int_keys = ["limit", "revision_number"] + [k for k in ("mtu", "ip_version", "port_range_min",
                                                               "provider:segmentation_id") if k in res.attributes]
        vals = st.one_of(st.sampled_from(HOSTILE_SCALARS).map(str), st.sampled_from(EDGE_INTS).map(str),
                         st.integers(-2 ** 70, 2 ** 70).map(str), st.text(max_size=10),
                         known, st.sampled_from(words))
        pair = st.one_of(st.tuples(st.sampled_from(keys), vals),
                         st.tuples(st.sampled_from(int_keys), st.sampled_from(EDGE_INTS).map(str)))
        query = draw(st.lists(pair, max_size=5))
        return "GET", coll + ("?" + _urlencode(query) if query else ""), None
    if op == "show":
        fields = draw(st.lists(st.sampled_from(list(res.attributes) + ["x"]), max_size=2))
        return "GET", member + ("?" + _urlencode([("fields", f) for f in fields]) if fields else ""), None
    if op in ("create", "bulk"):
        writable = [k for k, a in res.attributes.items() if a.allow_post]
        if op == "bulk":
            items = draw(st.lists(item_for(world, writable), min_size=1, max_size=3))
            return "POST", coll, {res.collection: items}
        return "POST", coll, {res.name: draw(item_for(world, writable))}
    if op == "update":
        writable = [k for k, a in res.attributes.items() if a.allow_put]
        return "PUT", member, {res.name: draw(item_for(world, writable))}
    if op == "action":
        action = draw(st.sampled_from(["add_router_interface", "remove_router_interface"]))
        body = draw(st.fixed_dictionaries({}, optional={
            "subnet_id": st.one_of(pick(world, "subnet"), hostile()),
            "port_id": st.one_of(pick(world, "port"), hostile())}))
        router = draw(st.one_of(pick(world, "router"), st.just(member_id)))
        return "PUT", f"/v2.0/routers/{_quote(router, safe='')}/{action}", body
    if op == "tags":
        tag = draw(st.one_of(st.none(), st.text(min_size=1, max_size=8)))
        path = f"{member}/tags" + (f"/{_quote(tag, safe='')}" if tag else "")
        if tag is None and draw(st.booleans()):
            return "PUT", path, {"tags": draw(st.one_of(st.lists(st.text(max_size=6), max_size=4), hostile()))}
        return draw(st.sampled_from(["GET", "PUT"])), path, None
    if op == "quota":
        project = draw(st.sampled_from([world.a.project, world.b.project, member_id]))
        if draw(st.booleans()):
            return "GET", f"/v2.0/quotas/{_quote(project, safe='')}", None
        quota = draw(st.dictionaries(st.sampled_from(["network", "port", "subnet", "router", "bogus", "force"]),
                                     st.one_of(st.integers(-5, 2 ** 40), hostile()), max_size=3))
        return "PUT", f"/v2.0/quotas/{_quote(project, safe='')}", {"quota": quota}
    if op == "delete":
        # Never a known object without a body (the world stays): a body, or an unknown id.
        if draw(st.booleans()):
            return "DELETE", member, draw(hostile().filter(lambda b: b is not None))
        return "DELETE", f"{coll}/{_quote(draw(st.text(min_size=1, max_size=20)), safe='')}", None
    # raw: not a JSON object, or the wrong envelope
    body = draw(st.one_of(hostile(), st.just({res.name: []}), st.just({res.collection: []}),
                          st.just({res.collection: {}}), st.just({res.name: None})))
    return draw(st.sampled_from(["POST", "PUT"])), draw(st.sampled_from([coll, member])), body


# --- the property ----------------------------------------------------------------------

STATS: dict[str, dict] = {}


def check(world: World, caller: Http, method: str, path: str, body) -> int:
    raw = json.dumps(body).encode() if body is not None else None
    before = world.snapshot()
    r = caller.request(method, path, raw=raw)
    what = f"{method} {path} {raw[:300] if raw else ''} as {caller.project}/{caller.roles} -> {r!r}"
    assert r.status < 500, what
    if 400 <= r.status < 500:
        assert r.headers.get("Content-Type") == "application/json", what
        assert isinstance(r.body, dict) and set(r.body) == {"NeutronError"}, what
        err = r.body["NeutronError"]
        assert set(err) == {"type", "message", "detail"} and err["detail"] == "", what
        assert isinstance(err["type"], str) and isinstance(err["message"], str) and err["type"], what
        after = world.snapshot()
        changed = [t for t in after if after[t] != before[t]]
        assert not changed, f"refused request changed {changed}: {what}"
    if method == "POST" and r.status == 201:
        world.learn(r.body)
    return r.status


def test_fuzz_api(world, request):
    # and, one time in seven, identities the database cannot hold (NUL, over 255 characters)
    callers = [world.admin, world.a, world.b, world.reader] * 3 + [
        Http(world.ctl.url, project="p\x00q"), Http(world.ctl.url, project="p" * 300)]
    counts = STATS.setdefault(request.node.callspec.id, {"examples": 0, "2xx": 0, "4xx": 0, "seconds": 0.0})
    t0 = time.monotonic()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=SEED is None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(st.sampled_from(callers), requests(world))
    def run(caller, req):
        status = check(world, caller, *req)
        counts["examples"] += 1
        counts["2xx" if status < 300 else "4xx"] += 1

    if SEED is not None:
        run = seed(int(SEED))(run)
    run()
    counts["seconds"] = round(time.monotonic() - t0, 1)
    print(f"\nfuzz {request.node.callspec.id}: {counts}")
    assert counts["4xx"] and counts["2xx"], counts      # both refusals and successes were exercised
