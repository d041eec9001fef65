"""Hostile input the API must refuse cleanly (issue 18, findings 2-4): huge
integers (400, never a 500 from the database driver; `limit` clamped), control
characters in what is logged, and what Neutron refuses but we accepted (MAC
"1", cidrs with whitespace, more than max_fixed_ips_per_port fixed IPs, a
request line too long for the HTTP server)."""
from __future__ import annotations

import socket

import pytest

from tests.api.conftest import ADMIN_ROLES, Http, new_project
from tests.api.test_networks import create_net
from tests.api.test_subnets_ports import create_port, create_subnet

COLLECTIONS = ["networks", "subnets", "ports", "routers", "floatingips", "security-groups",
               "security-group-rules"]


def neutron_error(r, status):
    assert r.status == status, r
    assert r.headers.get("Content-Type") == "application/json", r.headers
    assert set(r.body) == {"NeutronError"} and set(r.body["NeutronError"]) == {"type", "message", "detail"}
    return r.body["NeutronError"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_controller(request, tmp_path_factory):
    """The API on SQLite and on PostgreSQL (whose INTEGER is 32-bit)."""
    from tests.support.controller import ControllerProcess
    url = ""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").new_database()
    c = ControllerProcess(str(tmp_path_factory.mktemp("ctl")), db_url=url).start()
    yield c
    c.stop()


def test_huge_integers_in_query_strings(db_controller):
    admin = Http(db_controller.url, project="admin-project", roles=ADMIN_ROLES)
    member = Http(db_controller.url, project=new_project())
    net = create_net(member)
    create_subnet(member, net, "10.90.0.0/24")
    for coll in COLLECTIONS:
        for limit in (2 ** 31, 2 ** 63, 10 ** 30):
            r = member.get(f"/v2.0/{coll}?limit={limit}")
            assert r.status == 200, (coll, limit, r)      # clamped: every item on one page
        r = member.get(f"/v2.0/{coll}?limit=-1")
        assert neutron_error(r, 400)["type"] == "BadRequest"
    for path in ("networks?mtu={}", "subnets?ip_version={}", "networks?revision_number={}",
                 "ports?revision_number={}", "security-group-rules?revision_number={}"):
        for n in (2 ** 31, 2 ** 40, 2 ** 70, -2 ** 63, 10 ** 30):
            r = member.get("/v2.0/" + path.format(n))
            assert neutron_error(r, 400)["type"] == "InvalidInput", (path, n, r)
    r = admin.get(f"/v2.0/networks?provider:segmentation_id={2 ** 40}")
    assert neutron_error(r, 400)["type"] == "InvalidInput"
    # in range: an ordinary answer
    r = member.get(f"/v2.0/networks?mtu={2 ** 31 - 1}&revision_number=-5")
    assert r.status == 200 and r.body["networks"] == []
    r = member.get(f"/v2.0/networks?mtu={net['mtu']}&limit={2 ** 63}")
    assert [n["id"] for n in r.body["networks"]] == [net["id"]]


def test_huge_integers_in_bodies(db_controller):
    admin = Http(db_controller.url, project="admin-project", roles=ADMIN_ROLES)
    member = Http(db_controller.url, project=new_project())
    net = create_net(member)
    for body in ({"network_id": net["id"], "cidr": "10.91.0.0/24", "ip_version": 2 ** 70},
                 {"network_id": net["id"], "cidr": "10.91.0.0/24", "ip_version": 4.0e30}):
        neutron_error(member.post("/v2.0/subnets", {"subnet": body}), 400)
    for seg in (2 ** 31, 2 ** 70, -2 ** 70):
        neutron_error(admin.post("/v2.0/networks", {"network": {
            "provider:network_type": "gre", "provider:segmentation_id": seg}}), 400)
    sg = member.get("/v2.0/security-groups").body["security_groups"][0]
    neutron_error(member.post("/v2.0/security-group-rules", {"security_group_rule": {
        "security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp",
        "port_range_min": 2 ** 70, "port_range_max": 2 ** 70}}), 400)
    neutron_error(admin.put(f"/v2.0/quotas/{member.project}", {"quota": {"network": 2 ** 70}}), 400)
    assert member.get(f"/v2.0/networks/{net['id']}").body["network"]["subnets"] == []


def test_identity_headers_the_database_cannot_hold(db_controller):
    """A project id with NUL or over 255 characters: 400 (it went into queries
    and into the project's default security group: a 500 on PostgreSQL)."""
    for project in ("a\x00b", "p" * 256):
        caller = Http(db_controller.url, project=project)
        for method, path, body in (("GET", "/v2.0/security-groups", None), ("GET", "/v2.0/networks", None),
                                   ("POST", "/v2.0/networks", {"network": {}}),
                                   ("GET", "/v2.0/quotas/x", None)):
            r = caller.request(method, path, body)
            assert neutron_error(r, 400)["type"] == "HTTPBadRequest", (project[:5], path, r)
    ok = Http(db_controller.url, project="p" * 255)
    assert ok.get("/v2.0/security-groups").status == 200


def raw_request(url: str, head: bytes) -> bytes:
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_control_characters_are_escaped_in_the_log(api_controller):
    member = Http(api_controller.url, project=new_project())
    forged = "2026-12-06 00:00:00,000 INFO controller: FORGED"
    path = "/v2.0/networks/abc%0a" + forged.replace(" ", "%20") + "%00%1b[31m"
    head = (f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Project-Id: p\x1b[2Jq\r\n"
            f"X-User-Id: u\r\nX-Roles: member,reader\r\nConnection: close\r\n\r\n").encode()
    assert b" 404 " in raw_request(api_controller.url, head).split(b"\r\n")[0]
    r = member.post("/v2.0/networks", {"network": {"name": "ok"}})     # a line after it
    assert r.status == 201
    log = open(api_controller.log_path, "rb").read()
    assert b"\x00" not in log and b"\x1b" not in log
    lines = log.decode().splitlines()
    assert not any(line.startswith("2026-12-06 00:00:00,000") for line in lines)
    [line] = [x for x in lines if "FORGED" in x]
    assert "GET /v2.0/networks/abc\\n2026-12-06 00:00:00,000 INFO controller: FORGED\\x00\\x1b[31m -> 404" in line
    assert "(project p\\x1b[2Jq)" in line


def test_long_request_line_and_headers_get_a_neutron_error(api_controller):
    member = Http(api_controller.url, project=new_project())
    r = member.get("/v2.0/networks?name=" + "x" * 200_000)
    err = neutron_error(r, 414)
    assert err["type"] == "HTTPRequestURITooLong"
    r = member.get("/v2.0/networks", headers={"X-Long": "y" * 70_000})
    assert neutron_error(r, 431)["type"] == "HTTPRequestHeaderFieldsTooLarge"
    # A request line it cannot parse is answered as HTTP/0.9 (a body, no status line).
    reply = raw_request(api_controller.url, b"GET /v2.0/networks HTTP/1.1 extra\r\n\r\n")
    assert reply.startswith(b'{"NeutronError": {"type": "HTTPBadRequest"'), reply
    assert member.get("/v2.0/networks").status == 200       # still serving


@pytest.mark.parametrize("mac", ["1", "12", "0x1", " fa:16:3e:00:00:01", "fa:16:3e:00:00:01\n",
                                 "fa:16:3e:00:00:01 ", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"])
def test_mac_written_as_a_mac(member, mac):
    net = create_net(member)
    r = member.post("/v2.0/ports", {"port": {"network_id": net["id"], "mac_address": mac}})
    assert neutron_error(r, 400)["type"] == "HTTPBadRequest", r
    r = member.post("/v2.0/ports", {"port": {"network_id": net["id"], "allowed_address_pairs": [
        {"ip_address": "10.0.0.9", "mac_address": mac}]}})
    assert r.status == 400, r
    assert member.get(f"/v2.0/ports?network_id={net['id']}").body["ports"] == []


def test_mac_forms_neutron_accepts(member):
    net = create_net(member)
    for mac, canonical in (("FA-16-3E-00-00-0A", "fa:16:3e:00:00:0a"), ("fa163e00000b", "fa:16:3e:00:00:0b"),
                           ("fa16.3e00.000c", "fa:16:3e:00:00:0c")):
        assert create_port(member, net, mac_address=mac)["mac_address"] == canonical


def test_subnet_cidr_with_whitespace_is_refused(member):
    net = create_net(member)
    for cidr in (" 10.70.0.0/24", "10.70.0.0/24\n", "10.70.0.0 /24", "10.70.0.0/24 ", "10.70.0.0/\t24"):
        r = member.post("/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": cidr, "ip_version": 4}})
        assert neutron_error(r, 400)["type"] == "InvalidInput", (cidr, r)
    assert member.get(f"/v2.0/networks/{net['id']}").body["network"]["subnets"] == []
    # Host bits are zeroed, as Neutron's create_subnet does ("turn the CIDR into a proper subnet").
    assert create_subnet(member, net, "10.70.0.1/24")["cidr"] == "10.70.0.0/24"


def test_max_fixed_ips_per_port(admin, member):
    net = create_net(member)
    sub = create_subnet(member, net, "10.75.0.0/24")
    six = [{"subnet_id": sub["id"]}] * 6
    r = member.post("/v2.0/ports", {"port": {"network_id": net["id"], "fixed_ips": six}})
    err = neutron_error(r, 400)
    assert err["type"] == "InvalidInput" and "Exceeded maximum amount of fixed ips per port" in err["message"]
    port = create_port(member, net, fixed_ips=six[:5])
    assert len(port["fixed_ips"]) == 5
    r = member.put(f"/v2.0/ports/{port['id']}", {"port": {"fixed_ips": port["fixed_ips"] + six[:1]}})
    assert neutron_error(r, 400)["type"] == "InvalidInput"
    assert member.get(f"/v2.0/ports/{port['id']}").body["port"]["fixed_ips"] == port["fixed_ips"]
    # network:* ports (a router's, the DHCP port) are trusted, as in Neutron
    r = admin.post("/v2.0/ports", {"port": {"network_id": net["id"], "fixed_ips": six,
                                            "device_owner": "network:router_interface"}})
    assert r.status == 201 and len(r.body["port"]["fixed_ips"]) == 6, r


def test_max_fixed_ips_per_port_is_an_option(controller_factory):
    ctl = controller_factory(args=["--max-fixed-ips-per-port", "2"])
    member = Http(ctl.url, project=new_project())
    net = create_net(member)
    sub = create_subnet(member, net, "10.76.0.0/24")
    r = member.post("/v2.0/ports", {"port": {"network_id": net["id"], "fixed_ips": [{"subnet_id": sub["id"]}] * 3}})
    assert neutron_error(r, 400)["type"] == "InvalidInput"
    assert len(create_port(member, net, fixed_ips=[{"subnet_id": sub["id"]}] * 2)["fixed_ips"]) == 2
