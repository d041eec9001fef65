"""The lab harness and node-bootstrap on real Open vSwitch: bridges, the
well-known ofports of controller/flows/tables.py, idempotency, --undo, the
underlay, Nova-style VM plugging, controller connections, stale cleanup."""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import signal
import subprocess
import sys

import pytest

from controller.flows import tables
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.hypervisor import NODE_BOOTSTRAP
from tests.lab.proc import BASE_DIR, netns_list, run, wait_until
from tests.support.controller import free_port

pytestmark = pytest.mark.lab

VM_PORT = "8c77dea8-0d11-4a5b-9c3e-0123456789ab"


def load_bootstrap_module():
    loader = importlib.machinery.SourceFileLoader("node_bootstrap", NODE_BOOTSTRAP)
    spec = importlib.util.spec_from_loader("node_bootstrap", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def ovs_table(hv, table, columns):
    out = hv.vsctl("--format=json", "--data=json", f"--columns={','.join(columns)}", "list", table)
    doc = json.loads(out)
    return [dict(zip(doc["headings"], row)) for row in doc["data"]]


def config_snapshot(hv):
    """Every configuration row node-bootstrap touches, uuids included."""
    cols = {"Bridge": ["_uuid", "name", "ports", "controller", "fail_mode", "protocols",
                       "datapath_type", "other_config", "external_ids"],
            "Port": ["_uuid", "name", "interfaces", "external_ids"],
            "Interface": ["_uuid", "name", "type", "options", "ofport_request"],
            "Controller": ["_uuid", "target", "max_backoff"],
            "Manager": ["_uuid", "target"]}
    return {t: sorted(json.dumps(r, sort_keys=True) for r in ovs_table(hv, t, c))
            for t, c in cols.items()}


def test_bootstrap_constants_match_tables():
    nb = load_bootstrap_module()
    names = [n for n in dir(nb) if n.endswith(("_OFPORT", "_OFPORT_BASE"))]
    assert "INT_PATCH_TUN_OFPORT" in names and "PHYS_PATCH_INT_OFPORT" in names
    for name in names:
        assert getattr(nb, name) == getattr(tables, name), name


def test_help_documents_every_option():
    out = run(sys.executable, NODE_BOOTSTRAP, "--help").stdout
    for flag in ("--controller", "--api", "--hostname", "--role", "--tunnel-ip", "--tunnel-type",
                 "--bridge-mappings", "--bridge-ports", "--datapath-type", "--ovsdb-listen",
                 "--db", "--undo", "--dry-run", "--no-wait", "--ssl-private-key",
                 "--ssl-certificate", "--ssl-ca-cert", "pssl:", "example"):
        assert flag in out


def test_bad_arguments_are_usage_errors():
    r = run(sys.executable, NODE_BOOTSTRAP, "--bridge-mappings", "physnet1:br-eth1",
            "--bridge-ports", "br-eth9:eth1", check=False)
    assert r.returncode == 2 and "br-eth9" in r.stderr and "Traceback" not in r.stderr
    r = run(sys.executable, NODE_BOOTSTRAP, "--bridge-mappings", "physnet1", check=False)
    assert r.returncode == 2 and "KEY:VALUE" in r.stderr


def test_bootstrap_builds_the_bridges_with_well_known_ofports(lab_factory, controller):
    lab = lab_factory(2, controller, register=False, physnets=("physnet1", "public"), gateways={2})
    nb = load_bootstrap_module()
    for hv in lab.hvs:
        assert set(hv.bridges()) == {"br-int", "br-tun", "br-eth1", "br-eth2", "br-phy"}
        assert hv.ofport("patch-tun") == tables.INT_PATCH_TUN_OFPORT
        assert hv.ofport("int-br-eth1") == tables.INT_PATCH_PHYS_OFPORT_BASE
        assert hv.ofport("int-br-eth2") == tables.INT_PATCH_PHYS_OFPORT_BASE + 1
        assert hv.ofport("patch-int") == tables.TUN_PATCH_INT_OFPORT
        assert hv.ofport("gre0") == tables.TUN_TUNNEL_OFPORT
        assert hv.ofport("phy-br-eth1") == tables.PHYS_PATCH_INT_OFPORT
        assert hv.ofport("phy-br-eth2") == tables.PHYS_PATCH_INT_OFPORT
        assert set(hv.ports("br-eth1")) == {"phy-br-eth1", "eth1"}
        assert set(hv.ports("br-eth2")) == {"phy-br-eth2", "eth2"}
        gre = ovs_table(hv, "Interface", ["name", "type", "options"])
        gre = next(i for i in gre if i["name"] == "gre0")
        assert gre["type"] == "gre"
        assert dict(gre["options"][1]) == {"remote_ip": "flow", "key": "flow",
                                           "local_ip": hv.tunnel_ip}
        for br in ("br-int", "br-tun", "br-eth1", "br-eth2"):
            row = next(b for b in ovs_table(hv, "Bridge", ["name", "fail_mode", "protocols",
                                                           "datapath_type", "other_config"])
                       if b["name"] == br)
            assert row["fail_mode"] == "secure"
            assert row["protocols"] == "OpenFlow13"
            assert row["datapath_type"] == "netdev"
            other = dict(row["other_config"][1])
            assert other["disable-in-band"] == "true"
            expected = int(hashlib.sha256(f"{hv.hostname}/{br}".encode()).hexdigest()[:12], 16)
            assert int(other["datapath-id"], 16) == expected == nb.datapath_id(hv.hostname, br)
            # The switch really uses it (OVS reports it in the OpenFlow features).
            assert f"dpid:{expected:016x}" in hv.ofctl("show", br)
        ctls = ovs_table(hv, "Controller", ["target", "max_backoff"])
        assert len(ctls) == 4                          # one per bridge (br-phy has none)
        assert {c["target"] for c in ctls} == {f"unix:{hv.rundir}/ctl0.sock"}
        assert all(c["max_backoff"] == 1000 for c in ctls)
    # dpids are distinct across hosts and bridges
    dpids = [nb.datapath_id(hv.hostname, b) for hv in lab.hvs for b in ("br-int", "br-tun")]
    assert len(set(dpids)) == len(dpids)


def test_bootstrap_twice_changes_nothing(lab_factory):
    lab = lab_factory(1, register=False)
    hv = lab.hvs[0]
    before = config_snapshot(hv)
    r = hv.bootstrap()
    assert "nothing to change" in r.stdout
    assert config_snapshot(hv) == before
    # The lab's userspace datapath: warned about if this OVS has the megaflow bug.
    installed = run("ovs-vswitchd", "--version").stdout.splitlines()[0]
    affected = load_bootstrap_module().netdev_flow_put_bug(installed)
    assert ("revalidator/purge" in r.stderr) == affected, r.stderr


def test_bootstrap_knows_the_ovs_releases_with_the_netdev_megaflow_bug():
    bug = load_bootstrap_module().netdev_flow_put_bug
    assert bug("ovs-vswitchd (Open vSwitch) 3.1.0")
    assert [bug(v) for v in ("2.13.0", "2.17.7", "3.0.4", "3.1.2")] == [True] * 4
    assert [bug(v) for v in ("2.17.8", "3.0.5", "3.1.3", "3.2.0", "3.4.1", "4.0.0")] == [False] * 6
    assert not bug("unknown")


def test_unreachable_api_is_a_clear_error(lab_factory):
    lab = lab_factory(1, register=False)
    hv = lab.hvs[0]
    r = hv.bootstrap("--api", f"http://127.0.0.1:{free_port()}", check=False)   # nobody listens
    assert r.returncode == 1
    assert "cannot reach the controller API" in r.stderr and "Traceback" not in r.stderr


def test_changed_options_converge(lab_factory):
    """A re-run with other options changes only what differs: VXLAN instead of
    GRE, a mapping removed, a second controller added."""
    lab = lab_factory(1, register=False, physnets=("physnet1", "public"))
    hv = lab.hvs[0]
    lab.tunnel_type = "vxlan"
    lab.mappings = {"physnet1": "br-eth1"}
    lab.nics = {"br-eth1": "eth1"}
    hv.bootstrap("--controller", f"unix:{hv.rundir}/ctl9.sock")
    assert set(hv.bridges()) == {"br-int", "br-tun", "br-eth1", "br-phy"}
    assert "int-br-eth2" not in hv.ports("br-int")
    assert hv.ofport("vxlan0") == tables.TUN_TUNNEL_OFPORT
    assert "gre0" not in hv.ports("br-tun")
    targets = {c["target"] for c in ovs_table(hv, "Controller", ["target"])}
    assert targets == {f"unix:{hv.rundir}/ctl9.sock"}
    assert "nothing to change" in hv.bootstrap("--controller", f"unix:{hv.rundir}/ctl9.sock").stdout


def test_undo_leaves_nothing(lab_factory):
    lab = lab_factory(1, register=False, ovsdb_tcp=True)
    hv = lab.hvs[0]
    assert ovs_table(hv, "Manager", ["target"]) == [{"target": f"ptcp:{hv.ovsdb_tcp_port}:127.0.0.1"}]
    r = hv.bootstrap(undo=True)
    assert r.returncode == 0
    assert hv.bridges() == ["br-phy"]                 # the lab's own underlay stays
    assert ovs_table(hv, "Controller", ["target"]) == []
    assert ovs_table(hv, "Manager", ["target"]) == []
    assert sorted(p["name"] for p in ovs_table(hv, "Port", ["name"])) == ["br-phy", "eth0"]
    assert "nothing to change" in hv.bootstrap(undo=True).stdout
    # and it can be set up again from scratch
    hv.bootstrap()
    assert hv.ofport("patch-tun") == tables.INT_PATCH_TUN_OFPORT


def test_ovsdb_manager_is_reachable(lab_factory):
    lab = lab_factory(1, register=False, ovsdb_tcp=True)
    hv = lab.hvs[0]
    out = wait_until(lambda: run("ovsdb-client", "list-dbs", hv.ovsdb_remote, check=False).stdout,
                     10, what="OVSDB on the manager port")
    assert "Open_vSwitch" in out


def test_underlay_connects_tunnel_endpoints(lab_factory):
    lab = lab_factory(3, register=False)
    hv1, hv2, hv3 = lab.hvs
    assert run("ping", "-c", "1", "-W", "2", hv2.tunnel_ip, netns=hv1.netns, check=False).returncode == 0
    assert run("ping", "-c", "1", "-W", "2", hv1.tunnel_ip, netns=hv3.netns, check=False).returncode == 0


def test_vm_is_plugged_like_nova(lab_factory):
    lab = lab_factory(2, register=False)
    hv1, hv2 = lab.hvs
    vm = lab.add_vm(hv1, VM_PORT, mac="fa:16:3e:00:00:11")
    assert vm.tap == "tap8c77dea8-0d"
    assert vm.tap in hv1.ports("br-int")
    ids = hv1.vsctl("get", "Interface", vm.tap, "external_ids")
    assert f'iface-id="{VM_PORT}"' in ids and 'attached-mac="fa:16:3e:00:00:11"' in ids
    assert "iface-status=active" in ids
    wait_until(lambda: vm.ofport() > 0, 5, what="ofport")
    assert "fa:16:3e:00:00:11" in vm.exec("ip", "link", "show", "eth0").stdout
    assert "tx-checksumming: off" in vm.exec("ethtool", "-k", "eth0").stdout
    vm.unplug()
    assert vm.tap not in hv1.ports("br-int")
    vm.replug()
    assert vm.tap in hv1.ports("br-int")
    vm.set_ip("10.9.0.5/24")
    vm.replug(hv2)                                    # a move: NIC re-created on hv2
    assert vm.tap in hv2.ports("br-int") and vm.tap not in hv1.ports("br-int")
    assert "10.9.0.5/24" in vm.exec("ip", "addr", "show", "eth0").stdout


def test_vms_talk_through_a_standalone_bridge(lab_factory):
    """The VM helpers (ping, TCP transfer with checksum offload off) on a plain
    learning bridge, so the harness is tested without any controller flows."""
    lab = lab_factory(1, register=False)
    hv = lab.hvs[0]
    hv.vsctl("add-br", "br-test", "--", "set", "bridge", "br-test", "datapath_type=netdev")
    a = lab.add_vm(hv, "aaaaaaaa-0000-4000-8000-000000000001", mac="fa:16:3e:00:00:0a")
    b = lab.add_vm(hv, "bbbbbbbb-0000-4000-8000-000000000002", mac="fa:16:3e:00:00:0b")
    for vm in (a, b):
        vm.unplug()
        hv.vsctl("add-port", "br-test", vm.tap)
    a.set_ip("10.8.0.1/24")
    b.set_ip("10.8.0.2/24")
    assert a.ping("10.8.0.2", count=2)
    sent, received = lab.tcp_transfer(a, b, "10.8.0.2", nbytes=2 * 2**20)
    assert sent == received and sent["bytes"] == 2 * 2**20


def test_bridges_connect_to_the_controller(lab_factory, controller):
    lab = lab_factory(2, controller, register=False)
    nb = load_bootstrap_module()
    for hv in lab.hvs:
        for br in ("br-int", "br-tun", "br-eth1"):
            dpid = nb.datapath_id(hv.hostname, br)
            wait_until(lambda: f"switch connected: dpid={dpid:016x}" in controller.log_text(),
                       15, what=f"{hv.name} {br} connected")


def test_a_killed_run_is_swept_by_the_next_lab(lab_factory, tmp_path):
    script = tmp_path / "orphan.py"
    script.write_text(
        "import os, sys, time\n"
        f"sys.path.insert(0, {os.getcwd()!r})\n"
        "from tests.lab import Lab\n"
        "lab = Lab(1, register=False).start()\n"
        "print(lab.prefix, flush=True)\n"
        "time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(NODE_BOOTSTRAP))))
    prefix = p.stdout.readline().strip()
    assert prefix and any(ns.startswith(prefix) for ns in netns_list())
    pidfile = os.path.join(BASE_DIR, prefix, "hv1", "ovs-vswitchd.pid")
    vswitchd = int(open(pidfile).read())
    p.send_signal(signal.SIGKILL)
    p.wait()
    lab_factory(1, register=False)                    # sweeps on start
    assert not any(ns.startswith(prefix) for ns in netns_list())
    assert not os.path.exists(os.path.join(BASE_DIR, prefix))
    cmdline = open(f"/proc/{vswitchd}/cmdline", "rb").read() if os.path.exists(f"/proc/{vswitchd}") else b""
    assert b"ovs-vswitchd" not in cmdline
