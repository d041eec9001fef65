"""The operators' terminal commands (`quantum-controller flows | trace |
drift`, controller/ops_cli.py) against a real controller with two lab
hypervisors and two VMs behind a router:

- `flows --port` lists the port's flows on the switches that serve it, each
  with its owner; `--network --desired` the computed ones on every node;
  `--router` the router's own flows;
- `trace` walks a TCP packet from one VM to the other across the tunnel and
  names the object behind every step;
- `drift` is clean, then reports a flow deleted behind the controller's back
  (exit 1), and `trace --installed` shows where the packet now dies;
- unknown objects and an unreachable controller are errors (exit 2).
"""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.test_console import del_flow_strict
from tests.e2e.test_reconciler import Api
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.proc import wait_until
from tests.support.controller import free_port
from tests.support.tools import venv_bin


def cli(c, *args, url=None) -> subprocess.CompletedProcess:
    return subprocess.run([venv_bin("quantum-controller"), *args, "--url", url or c.url],
                          capture_output=True, text=True, timeout=60)


def test_an_unreachable_controller_is_an_error_not_a_traceback():
    r = subprocess.run([venv_bin("quantum-controller"), "drift", "--url",
                        f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cannot reach" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.lab
def test_flows_trace_and_drift_from_the_terminal(controller_factory, lab_factory):
    c = controller_factory()
    lab = lab_factory(2, c, tunnel_type="gre")
    hv1, hv2 = lab.hvs
    api = Api(c.url)
    net = api.network("web", **{"provider:network_type": "gre", "provider:segmentation_id": 4242})
    sub = api.subnet(net, "10.50.0.0/24")
    router = api.post("/routers", {"router": {"name": "r1"}})["router"]
    api.put(f"/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    pa, pb = api.port(net, name="vm-a", device_id="vm-a"), api.port(net, name="vm-b", device_id="vm-b")
    a, b = lab.add_vm(hv1, pa), lab.add_vm(hv2, pb)
    a_ip, b_ip = pa["fixed_ips"][0]["ip_address"], pb["fixed_ips"][0]["ip_address"]
    for p in (pa, pb):
        wait_until(lambda p=p: api.get(f"/ports/{p['id']}")["port"]["status"] == "ACTIVE", 60,
                   what="port ACTIVE")

    # flows --port: on hv1's br-int (a is plugged there) and hv2's br-tun (sends to a).
    r = cli(c, "flows", "--port", "vm-a")
    assert r.returncode == 0, r.stderr
    assert f"{hv1.hostname} br-int" in r.stdout and f"{hv2.hostname} br-tun" in r.stdout
    assert f"eth_dst={pa['mac_address']}" in r.stdout and "[port vm-a]" in r.stdout
    assert "L2_LOOKUP" in r.stdout and "n_packets=" in r.stdout

    # flows --network --desired: computed for both nodes, the tunnel key 4242 = 0x1092.
    r = cli(c, "flows", "--network", net["id"], "--desired", "--json")
    data = json.loads(r.stdout)
    names = {sw["name"] for sw in data["switches"]}
    assert {f"{hv.hostname} {br}" for hv in (hv1, hv2) for br in ("br-int", "br-tun")} <= names
    assert any("tunnel_id=0x1092" in f["match"] or "0x1092" in f["actions"]
               for sw in data["switches"] for f in sw["flows"])

    # flows --router: the router's own flows, owned by it.
    r = cli(c, "flows", "--router", "r1")
    assert r.returncode == 0 and "[router r1]" in r.stdout, r.stdout + r.stderr

    # trace a -> b over TCP 22: every step, its owner, delivered to b's port on hv2.
    r = cli(c, "trace", "--port", "vm-a", "--dst", b_ip, "--protocol", "tcp", "--dst-port", "22")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "tcp_dst=22" in out and "TO_TUNNEL" in out and "FROM_TUNNEL" in out, out
    assert "[port vm-a]" in out and "[port vm-b]" in out and "[network web]" in out, out
    assert f"=> delivered on {hv2.hostname} br-int port {b.ofport()} -> vm-b" in out, out
    assert "no flow matched" not in out

    # drift: clean; then a flow deleted behind the controller's back.
    r = cli(c, "drift")
    assert r.returncode == 0 and r.stdout.strip().endswith("clean"), r.stdout + r.stderr
    line = next(ln for ln in hv1.dump_flows("br-int").splitlines()
                if "table=50" in ln and f"dl_dst={pa['mac_address']}" in ln)
    del_flow_strict(hv1, "br-int", line)
    r = cli(c, "drift")
    assert r.returncode == 1 and r.stdout.strip().endswith("DRIFT"), r.stdout
    assert f"{hv1.hostname} br-int: 1 missing" in r.stdout
    missing = next(ln for ln in r.stdout.splitlines() if ln.startswith("  missing"))
    assert f"eth_dst={pa['mac_address']}" in missing and "[port vm-a]" in missing

    # b -> a: delivered through the desired flows, dropped on hv1 through the installed ones.
    desired = cli(c, "trace", "--port", "vm-b", "--dst", a_ip)
    assert f"=> delivered on {hv1.hostname} br-int port {a.ofport()} -> vm-a" in desired.stdout
    installed = cli(c, "trace", "--port", "vm-b", "--dst", a_ip, "--installed")
    assert "through the installed flows" in installed.stdout
    ends = [ln.strip() for ln in installed.stdout.splitlines() if ln.strip().startswith("=>")]
    assert ends and all(e.startswith(f"=> dropped on {hv1.hostname}") for e in ends), installed.stdout

    # Unknown objects: a clear error, exit 2.
    r = cli(c, "trace", "--port", "no-such-port", "--dst", a_ip)
    assert r.returncode == 2 and "no port 'no-such-port'" in r.stderr
