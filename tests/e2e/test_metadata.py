"""Metadata on real Open vSwitch: VMs fetch /latest/meta-data/instance-id from
169.254.169.254 and get their own instance id, through flows only.

The lab's two hypervisors are bootstrapped with --metadata-bridge br-phy (the
bridge holding each node's underlay address). A namespace `<lab>-meta` on the
lab's underlay plays the management host: the metadata proxy runs there as
its own process (python -m controller.proxy, reading the controller's
database) at 172.31.0.200:9697, with an on-link route for the source range,
next to a fake Nova metadata API on its loopback that records what it gets.
Two tenants use the same fixed IPs, on both hypervisors; a VLAN network and a
GRE network behind a router, the VMs' default route via the router.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest

from controller.flows import tables
from tests.e2e.test_reconciler import Api
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.proc import run, wait_until
from tests.support.controller import free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = "e2e-shared-secret"
PROXY_IP, PROXY_PORT, PROXY_MAC = "172.31.0.200", 9697, "02:00:00:00:00:c8"
NOVA_PORT = 8775
URL = "http://169.254.169.254/latest/meta-data/instance-id"

FAKE_NOVA = r'''
"""Fake Nova metadata API: answers with the X-Instance-ID it was sent,
appends every request's headers to a JSON-lines file; /slow sleeps first."""
import http.server, json, socketserver, sys, time
port, log = int(sys.argv[1]), sys.argv[2]

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": dict(self.headers.items())}) + "\n")
        if self.path.startswith("/slow"):
            time.sleep(30)
        body = (self.headers.get("X-Instance-ID") or "").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def server_bind(self):                 # no getfqdn(): no DNS in a namespace (docs/LAB.md section 5)
        socketserver.TCPServer.server_bind(self)

srv = Server(("127.0.0.1", port), Handler)
print("listening", flush=True)
srv.serve_forever()
'''


class MetaHost:
    """The management host on the lab's underlay: proxy + fake Nova."""

    def __init__(self, lab, controller, workdir):
        self.lab, self.controller = lab, controller
        self.netns = f"{lab.prefix}-meta"        # removed by lab.close() even on failure
        self.dir = workdir
        self.nova_log = os.path.join(workdir, "nova.jsonl")
        self.proxy_log = os.path.join(workdir, "proxy.log")
        self.procs: dict[str, subprocess.Popen] = {}

    def create(self):
        ns, wire = self.netns, self.lab.wire_netns
        run("ip", "netns", "add", ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", "mproxy",
            "netns", wire)
        run("ip", "-n", wire, "link", "set", "mproxy", "master", "underlay", "up")
        run("ip", "-n", ns, "link", "set", "eth0", "address", PROXY_MAC)
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", ns, "addr", "add", f"{PROXY_IP}/24", "dev", "eth0")
        # The VMs' source addresses are on-link here: ARP finds the node that has the port.
        run("ip", "-n", ns, "route", "add", "100.64.0.0/10", "dev", "eth0")
        run("ethtool", "-K", "eth0", "tx", "off", netns=ns)      # docs/LAB.md section 3
        return self

    def start_nova(self):
        script = os.path.join(self.dir, "fake_nova.py")
        with open(script, "w") as f:
            f.write(FAKE_NOVA)
        p = subprocess.Popen(["ip", "netns", "exec", self.netns, sys.executable, script,
                              str(NOVA_PORT), self.nova_log],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs["nova"] = p
        assert p.stdout.readline().strip() == "listening"

    def stop_nova(self):
        self._stop("nova")

    def start_proxy(self, timeout_s: int = 3):
        log = open(self.proxy_log, "a")
        p = subprocess.Popen(["ip", "netns", "exec", self.netns, sys.executable, "-m",
                              "controller.proxy", "--state-dir", self.controller.state_dir,
                              "--metadata-listen-host", PROXY_IP, "--proxy-port", str(PROXY_PORT),
                              "--nova-metadata-url", f"http://127.0.0.1:{NOVA_PORT}",
                              "--metadata-proxy-shared-secret", SECRET, "--timeout", str(timeout_s)],
                             cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs["proxy"] = p
        wait_until(lambda: "listening on" in self.log() or p.poll() is not None, 30,
                   what="metadata proxy")
        assert p.poll() is None, self.log()

    def log(self) -> str:
        with open(self.proxy_log, errors="replace") as f:
            return f.read()

    def nova_requests(self) -> list[dict]:
        if not os.path.exists(self.nova_log):
            return []
        with open(self.nova_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def _stop(self, name):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.kill()
        if p:
            p.wait(10)

    def close(self):
        for name in list(self.procs):
            self._stop(name)


@pytest.fixture
def env(controller_factory, lab_factory, tmp_path):
    c = controller_factory(args=["--proxy-address", PROXY_IP, "--proxy-port", str(PROXY_PORT),
                                 "--proxy-mac", PROXY_MAC])
    lab = lab_factory(2, c, tunnel_type="gre")
    for hv in lab.hvs:
        hv.bootstrap("--metadata-bridge", "br-phy")
        assert hv.ofport("patch-meta") == tables.INT_PATCH_META_OFPORT
        assert "meta-int" in hv.ports("br-phy")
    assert "nothing to change" in lab.hvs[0].bootstrap("--metadata-bridge", "br-phy").stdout
    meta = MetaHost(lab, c, str(tmp_path)).create()
    meta.start_nova()
    meta.start_proxy()
    yield c, lab, meta
    meta.close()


def make_vm(c, lab, hv, net, project, ip, route_via=None, route=True):
    """A Nova-style VM: port with device_id through the API, plugged, address
    set, and a route to 169.254.169.254 (on-link, or via the DHCP port as
    DHCP option 121 gives it)."""
    instance = str(uuid.uuid4())
    port = Api(c.url).port(net, project_id=project, device_id=instance, device_owner="compute:nova",
                           fixed_ips=[{"ip_address": ip}])
    vm = lab.add_vm(hv, port)
    vm.ip, vm.instance, vm.project = ip, instance, project
    vm.set_ip(ip + "/24", mtu=net["mtu"])
    via = ["via", route_via] if route_via else ["dev", "eth0"]
    if route:
        vm.exec("ip", "route", "add", "169.254.169.254/32", *via)
    wait_until(lambda: Api(c.url).get(f"/ports/{port['id']}")["port"]["status"] == "ACTIVE", 30,
               what="port ACTIVE")
    return vm


def curl(vm, url=URL) -> tuple[int, str]:
    r = vm.exec("curl", "-s", "-m", "30", "-w", "\n%{http_code}", url, check=False, timeout=60)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def dhcp_address(c, net) -> str | None:
    ports = Api(c.url).get(f"/ports?network_id={net['id']}&device_owner=network:dhcp")["ports"]
    return ports[0]["fixed_ips"][0]["ip_address"] if ports else None


@pytest.mark.lab
def test_vms_of_two_tenants_with_the_same_ips_get_their_own_metadata(env):
    c, lab, meta = env
    hv1, hv2 = lab.hvs
    api = Api(c.url)
    nets = {}
    for project in ("p-red", "p-blue"):
        net = api.network(f"net-{project}", project_id=project)
        api.subnet(net, "10.30.0.0/24", project_id=project)
        nets[project] = net
    via = dhcp_address(c, nets["p-blue"])
    vms = [make_vm(c, lab, hv1, nets["p-red"], "p-red", "10.30.0.11"),
           make_vm(c, lab, hv2, nets["p-red"], "p-red", "10.30.0.12"),
           make_vm(c, lab, hv2, nets["p-blue"], "p-blue", "10.30.0.11", route_via=via),
           make_vm(c, lab, hv1, nets["p-blue"], "p-blue", "10.30.0.12", route_via=via)]
    for vm in vms:
        assert curl(vm) == (200, vm.instance), meta.log()
    # busybox wget, as a minimal guest image would do it (its -T crashes busybox 1.35 here)
    r = vms[2].exec("busybox", "wget", "-q", "-O", "-", URL, check=False, timeout=60)
    assert r.stdout == vms[2].instance, r.stderr
    seen = meta.nova_requests()
    assert len(seen) == 5
    for vm, req in zip(vms + [vms[2]], seen):
        h = req["headers"]
        assert req["path"] == "/latest/meta-data/instance-id"
        assert (h["X-Instance-ID"], h["X-Tenant-ID"], h["X-Forwarded-For"]) == \
            (vm.instance, vm.project, vm.ip)
        expected = hmac.new(SECRET.encode(), vm.instance.encode(), hashlib.sha256).hexdigest()
        assert hmac.compare_digest(h["X-Instance-ID-Signature"], expected)


@pytest.mark.lab
def test_vms_on_vlan_and_behind_a_router_get_their_metadata(env):
    """A VLAN network and a GRE network behind one router; the VMs have only
    their default route, via the router: the request goes to the router's
    MAC and is caught in table 22 before L3, on either network type."""
    c, lab, meta = env
    hv1, hv2 = lab.hvs
    red = Api(c.url, project="p-red")
    vlan = red.network("net-vlan", **{"provider:network_type": "vlan",
                                      "provider:physical_network": "physnet1",
                                      "provider:segmentation_id": 350})
    gre = red.network("net-gre")
    router = red.post("/routers", {"router": {"name": "r-meta"}})["router"]
    for net, cidr in ((vlan, "10.32.0.0/24"), (gre, "10.33.0.0/24")):
        sub = red.subnet(net, cidr)
        red.put(f"/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    vms = [make_vm(c, lab, hv1, vlan, "p-red", "10.32.0.11", route=False),
           make_vm(c, lab, hv2, vlan, "p-red", "10.32.0.12", route=False),
           make_vm(c, lab, hv2, gre, "p-red", "10.33.0.13", route=False)]
    for vm in vms:
        vm.exec("ip", "route", "add", "default", "via", vm.ip.rsplit(".", 1)[0] + ".1")
    # The router routes, across hosts (retries cover its flows being pushed right now).
    assert any(vms[0].ping(vms[2].ip, timeout=1) for _ in range(20))
    for vm in vms:
        assert curl(vm) == (200, vm.instance), meta.log()
    seen = meta.nova_requests()
    assert [(r["headers"]["X-Instance-ID"], r["headers"]["X-Forwarded-For"]) for r in seen] == \
        [(vm.instance, vm.ip) for vm in vms]


@pytest.mark.lab
def test_nova_slow_or_down_gives_a_5xx(env):
    c, lab, meta = env
    net = Api(c.url).network("net-1", project_id="p-red")
    Api(c.url).subnet(net, "10.31.0.0/24", project_id="p-red")
    vm = make_vm(c, lab, lab.hvs[1], net, "p-red", "10.31.0.20", route=False)
    # No router on this network: DHCP option 121 routes 169.254.169.254 via the DHCP port.
    lease = vm.dhcp()
    assert lease and lease["ip"] == "10.31.0.20", lease
    routes = lease.get("staticroutes", "").split()
    nexthop = dict(zip(routes[::2], routes[1::2])).get("169.254.169.254/32")
    assert nexthop == dhcp_address(c, net), lease
    vm.exec("ip", "route", "add", "169.254.169.254/32", "via", nexthop)
    assert curl(vm) == (200, vm.instance)
    code, _body = curl(vm, "http://169.254.169.254/slow")      # proxy timeout 3 s
    assert code == 504
    meta.stop_nova()
    code, body = curl(vm)
    assert code == 502 and "unavailable" in body
    log = meta.log()
    assert "no answer from" in log and "unreachable" in log
    # Not an HTTP GET/HEAD: refused by the proxy, Nova never asked.
    r = vm.exec("curl", "-s", "-m", "30", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                "--data", "x", URL, check=False, timeout=60)
    assert r.stdout == "405"


def test_quantum_controller_starts_the_proxy_when_configured(controller_factory):
    port = free_port()
    c = controller_factory(args=["--metadata-listen-host", "127.0.0.1", "--proxy-port", str(port)])
    wait_until(lambda: "metadata proxy listening" in c.log_text(), 30, what="proxy started")
    # Loopback is not a VM's source address: 404, and a log line saying why.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/latest/meta-data/instance-id", timeout=30)
    assert e.value.code == 404
    wait_until(lambda: "unknown source" in c.log_text(), 10, what="log line")
