"""auth_strategy = keystone against a real Keystone (tests/support/keystone.py):
tokens accepted and refused (missing, malformed, revoked, expired, from
another Keystone), identity headers that cannot change who the caller is,
tenant isolation through real tokens, the unchanged openstack CLI with
password auth and openstacksdk, and the start-up log of both strategies."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.api.conftest import Http
from tests.support.controller import ControllerProcess
from tests.support.keystone import PASSWORD
from tests.support.tools import venv_bin

NEUTRON_401 = "The request you have made requires authentication."


class TokenHttp(Http):
    """Plain HTTP with a Keystone token (None: no X-Auth-Token at all)."""

    def __init__(self, url: str, token: str | None):
        super().__init__(url, project=None)
        self.token = token

    def headers(self, extra=None) -> dict:
        h = {"X-Auth-Token": self.token} if self.token is not None else {}
        h.update(extra or {})
        return h


@pytest.fixture(scope="module")
def kctl(keystone_controller):
    return keystone_controller


@pytest.fixture(scope="module")
def clients(keystone, kctl):
    """alice (member of A), bob (member of B), rita (reader of A), admin."""
    return {u: TokenHttp(kctl.url, keystone.token(u)) for u in ("alice", "bob", "rita", "admin")}


def assert_401(r):
    assert r.status == 401, r.body
    assert r.body == {"NeutronError": {"type": "HTTPUnauthorized", "message": NEUTRON_401,
                                       "detail": ""}}
    assert r.headers.get("WWW-Authenticate", "").startswith('Keystone uri="http://127.0.0.1:')


def net_body(name, **kw):
    return {"network": {"name": name, **kw}}


# --- tokens accepted and refused ---------------------------------------------------------

def test_requests_without_a_valid_token_get_401_and_change_nothing(keystone, kctl, clients):
    ks = keystone.ks
    revoked = keystone.token("alice")
    ks.revoke(revoked)
    expired_ks = ks.twin(expiration=2)                    # this deployment's keys, short tokens
    try:
        short = expired_ks.token("alice", "project-a", PASSWORD)
    finally:
        expired_ks.stop()
    foreign_ks = ks.twin(same_keys=False)                 # same users and ids, another deployment
    try:
        foreign = foreign_ks.token("alice", "project-a", PASSWORD)
    finally:
        foreign_ks.stop()
    time.sleep(3)                                          # `short` has expired
    bad = {"none": None, "empty": "", "garbage": "not-a-token",
           "malformed": "gAAAAAB" + "x" * 200, "huge": "A" * 8000,
           "revoked": revoked, "expired": short, "foreign": foreign}
    for what, token in bad.items():
        c = TokenHttp(kctl.url, token)
        name = f"never-{what}"
        assert_401(c.get("/v2.0/networks"))
        assert_401(c.post("/v2.0/networks", net_body(name)))
        assert_401(c.get("/v2.0/nodes"))
        # Identity headers do not make a request without a valid token pass.
        assert_401(c.post("/v2.0/networks", net_body(name), headers={
            "X-Identity-Status": "Confirmed", "X-Roles": "admin", "X-User-Id": "u",
            "X-Project-Id": "p"}))
    names = {n["name"] for n in clients["admin"].get("/v2.0/networks").body["networks"]}
    assert not any(n.startswith("never-") for n in names)
    # The version document stays open (clients discover the API before a token).
    assert Http(kctl.url).get("/").status == 200


def test_a_valid_token_is_accepted_and_the_context_comes_from_it(keystone, clients):
    alice = clients["alice"]
    r = alice.post("/v2.0/networks", net_body("alice-net"))
    assert r.status == 201, r.body
    assert r.body["network"]["project_id"] == keystone.projects["a"]["id"]
    assert "provider:network_type" not in r.body["network"]            # not an admin
    r = clients["admin"].get(f"/v2.0/networks/{r.body['network']['id']}")
    assert r.status == 200 and "provider:network_type" in r.body["network"]
    # A reader of A sees A's network and cannot create.
    assert "alice-net" in {n["name"] for n in clients["rita"].get("/v2.0/networks").body["networks"]}
    assert clients["rita"].post("/v2.0/networks", net_body("rita-net")).status == 403
    # A system-scoped admin token is admin.
    system = TokenHttp(alice.url, keystone.ks.token("admin", None, "admin-secret", system=True))
    assert system.get("/v2.0/nodes").status == 200
    assert "alice-net" in {n["name"] for n in system.get("/v2.0/networks").body["networks"]}


def test_identity_headers_next_to_a_token_never_change_the_caller(keystone, clients):
    alice = clients["alice"]
    b_id = keystone.projects["b"]["id"]
    spoof = {"X-Roles": "admin,member,reader", "X-Role": "admin", "X-Project-Id": b_id,
             "X-Tenant-Id": b_id, "X-Tenant": b_id, "X-User-Id": keystone.users["admin"]["id"],
             "X-Identity-Status": "Confirmed", "X-Is-Admin-Project": "True",
             "X-System-Scope": "all", "X-Service-Roles": "admin"}
    bob_net = clients["bob"].post("/v2.0/networks", net_body("bob-private")).body["network"]
    r = alice.post("/v2.0/networks", net_body("spoofed"), headers=spoof)
    assert r.status == 201 and r.body["network"]["project_id"] == keystone.projects["a"]["id"]
    listed = alice.get("/v2.0/networks", headers=spoof).body["networks"]
    assert bob_net["id"] not in {n["id"] for n in listed}
    assert all(n["project_id"] == keystone.projects["a"]["id"] for n in listed)
    assert "provider:network_type" not in listed[0]
    assert alice.get(f"/v2.0/networks/{bob_net['id']}", headers=spoof).status == 404
    assert alice.get("/v2.0/nodes", headers=spoof).body["nodes"] == []
    r = alice.post("/v2.0/networks", net_body("x", shared=True), headers=spoof)
    assert r.status == 403 and r.error_type == "PolicyNotAuthorized"
    r = alice.post("/v2.0/networks", net_body("x", project_id=b_id), headers=spoof)
    assert r.status == 400           # another project in the body: not for a member


# --- tenant isolation ------------------------------------------------------------------------

def test_project_b_cannot_see_or_touch_project_a_resources(keystone, clients):
    alice, bob, admin = clients["alice"], clients["bob"], clients["admin"]
    ext = admin.post("/v2.0/networks", net_body("ext-ks", **{"router:external": True})).body["network"]
    admin.post("/v2.0/subnets", {"subnet": {"network_id": ext["id"], "cidr": "203.0.113.0/24",
                                            "ip_version": 4}})
    net = alice.post("/v2.0/networks", net_body("a-net")).body["network"]
    sub = alice.post("/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.81.0.0/24",
                                                  "ip_version": 4}}).body["subnet"]
    port = alice.post("/v2.0/ports", {"port": {"network_id": net["id"], "name": "a-port"}}).body["port"]
    router = alice.post("/v2.0/routers", {"router": {"name": "a-router", "external_gateway_info":
                                                     {"network_id": ext["id"]}}}).body["router"]
    assert alice.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                     {"subnet_id": sub["id"]}).status == 200
    r = alice.post("/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"],
                                                        "port_id": port["id"]}})
    assert r.status == 201, r.body
    fip = r.body["floatingip"]
    sg = alice.post("/v2.0/security-groups", {"security_group": {"name": "a-sg"}}).body["security_group"]
    owned = {"networks": net, "subnets": sub, "ports": port, "routers": router,
             "floatingips": fip, "security-groups": sg}
    res_key = {"networks": "network", "subnets": "subnet", "ports": "port", "routers": "router",
               "floatingips": "floatingip", "security-groups": "security_group"}
    for coll, item in owned.items():
        listed = bob.get(f"/v2.0/{coll}").body[coll.replace("-", "_")]
        assert item["id"] not in {i["id"] for i in listed}, coll
        assert bob.get(f"/v2.0/{coll}/{item['id']}").status == 404, coll
        r = bob.put(f"/v2.0/{coll}/{item['id']}", {res_key[coll]: {"description": "stolen"}})
        assert r.status == 404, (coll, r.body)
        assert bob.delete(f"/v2.0/{coll}/{item['id']}").status == 404, coll
        assert alice.get(f"/v2.0/{coll}/{item['id']}").status == 200, coll
    # Nor can B build on A's objects.
    assert bob.post("/v2.0/ports", {"port": {"network_id": net["id"]}}).status in (403, 404)
    assert bob.post("/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.82.0.0/24",
                                                 "ip_version": 4}}).status in (403, 404)
    b_router = bob.post("/v2.0/routers", {"router": {"name": "b-router"}}).body["router"]
    r = bob.put(f"/v2.0/routers/{b_router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    assert r.status in (403, 404), r.body
    r = bob.put(f"/v2.0/floatingips/{fip['id']}", {"floatingip": {"port_id": None}})
    assert r.status == 404
    r = bob.post("/v2.0/security-group-rules", {"security_group_rule": {
        "security_group_id": sg["id"], "direction": "ingress", "ethertype": "IPv4"}})
    assert r.status in (403, 404), r.body
    assert alice.get(f"/v2.0/floatingips/{fip['id']}").body["floatingip"]["port_id"] == port["id"]
    assert alice.get(f"/v2.0/routers/{router['id']}").body["router"]["name"] == "a-router"


# --- real clients ------------------------------------------------------------------------------

def openstack(keystone, user: str, project: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [venv_bin("openstack"), "--os-auth-type", "password", "--os-auth-url", keystone.ks.url,
         "--os-identity-api-version", "3", "--os-username", user, "--os-password", PASSWORD,
         "--os-project-name", project, "--os-user-domain-name", "Default",
         "--os-project-domain-name", "Default", "--os-interface", "public",
         "--os-region-name", "RegionOne", *args],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})


def test_openstack_cli_with_password_auth(keystone, kctl):
    name = "cli-" + uuid.uuid4().hex[:6]
    r = openstack(keystone, "alice", "project-a", "network", "create", name, "-f", "json")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    assert created["project_id"] == keystone.projects["a"]["id"]
    r = openstack(keystone, "alice", "project-a", "network", "list", "-f", "json")
    assert r.returncode == 0, r.stderr
    assert name in {n["Name"] for n in json.loads(r.stdout)}
    r = openstack(keystone, "bob", "project-b", "network", "list", "-f", "json")
    assert r.returncode == 0, r.stderr
    assert name not in {n["Name"] for n in json.loads(r.stdout)}
    r = openstack(keystone, "bob", "project-b", "network", "delete", created["id"])
    assert r.returncode != 0
    r = subprocess.run([venv_bin("openstack"), "--os-auth-url",
                        keystone.ks.url, "--os-username", "alice", "--os-password", "wrong",
                        "--os-project-name", "project-a", "--os-user-domain-name", "Default",
                        "--os-project-domain-name", "Default", "network", "list"],
                       capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and "401" in r.stderr + r.stdout


def test_openstacksdk_with_keystone(keystone, kctl):
    import openstack as sdk

    def conn(user, project):
        return sdk.connect(auth_url=keystone.ks.url, username=user, password=PASSWORD,
                           project_name=project, user_domain_name="Default",
                           project_domain_name="Default", region_name="RegionOne",
                           interface="public", identity_api_version="3")
    a, b = conn("alice", "project-a"), conn("bob", "project-b")
    net = a.network.create_network(name="sdk-a")
    sub = a.network.create_subnet(network_id=net.id, cidr="10.83.0.0/24", ip_version=4)
    port = a.network.create_port(network_id=net.id)
    assert port.project_id == keystone.projects["a"]["id"]
    assert port.fixed_ips[0]["subnet_id"] == sub.id
    assert net.id not in {n.id for n in b.network.networks()}
    assert b.network.find_port(port.id) is None
    with pytest.raises(sdk.exceptions.ResourceNotFound):
        b.network.delete_port(port.id, ignore_missing=False)
    a.network.delete_port(port)
    a.network.delete_network(net)


# --- start-up -----------------------------------------------------------------------------------

def test_start_up_log_names_the_strategy(controller, kctl):
    assert "auth_strategy = noauth: the API and the console are UNAUTHENTICATED" in controller.log_text()
    assert "auth_strategy = keystone: API tokens validated by Keystone at http://127.0.0.1:" in \
        kctl.log_text()


def test_a_token_that_cannot_be_checked_gets_503_not_401(tmp_path):
    """Keystone unreachable (nothing listens at its address): neutron-server
    answers 503, so a client retries instead of believing its token bad."""
    from types import SimpleNamespace
    from tests.support.keystone import controller_ini
    ini = controller_ini(tmp_path / "q.conf", SimpleNamespace(url="http://127.0.0.1:1/v3"))
    c = ControllerProcess(str(tmp_path / "state"), args=["--config-file", ini])
    c.start()
    try:
        r = TokenHttp(c.url, "gAAAAABnot-checkable").get("/v2.0/networks")
        assert r.status == 503, r.body
        assert r.body == {"NeutronError": {"type": "ServiceUnavailable", "detail": "",
                                           "message": "The Keystone service is temporarily unavailable."}}
        assert_401(TokenHttp(c.url, None).get("/v2.0/networks"))       # no token: nothing to check
        assert "Unable to validate token" in c.log_text()
    finally:
        c.stop()


def test_keystone_without_its_options_does_not_start(tmp_path):
    c = ControllerProcess(str(tmp_path / "state"), args=["--auth-strategy", "keystone"])
    with pytest.raises(RuntimeError, match=r"needs \[keystone_authtoken\] auth_url"):
        c.start(timeout=20)
    c.stop()
    c = ControllerProcess(str(tmp_path / "state2"), args=["--auth-strategy", "keystone-ish"])
    with pytest.raises(RuntimeError, match="auth_strategy"):
        c.start(timeout=20)


# --- node registration ------------------------------------------------------------------------

@pytest.fixture
def ovsdb(tmp_path):
    """A private ovsdb-server (no switch daemon: node-bootstrap --no-wait only writes OVSDB)."""
    from tests.lab.hypervisor import MANAGER_OPTIONS, SCHEMA, ovs_env, start_ovsdb
    from tests.lab.proc import kill_pidfile, run
    rundir = str(tmp_path / "ovs")
    os.makedirs(rundir)
    run("ovsdb-tool", "create", f"{rundir}/conf.db", SCHEMA)
    start_ovsdb(rundir, MANAGER_OPTIONS)
    run("ovs-vsctl", f"--db=unix:{rundir}/db.sock", "--no-wait", "init")
    yield rundir, ovs_env(rundir)
    kill_pidfile(f"{rundir}/ovsdb-server.pid", "ovsdb-server")


def node_bootstrap(kctl, ovsdb, hostname, *extra, env=None):
    from tests.lab.hypervisor import NODE_BOOTSTRAP
    rundir, ovs_env = ovsdb
    argv = [sys.executable, NODE_BOOTSTRAP, "--db", f"unix:{rundir}/db.sock", "--no-wait",
            "--hostname", hostname, "--api", kctl.url, "--tunnel-ip", "192.0.2.40",
            "--ovsdb-listen", f"unix:{rundir}/db.sock", *extra]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          env={**clean, **ovs_env, **(env or {})})


@pytest.mark.lab
def test_node_registration_needs_a_keystone_credential(keystone, kctl, clients, ovsdb):
    admin = clients["admin"]
    host = "hv-ks-" + uuid.uuid4().hex[:6]

    def registered():
        return [n for n in admin.get(f"/v2.0/nodes?hostname={host}").body["nodes"]]

    r = node_bootstrap(kctl, ovsdb, host)                         # anonymous (noauth headers)
    assert r.returncode == 1 and "HTTP 401" in r.stderr and "Keystone token" in r.stderr, r.stderr
    assert registered() == []
    creds = {"OS_AUTH_URL": keystone.ks.url, "OS_PROJECT_NAME": "service"}
    r = node_bootstrap(kctl, ovsdb, host, env={**creds, "OS_USERNAME": "node-registrar",
                                               "OS_PASSWORD": "wrong"})
    assert r.returncode == 1 and "refused user node-registrar" in r.stderr, r.stderr
    r = node_bootstrap(kctl, ovsdb, host, env={**creds, "OS_USERNAME": "alice",
                                               "OS_PROJECT_NAME": "project-a", "OS_PASSWORD": PASSWORD})
    assert r.returncode == 1 and "HTTP 403" in r.stderr, r.stderr      # a member: not allowed
    assert registered() == []
    service = {**creds, "OS_USERNAME": "node-registrar", "OS_PASSWORD": PASSWORD}
    r = node_bootstrap(kctl, ovsdb, host, env=service)
    assert r.returncode == 0, r.stderr
    [node] = registered()
    assert node["tunnel_ip"] == "192.0.2.40" and "br-int" in node["bridges"]
    r = node_bootstrap(kctl, ovsdb, host, "--undo", env=service)
    assert r.returncode == 0 and "deregistered" in r.stdout, r.stderr
    assert registered() == []
