"""Filters, fields, sorting, pagination links, bulk create, and quotas."""
from urllib.parse import parse_qs, urlsplit

from tests.api.test_networks import create_net


def test_filters_fields_and_sorting(member):
    nets = [create_net(member, name=n, admin_state_up=(n != "c")) for n in ("a", "b", "c")]
    ids = {n["name"]: n["id"] for n in nets}

    def names(q):
        return [n["name"] for n in member.get(f"/v2.0/networks?{q}").body["networks"]]
    assert sorted(names("name=a&name=c")) == ["a", "c"]                    # repeated key: OR
    assert names("name=a&name=c&admin_state_up=False") == ["c"]           # keys: AND
    assert sorted(names("admin_state_up=true")) == ["a", "b"]
    assert names(f"id={ids['b']}") == ["b"]
    assert names("sort_key=name&sort_dir=desc") == ["c", "b", "a"]
    assert names("sort_key=admin_state_up&sort_dir=asc&sort_key=name&sort_dir=desc") == ["c", "b", "a"]
    r = member.get(f"/v2.0/networks?id={ids['a']}&fields=id&fields=name")
    assert r.body["networks"] == [{"id": ids["a"], "name": "a"}]
    r = member.get(f"/v2.0/networks/{ids['a']}?fields=name&fields=nonexistent")
    assert r.body == {"network": {"name": "a"}}
    assert names("description=") == ["a", "b", "c"] or sorted(names("description=")) == ["a", "b", "c"]

    def err(q):
        r = member.get(f"/v2.0/networks?{q}")
        return r.status, r.error_type, r.message
    assert err("colour=red") == (400, "HTTPBadRequest", "['colour'] is invalid attribute for filtering")
    assert err("sort_key=name") == (400, "HTTPBadRequest", "The number of sort_keys and sort_dirs must be same")
    assert err("sort_key=name&sort_dir=up")[:2] == (400, "HTTPBadRequest")
    assert err("sort_key=subnets&sort_dir=asc") == (400, "HTTPBadRequest",
                                                    "['subnets'] is invalid attribute for sort_keys")
    assert err("limit=-1")[:2] == (400, "BadRequest")
    assert err("limit=x")[2] == "Bad limit request: Limit must be an integer 0 or greater and not 'x'."


def test_pagination_links(member):
    for i in range(5):
        create_net(member, name=f"page{i}")
    r = member.get("/v2.0/networks?limit=2&sort_key=name&sort_dir=asc")
    page1 = r.body["networks"]
    assert [n["name"] for n in page1] == ["page0", "page1"]
    links = {l["rel"]: l["href"] for l in r.body["networks_links"]}
    assert set(links) == {"next", "previous"}
    nxt = urlsplit(links["next"])
    q = parse_qs(nxt.query)
    assert q["marker"] == [page1[-1]["id"]] and q["limit"] == ["2"] and q["sort_key"] == ["name"]
    assert "page_reverse" not in q
    assert parse_qs(urlsplit(links["previous"]).query)["page_reverse"] == ["True"]
    seen = [n["name"] for n in page1]
    href = links["next"]
    while href:
        r = member.get(href[href.index("/v2.0"):])
        seen += [n["name"] for n in r.body["networks"]]
        href = {l["rel"]: l["href"] for l in r.body["networks_links"]}.get("next")
    assert seen == [f"page{i}" for i in range(5)]
    last = r.body["networks_links"]
    assert [l["rel"] for l in last] == ["previous"]
    # page backwards from the marker
    r = member.get(f"/v2.0/networks?limit=2&sort_key=name&sort_dir=asc&marker={page1[-1]['id']}"
                   "&page_reverse=True")
    assert [n["name"] for n in r.body["networks"]] == ["page0"]
    r = member.get("/v2.0/networks?limit=2&marker=11111111-2222-3333-4444-555555555555")
    assert r.status == 404 and r.error_type == "NetworkNotFound"
    assert "networks_links" not in member.get("/v2.0/networks").body


def test_bulk_create_is_atomic(member):
    r = member.post("/v2.0/networks", {"networks": [{"name": "bulk1"}, {"name": "bulk2"}]})
    assert r.status == 201 and [n["name"] for n in r.body["networks"]] == ["bulk1", "bulk2"]
    net = r.body["networks"][0]
    sub = member.post("/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.30.0.0/24",
                                                   "ip_version": 4}}).body["subnet"]
    before = member.get(f"/v2.0/ports?network_id={net['id']}").body["ports"]
    r = member.post("/v2.0/ports", {"ports": [
        {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.30.0.40"}]},
        {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.30.0.41"}]},
        {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.30.0.40"}]}]})
    assert r.status == 409 and r.error_type == "IpAddressAlreadyAllocated"
    assert member.get(f"/v2.0/ports?network_id={net['id']}").body["ports"] == before
    r = member.post("/v2.0/ports", {"ports": [{"network_id": net["id"]}, {"network_id": net["id"], "bogus": 1}]})
    assert r.status == 400
    r = member.post("/v2.0/ports", {"ports": [{"network_id": net["id"], "name": "p1"},
                                              {"network_id": net["id"], "name": "p2",
                                               "fixed_ips": [{"subnet_id": sub["id"]}]}]})
    assert r.status == 201 and [p["name"] for p in r.body["ports"]] == ["p1", "p2"]


def core(quota):
    """The core resources' limits (other modules register more quota resources)."""
    return {k: quota[k] for k in ("network", "subnet", "port")}


def test_quotas_api_and_enforcement(api_controller, admin, member):
    pid = member.project
    r = member.get(f"/v2.0/quotas/{pid}")
    assert r.status == 200 and core(r.body["quota"]) == {"network": 100, "subnet": 100, "port": 500}
    assert member.get(f"/v2.0/quotas/{pid}/default").body["quota"]["port"] == 500
    assert member.get("/v2.0/quotas/project").body == {"project": {"project_id": pid}}
    assert member.get("/v2.0/quotas/tenant").body == {"tenant": {"tenant_id": pid}}
    assert member.get("/v2.0/quotas/someone-else").status == 403
    assert member.put(f"/v2.0/quotas/{pid}", {"quota": {"network": 1}}).status == 403
    r = admin.put(f"/v2.0/quotas/{pid}", {"quota": {"network": 1, "port": "3"}})
    assert r.status == 200 and core(r.body["quota"]) == {"network": 1, "subnet": 100, "port": 3}
    assert member.get(f"/v2.0/quotas/{pid}").body["quota"]["network"] == 1
    entry = [q for q in admin.get("/v2.0/quotas").body["quotas"] if q["project_id"] == pid]
    assert len(entry) == 1 and entry[0]["project_id"] == entry[0]["tenant_id"] == pid
    assert core(entry[0]) == {"network": 1, "subnet": 100, "port": 3}
    net = create_net(member)
    r = member.post("/v2.0/networks", {"network": {}})
    assert r.status == 409 and r.error_type == "OverQuota"
    assert r.message == "Quota exceeded for resources: ['network']."
    # quota is checked before policy
    r = member.post("/v2.0/networks", {"network": {"shared": True}})
    assert r.status == 409
    member.post("/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.40.0.0/24", "ip_version": 4}})
    r = member.post("/v2.0/ports", {"ports": [{"network_id": net["id"]}] * 4})
    assert r.status == 409 and r.error_type == "OverQuota"
    r = member.post("/v2.0/ports", {"ports": [{"network_id": net["id"]}] * 3})
    assert r.status == 201                  # the DHCP port does not count
    r = admin.put(f"/v2.0/quotas/{pid}", {"quota": {"port": 2}})
    assert r.status == 400 and "must be greater than or equal to already used 3" in r.message
    assert admin.put(f"/v2.0/quotas/{pid}", {"quota": {"port": 2, "force": True}}).status == 200
    for bad, err in [({"network": "many"}, "InvalidInput"), ({"network": -2}, "HTTPBadRequest"),
                     ({"widgets": 1}, "HTTPBadRequest")]:
        r = admin.put(f"/v2.0/quotas/{pid}", {"quota": bad})
        assert r.status == 400 and r.error_type == err, (bad, r)
    assert admin.post("/v2.0/quotas", {"quota": {}}).status == 501
    assert member.delete(f"/v2.0/quotas/{pid}").status == 403
    assert admin.delete(f"/v2.0/quotas/{pid}").status == 204
    r = admin.delete(f"/v2.0/quotas/{pid}")
    assert r.status == 404 and r.error_type == "TenantQuotaNotFound"
    assert member.get(f"/v2.0/quotas/{pid}").body["quota"]["network"] == 100
