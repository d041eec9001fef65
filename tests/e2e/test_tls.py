"""OpenFlow and OVSDB over TLS on real Open vSwitch, and channel failures
that are logged, shown on the console's nodes page and counted in /metrics.

Certificates are made by the test with openssl (tests/lab/pki.py), as
README.md "TLS" tells an operator. The hypervisors' ssl: controller targets
reach the controller through the lab's socat relays (TLS passes end to end);
their ovsdb-server listens with pssl: on loopback.
"""
from __future__ import annotations

import re
import urllib.request

import pytest

from tests.e2e.test_reconciler import Api
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.pki import Pki
from tests.lab.proc import run, wait_until
from tests.lab.test_lab import config_snapshot, ovs_table

pytestmark = pytest.mark.lab

ADMIN_CONSOLE = {"X-User-Id": "ops", "X-Roles": "admin"}


@pytest.fixture
def pki(tmp_path):
    return Pki(str(tmp_path / "pki"))


def get(url: str, headers=None) -> str:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def metric(c, name: str, **labels) -> float:
    """The value of one sample in /metrics (0 when absent)."""
    body = get(c.url + "/metrics")
    for line in body.splitlines():
        m = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            return float(m.group(2))
    return 0.0


def nodes_page(c) -> str:
    return get(c.url + "/console/nodes", ADMIN_CONSOLE)


def connected_dpids(c) -> set[str]:
    return set(re.findall(r'^quantum_switch_errors_total\{[^}]*\bdpid="([0-9a-f]+)"', get(c.url + "/metrics"),
                          re.M))


def node_dpids(c, hostname: str) -> set[str]:
    nodes = Api(c.url).get(f"/nodes?hostname={hostname}")["nodes"]
    return {f"{int(d):016x}" for n in nodes for d in n["bridges"].values()}


def test_hypervisors_connect_with_certificates_and_vms_ping(controller_factory, lab_factory, pki):
    c = controller_factory(args=pki.issue("controller").flags())
    lab = lab_factory(2, c, tls=pki, physnets=())
    hv1, hv2 = lab.hvs
    assert hv1.controller_targets()[0].startswith("ssl:")
    wait_until(lambda: node_dpids(c, hv1.hostname) | node_dpids(c, hv2.hostname) <= connected_dpids(c),
               30, what="all bridges connected over TLS")
    log = c.log_text()
    assert "OpenFlow listening on 127.0.0.1" in log and "TLS only" in log
    assert re.search(rf"TLS \(TLSv1\.[23]\) with certificate of CN={hv1.hostname}", log)
    for node in Api(c.url).get("/nodes")["nodes"]:
        assert node["ovsdb"].startswith("ssl:127.0.0.1:")

    api = Api(c.url)
    net = api.network("tls-net", **{"provider:network_type": "gre", "provider:segmentation_id": 301})
    api.subnet(net, "10.61.0.0/24")
    vms = []
    for hv in (hv1, hv2):
        port = api.port(net)
        vm = lab.add_vm(hv, port)
        vm.ip = port["fixed_ips"][0]["ip_address"]
        vm.set_ip(vm.ip + "/24", mtu=net["mtu"])
        vms.append((vm, port))
    # ACTIVE: the controller read each node's OVSDB over TLS and bound the port.
    for _vm, port in vms:
        wait_until(lambda: api.get(f"/ports/{port['id']}")["port"]["status"] == "ACTIVE", 30,
                   what="port ACTIVE")
    a, b = vms[0][0], vms[1][0]
    assert any(a.ping(b.ip, count=1, timeout=1) for _ in range(10))
    assert metric(c, "quantum_channel_failures_total", channel="ovsdb") == 0
    assert 'class="error channel-failure"' not in nodes_page(c)


def test_switch_with_another_cas_certificate_or_plain_tcp_is_refused(
        controller_factory, lab_factory, pki, tmp_path):
    c = controller_factory(args=pki.issue("controller").flags())
    good = lab_factory(1, c, tls=pki, physnets=())
    rogue = lab_factory(1, c, tls=Pki(str(tmp_path / "rogue"), "rogue"), physnets=())
    plain = lab_factory(1, c, physnets=(), ovsdb_tcp=True)   # unix relay: plain TCP to the TLS port
    good_hv, rogue_hv, plain_hv = good.hvs[0], rogue.hvs[0], plain.hvs[0]

    wait_until(lambda: node_dpids(c, good_hv.hostname) <= connected_dpids(c), 30,
               what="the deployment's hypervisor connected")
    wait_until(lambda: "certificate was refused" in c.log_text()
               and "does not speak TLS" in c.log_text(), 30, what="both refusals logged")
    assert not (node_dpids(c, rogue_hv.hostname) | node_dpids(c, plain_hv.hostname)) & connected_dpids(c)
    assert not rogue_hv.is_connected() and not plain_hv.is_connected()
    assert metric(c, "quantum_channel_failures_total", channel="openflow", reason="tls") >= 2
    # Its OVSDB is plain TCP: watched (the node's choice), with a warning.
    assert f"node {plain_hv.hostname} registered a plain tcp: OVSDB address while [ssl]" in c.log_text()

    page = nodes_page(c)
    assert "Switches refused at the handshake" in page
    assert "certificate was refused" in page and "does not speak TLS" in page
    # The rogue node's OVSDB (its ovsdb-server trusts only the rogue CA) is refused too.
    wait_until(lambda: metric(c, "quantum_ovsdb_channel_down", node=rogue_hv.hostname) == 1, 30,
               what="the rogue node's OVSDB reported down")
    assert re.search(rf"OVSDB of node {rogue_hv.hostname} at ssl:127\.0\.0\.1:\d+: TLS", c.log_text())
    section = nodes_page(c).split(f'<h2>{rogue_hv.hostname} ')[1].split("</section>")[0]
    assert "channel-failure" in section and "TLS" in section


def test_unreachable_ovsdb_is_logged_shown_and_counted(controller_factory, lab_factory):
    """The reported case: the node's OVSDB listener is not where the controller
    dials it; the port stays DOWN, and now the log, the console and /metrics say why."""
    c = controller_factory()
    lab = lab_factory(1, c, ovsdb_tcp=True, physnets=())
    hv = lab.hvs[0]
    wait_until(lambda: f"watching OVSDB of node {hv.hostname}" in c.log_text(), 30,
               what="monitor watching the node")
    # Nothing listens at the registered address any more (a restart drops the connection).
    hv.vsctl("del-manager")
    hv.restart_ovsdb()
    api = Api(c.url)
    net = api.network("n-unreach", **{"provider:network_type": "gre", "provider:segmentation_id": 302})
    api.subnet(net, "10.62.0.0/24")
    port = api.port(net)
    lab.add_vm(hv, port)

    wait_until(lambda: metric(c, "quantum_ovsdb_channel_down", node=hv.hostname, reason="refused") == 1,
               30, what="the node's OVSDB reported down")
    assert metric(c, "quantum_channel_failures_total", channel="ovsdb", reason="refused") >= 1
    assert re.search(rf"WARNING .*OVSDB of node {hv.hostname} at tcp:127\.0\.0\.1:{hv.ovsdb_tcp_port}: "
                     r"connection refused", c.log_text())
    section = nodes_page(c).split(f'<h2>{hv.hostname} ')[1].split("</section>")[0]
    assert "unreachable: connection refused" in section and "cannot be bound" in section
    assert api.get(f"/ports/{port['id']}")["port"]["status"] == "DOWN"

    hv.bootstrap()                                 # the listener is back
    wait_until(lambda: api.get(f"/ports/{port['id']}")["port"]["status"] == "ACTIVE", 30,
               what="port ACTIVE once OVSDB is reachable")
    assert f"OVSDB of node {hv.hostname} at tcp:127.0.0.1:{hv.ovsdb_tcp_port}: works again" in c.log_text()
    assert metric(c, "quantum_ovsdb_channel_down", node=hv.hostname) == 0
    assert "channel-recovered" in nodes_page(c)


def test_bootstrap_sets_the_nodes_tls_files_once_and_undo_clears_them(lab_factory, pki, controller):
    lab = lab_factory(1, controller, register=False, tls=pki, physnets=())
    hv = lab.hvs[0]
    [row] = ovs_table(hv, "SSL", ["private_key", "certificate", "ca_cert", "external_ids"])
    assert (row["private_key"], row["certificate"], row["ca_cert"]) == (
        hv.tls.private_key, hv.tls.certificate, hv.tls.ca_cert)
    assert ovs_table(hv, "Manager", ["target"]) == [{"target": f"pssl:{hv.ovsdb_tcp_port}:127.0.0.1"}]
    assert {c["target"] for c in ovs_table(hv, "Controller", ["target"])} == {"ssl:127.0.0.1:6653"}
    before = config_snapshot(hv), ovs_table(hv, "SSL", ["_uuid"])
    assert "nothing to change" in hv.bootstrap().stdout
    assert (config_snapshot(hv), ovs_table(hv, "SSL", ["_uuid"])) == before
    # ovsdb-server listens with TLS: a client with the deployment's certificate gets in.
    ctl = pki.issue("client")
    out = wait_until(lambda: run("ovsdb-client", "-p", ctl.private_key, "-c", ctl.certificate,
                                 "-C", ctl.ca_cert, "list-dbs", hv.ovsdb_remote,
                                 check=False).stdout, 10, what="OVSDB over TLS")
    assert "Open_vSwitch" in out
    hv.bootstrap(undo=True)
    assert ovs_table(hv, "SSL", ["_uuid"]) == []


def test_bootstrap_refuses_tls_channels_without_tls_files(lab_factory):
    lab = lab_factory(1, register=False, physnets=())
    hv = lab.hvs[0]
    r = hv.bootstrap("--controller", "ssl:127.0.0.1:6653", check=False)
    assert r.returncode == 1 and "--ssl-private-key" in r.stderr and "Traceback" not in r.stderr
    r = hv.bootstrap("--ssl-ca-cert", "/nonexistent.pem", check=False)
    assert r.returncode == 2 and "go together" in r.stderr
