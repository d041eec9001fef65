"""Version documents, extensions, methods, error bodies and bad input:
a clear 4xx NeutronError, never a 500, and the database unchanged."""
import json

import pytest

from tests.api.conftest import Http


def test_version_documents_and_links(api_controller):
    anon = Http(api_controller.url)
    r = anon.get("/")
    assert r.status == 200
    assert r.body["versions"] == [{"id": "v2.0", "status": "CURRENT",
                                   "links": [{"rel": "self", "href": api_controller.url + "/v2.0/"}]}]
    r = anon.get("/v2.0/")
    assert r.status == 200
    names = {x["name"]: x for x in r.body["resources"]}
    assert {"network", "subnet", "port"} <= set(names)
    assert names["network"]["links"][0]["href"] == api_controller.url + "/v2.0/networks"
    assert anon.get("/v2.0").status == 404
    assert anon.post("/", {}).status == 405
    r = anon.get("/", headers={"X-Forwarded-Proto": "https"})
    assert r.body["versions"][0]["links"][0]["href"].startswith("https://")


def test_extensions_advertise_what_is_implemented(api_controller):
    anon = Http(api_controller.url)
    aliases = {e["alias"] for e in anon.get("/v2.0/extensions").body["extensions"]}
    assert {"provider", "external-net", "quotas", "project-id", "pagination", "sorting",
            "standard-attr-description", "standard-attr-revisions", "standard-attr-timestamp",
            "standard-attr-tag", "filter-validation", "empty-string-filtering", "revision-if-match",
            "port-security", "net-mtu", "binding"} <= aliases
    # issue 3 (L3 and security groups); static routes are not implemented
    assert {"router", "ext-gw-mode", "security-group", "allowed-address-pairs"} <= aliases
    assert "extraroute" not in aliases
    r = anon.get("/v2.0/extensions/provider")
    assert r.status == 200 and r.body["extension"]["alias"] == "provider"
    assert set(r.body["extension"]) == {"alias", "name", "description", "updated", "links"}
    assert anon.get("/v2.0/extensions/no-such-thing").status == 404
    assert anon.post("/v2.0/extensions", {}).status == 404


def test_methods_suffix_and_unknown_collections(admin):
    net = admin.post("/v2.0/networks", {"network": {"name": "proto"}}).body["network"]
    r = admin.get("/v2.0/networks.json")
    assert r.status == 200 and net["id"] in [n["id"] for n in r.body["networks"]]
    assert admin.get(f"/v2.0/networks/{net['id']}.json").body["network"]["id"] == net["id"]
    assert admin.request("PATCH", "/v2.0/networks").status == 405
    assert admin.request("HEAD", "/v2.0/networks").status == 405
    assert admin.post(f"/v2.0/networks/{net['id']}", {"network": {}}).status == 405
    r = admin.request("PATCH", f"/v2.0/networks/{net['id']}")
    assert r.status == 405 and r.error_type == "HTTPMethodNotAllowed"
    r = admin.put("/v2.0/networks", {"network": {}})
    assert r.status == 404 and r.message == "Network None could not be found."
    r = admin.get("/v2.0/widgets")
    assert r.status == 404 and r.headers["Content-Type"] == "application/json"
    r = admin.get("/v2.0/networks/not-a-network-name")
    assert r.status == 404 and r.error_type == "NetworkNotFound"
    r = admin.request("DELETE", f"/v2.0/networks/{net['id']}", raw=b'{"network": {}}')
    assert r.status == 400 and "not supported in DELETE" in r.message
    r = admin.delete(f"/v2.0/networks/{net['id']}")
    assert r.status == 204 and r.body is None and "Content-Type" not in r.headers


BAD_BODIES = [
    (b"", "Resource body required"),
    (b"{not json", "Body contains invalid data"),
    (b"[1, 2]", "Body contains invalid data"),
    (b'"string"', "Body contains invalid data"),
    (b"\xff\xfe\x00garbage", "Body contains invalid data"),
    (b"[" * 100000 + b"]" * 100000, "Body contains invalid data"),
    (b'{"net": {}}', "Unable to find 'network' in request body"),
    (b'{"network": []}', "Body contains invalid data"),
    (b'{"network": {"name": 5}}', "Invalid input for name"),
    (b'{"network": {"name": "' + b"x" * 256 + b'"}}', "exceeds maximum length of 255"),
    (b'{"network": {"admin_state_up": "perhaps"}}', "cannot be converted to boolean"),
    (b'{"network": {"colour": "red"}}', "Unrecognized attribute(s) 'colour'"),
    (b'{"network": {"id": "x"}}', "Attribute 'id' not allowed in POST"),
    (b'{"network": {"name": "a\\u0000b"}}', "NUL"),
    (b'{"network": {"name": "\\ud800"}}', "unicode"),
    (b'{"network": {"description": {"a": 1}}}', "Invalid input for description"),
    (b'{"networks": []}', "Resources required"),
    (b'{"network": {"project_id": "a", "tenant_id": "b"}}', "do not match"),
    (b'{"network": {"mtu": 9000}}', "Attribute 'mtu' not allowed in POST"),
]


@pytest.mark.parametrize("raw,message", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_bad_bodies_are_clear_400s_and_change_nothing(admin, raw, message):
    before = admin.get("/v2.0/networks?fields=id").body["networks"]
    r = admin.request("POST", "/v2.0/networks", raw=raw)
    assert r.status == 400, r
    assert r.headers["Content-Type"] == "application/json"
    assert set(r.body["NeutronError"]) == {"type", "message", "detail"}
    assert message in r.message
    assert admin.get("/v2.0/networks?fields=id").body["networks"] == before


def test_wrong_types_on_subnets_and_ports(admin):
    net = admin.post("/v2.0/networks", {"network": {}}).body["network"]
    bad_subnets = [
        ({"ip_version": "four", "cidr": "10.9.0.0/24"}, "InvalidInput"),
        ({"ip_version": 5, "cidr": "10.9.0.0/24"}, "HTTPBadRequest"),
        ({"ip_version": 4, "cidr": "10.9.0.0/33"}, "InvalidInput"),
        ({"ip_version": 4, "cidr": ["10.9.0.0/24"]}, "InvalidInput"),
        ({"ip_version": 4, "cidr": "10.9.0.0/24", "allocation_pools": "all"}, "HTTPBadRequest"),
        ({"ip_version": 4, "cidr": "10.9.0.0/24", "dns_nameservers": ["8.8.8.300"]}, "HTTPBadRequest"),
        ({"ip_version": 4, "cidr": "10.9.0.0/24", "host_routes": [{"destination": "x"}]}, "HTTPBadRequest"),
        ({"ip_version": 4, "cidr": "10.9.0.0/24", "gateway_ip": 17}, "HTTPBadRequest"),
        ({"ip_version": 4, "cidr": "10.9.0.0/24", "enable_dhcp": [1]}, "InvalidInput"),
        ({"ip_version": 4, "cidr": "10.9.0.0/24", "network_id": "nope"}, "HTTPBadRequest"),
    ]
    for extra, err_type in bad_subnets:
        body = {"network_id": net["id"], **extra}
        r = admin.post("/v2.0/subnets", {"subnet": body})
        assert r.status == 400 and r.error_type == err_type, (extra, r)
    bad_ports = [{"mac_address": "zz:zz"}, {"mac_address": "00:00:00:00:00:00"},
                 {"fixed_ips": [{"ip_address": "1.2.3"}]}, {"fixed_ips": "10.0.0.5"},
                 {"fixed_ips": [{"subnet_id": "nope"}]}, {"admin_state_up": None},
                 {"device_id": 5}, {"tags": ["a,b"]}, {"binding:host_id": "h1"}]
    for extra in bad_ports:
        r = admin.post("/v2.0/ports", {"port": {"network_id": net["id"], **extra}})
        assert r.status == 400, (extra, r)
    assert admin.get(f"/v2.0/subnets?network_id={net['id']}").body["subnets"] == []
    assert admin.get(f"/v2.0/ports?network_id={net['id']}").body["ports"] == []


def test_oversized_body_is_413(api_controller, admin):
    big = json.dumps({"network": {"name": "x", "description": "y" * (1024 * 1024 + 10)}}).encode()
    r = admin.request("POST", "/v2.0/networks", raw=big)
    assert r.status == 413 and r.error_type == "HTTPRequestEntityTooLarge"
    assert admin.get("/v2.0/").status == 200


def test_odd_urls_and_query_strings_are_4xx(admin):
    for path in ["/v2.0/networks/%00", "/v2.0/networks/%ED%A0%80", "/v2.0/networks?name=%00",
                 "/v2.0/networks?name=%ff%fe", "/v2.0/networks/" + "a" * 5000,
                 "/v2.0/ports?fixed_ips=bogus", "/v2.0/networks?admin_state_up=maybe",
                 "/v2.0/networks?mtu=big", "/v2.0/networks?shared=%00"]:
        r = admin.get(path)
        assert r.status in (200, 400, 404), (path, r)
    assert admin.get("/v2.0/networks?name=%00").status == 400


def test_unexpected_errors_never_leak_tracebacks(api_controller, admin):
    for path in ["/v2.0/networks/x/tags/" + "t" * 300, "/v2.0/quotas/p/unknown", "/v2.0/nodes?x=1"]:
        r = admin.get(path)
        assert r.status < 500, (path, r)
    assert "Traceback" not in api_controller.log_text()


def test_connections_are_kept_alive_between_requests(api_controller):
    """One connection serves many requests (clients reuse it); a body the
    API did not need is skipped, not parsed as the next request; an
    oversized body and `Connection: close` end the connection."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", api_controller.api_port, timeout=30)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        assert r.status == 200 and r.getheader("Connection") != "close"
        r.read()
        sock = c.sock
        c.request("GET", "/v2.0/networks", body=b'{"ignored": true}',
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 200 and "networks" in json.loads(r.read())
        c.request("GET", "/v2.0/networks/" + "x" * 300)     # answered without reading on
        r = c.getresponse()
        assert r.status == 404
        r.read()
        c.request("HEAD", "/")          # 405, and no body after the headers
        r = c.getresponse()
        assert r.status == 405 and r.read() == b""
        c.request("DELETE", "/v2.0/networks/nope", body=b"{}")
        r = c.getresponse()
        assert r.status == 400 and r.read()
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        assert r.status == 200 and c.sock is sock      # all on the first connection
        c.request("GET", "/", headers={"Connection": "close"})
        r = c.getresponse()
        assert r.getheader("Connection") == "close"
        r.read()
    finally:
        c.close()
    c = http.client.HTTPConnection("127.0.0.1", api_controller.api_port, timeout=30)
    try:
        c.request("POST", "/v2.0/networks", body=b"x" * (2 * 1024 * 1024),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 413 and r.getheader("Connection") == "close"
    finally:
        c.close()
