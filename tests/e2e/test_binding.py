"""Port binding without an agent, end to end: a real controller process, real
hypervisors (tests/lab) registered by the real node-bootstrap, ports created
through the REST API with plain HTTP, VMs plugged the way Nova plugs them."""
from __future__ import annotations

import json
import os
import sqlite3
import urllib.error
import urllib.request

import pytest

from tests.lab import wait_until
from tests.lab.fixtures import lab_factory  # noqa: F401

pytestmark = pytest.mark.lab

TENANT = {"X-Project-Id": "demo", "X-User-Id": "alice", "X-Roles": "member,reader"}
ADMIN = {"X-Project-Id": "admin", "X-User-Id": "root", "X-Roles": "admin,member,reader"}


def api(ctl, method, path, body=None, headers=ADMIN):
    req = urllib.request.Request(ctl.url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
        return json.loads(raw) if raw else {}


def create_port(ctl, network_id=None, **attrs):
    if network_id is None:
        network_id = api(ctl, "POST", "/v2.0/networks", {"network": {"name": "net"}}, TENANT)["network"]["id"]
    body = {"port": {"network_id": network_id, **attrs}}
    return api(ctl, "POST", "/v2.0/ports", body, TENANT)["port"]


def get_port(ctl, port_id):
    return api(ctl, "GET", f"/v2.0/ports/{port_id}")["port"]


def wait_bound(ctl, port_id, host, timeout=15):
    return wait_until(lambda: (lambda p: p if p["binding:host_id"] == host else None)(get_port(ctl, port_id)),
                      timeout, what=f"port {port_id} bound to {host}")


def wait_unbound(ctl, port_id, timeout=15):
    return wait_until(lambda: (lambda p: p if p["binding:host_id"] == "" else None)(get_port(ctl, port_id)),
                      timeout, what=f"port {port_id} unbound")


def db_ofport(ctl, port_id):
    """Port.ofport is not an API attribute; read it from the controller's SQLite."""
    con = sqlite3.connect(f"file:{os.path.join(ctl.state_dir, 'quantum.db')}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT ofport FROM ports WHERE id = ?", (port_id,)).fetchone()
        return row[0] if row else None
    finally:
        con.close()


def binding_log(ctl, port_id):
    """The monitor's bind/unbind decisions for one port, in order (the log
    file spans controller restarts)."""
    return [ln.split(": ", 1)[1].split()[0] for ln in ctl.log_text().splitlines()
            if "port_binding:" in ln and f"port {port_id} " in ln]


def test_nodes_register_through_node_bootstrap(lab_factory, controller):
    lab = lab_factory(2, controller)
    nodes = {n["hostname"]: n for n in api(controller, "GET", "/v2.0/nodes")["nodes"]}
    for hv in lab.hvs:
        n = nodes[hv.hostname]
        assert n["ovsdb"] == hv.ovsdb_remote and n["tunnel_ip"] == hv.tunnel_ip
        assert n["bridge_mappings"] == {"physnet1": "br-eth1"}
        dpid = int(hv.vsctl("get", "Bridge", "br-int", "other_config:datapath-id").strip().strip('"'), 16)
        assert n["bridges"]["br-int"] == dpid
    # --undo deregisters
    lab.hvs[1].bootstrap(undo=True)
    names = {n["hostname"] for n in api(controller, "GET", "/v2.0/nodes")["nodes"]}
    assert names == {lab.hvs[0].hostname}


def test_plug_binds_and_unplug_unbinds(lab_factory, controller):
    lab = lab_factory(2, controller)
    hv1, hv2 = lab.hvs
    port = create_port(controller)
    assert get_port(controller, port["id"])["binding:host_id"] == ""
    vm = lab.add_vm(hv1, port)
    bound = wait_bound(controller, port["id"], hv1.hostname)
    assert bound["binding:vif_type"] == "ovs"
    assert db_ofport(controller, port["id"]) == vm.ofport() > 0
    vm.unplug()
    unbound = wait_unbound(controller, port["id"])
    assert unbound["binding:vif_type"] == "unbound" and unbound["status"] == "DOWN"
    assert db_ofport(controller, port["id"]) is None
    vm.replug(hv2)                                    # a move to another host
    wait_bound(controller, port["id"], hv2.hostname)
    assert db_ofport(controller, port["id"]) == vm.ofport()


def test_binding_through_an_ovsdb_manager_port(lab_factory, controller):
    """The production path: node-bootstrap --ovsdb-listen ptcp:PORT:IP, the
    controller dialling tcp:IP:PORT."""
    lab = lab_factory(1, controller, ovsdb_tcp=True)
    hv = lab.hvs[0]
    node = next(n for n in api(controller, "GET", "/v2.0/nodes")["nodes"] if n["hostname"] == hv.hostname)
    assert node["ovsdb"] == f"tcp:127.0.0.1:{hv.ovsdb_tcp_port}"
    port = create_port(controller)
    vm = lab.add_vm(hv, port)
    wait_bound(controller, port["id"], hv.hostname)
    vm.unplug()
    wait_unbound(controller, port["id"])


def test_wrong_mac_is_not_bound_and_the_reason_is_logged(lab_factory, controller):
    lab = lab_factory(1, controller)
    port = create_port(controller)
    vm = lab.add_vm(lab.hvs[0], port, mac="fa:16:3e:00:be:ef")
    wait_until(lambda: f"not binding {vm.tap}" in controller.log_text(), 15, what="refusal logged")
    line = next(ln for ln in controller.log_text().splitlines() if f"not binding {vm.tap}" in ln)
    assert "fa:16:3e:00:be:ef" in line and port["mac_address"] in line
    p = get_port(controller, port["id"])
    assert p["binding:host_id"] == "" and p["binding:vif_type"] == "unbound"


def test_network_the_node_cannot_carry_is_not_bound(lab_factory, controller):
    """A flat network on a physical network the node has no bridge for."""
    lab = lab_factory(1, controller)
    net = api(controller, "POST", "/v2.0/networks", {"network": {
        "name": "far", "provider:network_type": "flat",
        "provider:physical_network": "physnet9", "shared": True}})["network"]
    port = create_port(controller, net["id"])
    vm = lab.add_vm(lab.hvs[0], port)
    wait_until(lambda: f"not binding {vm.tap}" in controller.log_text(), 15, what="refusal logged")
    assert "physnet9" in controller.log_text()
    assert get_port(controller, port["id"])["binding:host_id"] == ""


def test_tap_name_is_a_fallback_without_iface_id(lab_factory, controller):
    lab = lab_factory(1, controller)
    port = create_port(controller)
    lab.add_vm(lab.hvs[0], port, iface_id=False)
    wait_bound(controller, port["id"], lab.hvs[0].hostname)


def test_correcting_the_port_binds_it(lab_factory, controller):
    """A refused plug is looked at again when its port changes (here the
    admin sets the MAC the VM really has)."""
    lab = lab_factory(1, controller)
    port = create_port(controller)
    vm = lab.add_vm(lab.hvs[0], port, mac="fa:16:3e:00:ca:fe")
    wait_until(lambda: f"not binding {vm.tap}" in controller.log_text(), 15, what="refusal logged")
    api(controller, "PUT", f"/v2.0/ports/{port['id']}", {"port": {"mac_address": "fa:16:3e:00:ca:fe"}})
    wait_bound(controller, port["id"], lab.hvs[0].hostname)


def test_ovsdb_server_restart_keeps_bindings_and_sees_new_plugs(lab_factory, controller):
    lab = lab_factory(1, controller)
    hv = lab.hvs[0]
    net_id = api(controller, "POST", "/v2.0/networks", {"network": {"name": "n"}}, TENANT)["network"]["id"]
    first = create_port(controller, net_id)
    lab.add_vm(hv, first)
    wait_bound(controller, first["id"], hv.hostname)
    hv.restart_ovsdb()
    second = create_port(controller, net_id)
    vm2 = lab.add_vm(hv, second)
    wait_bound(controller, second["id"], hv.hostname)
    vm2.unplug()
    wait_unbound(controller, second["id"])
    assert get_port(controller, first["id"])["binding:host_id"] == hv.hostname
    assert binding_log(controller, first["id"]) == ["binding"]    # no flap on reconnect


def test_controller_restart_reconciles_bindings(lab_factory, controller):
    lab = lab_factory(2, controller)
    hv1, hv2 = lab.hvs
    net_id = api(controller, "POST", "/v2.0/networks", {"network": {"name": "n"}}, TENANT)["network"]["id"]
    stays, leaves, arrives = (create_port(controller, net_id) for _ in range(3))
    lab.add_vm(hv1, stays)
    vm_leaves = lab.add_vm(hv2, leaves)
    wait_bound(controller, stays["id"], hv1.hostname)
    wait_bound(controller, leaves["id"], hv2.hostname)
    controller.stop()
    vm_leaves.unplug()                                # while the controller is down
    vm_arrives = lab.add_vm(hv2, arrives)
    controller.start()
    wait_bound(controller, arrives["id"], hv2.hostname)
    wait_unbound(controller, leaves["id"])
    assert get_port(controller, leaves["id"])["status"] == "DOWN"
    assert get_port(controller, stays["id"])["binding:host_id"] == hv1.hostname
    assert binding_log(controller, stays["id"]) == ["binding"]    # untouched by the restart
    assert db_ofport(controller, arrives["id"]) == vm_arrives.ofport()


def test_deregistered_node_releases_its_ports(lab_factory, controller):
    lab = lab_factory(2, controller)
    hv1, hv2 = lab.hvs
    port = create_port(controller)
    lab.add_vm(hv2, port)
    wait_bound(controller, port["id"], hv2.hostname)
    node_id = next(n["id"] for n in api(controller, "GET", "/v2.0/nodes")["nodes"]
                   if n["hostname"] == hv2.hostname)
    api(controller, "DELETE", f"/v2.0/nodes/{node_id}")
    wait_unbound(controller, port["id"])


def test_monitor_survives_a_node_with_an_unreachable_ovsdb(lab_factory, controller):
    """A registered node whose OVSDB does not answer must not stop binding elsewhere."""
    api(controller, "POST", "/v2.0/nodes", {"node": {"hostname": "ghost", "ovsdb": "tcp:127.0.0.1:9"}})
    lab = lab_factory(1, controller)
    port = create_port(controller)
    lab.add_vm(lab.hvs[0], port)
    wait_bound(controller, port["id"], lab.hvs[0].hostname)
    assert "Traceback" not in controller.log_text()
