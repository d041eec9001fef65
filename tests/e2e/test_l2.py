"""L2 on real Open vSwitch, agentless: two hypervisors of the lab (each its own
ovsdb-server + ovs-vswitchd, set up by the real node-bootstrap), VMs plugged
the way Nova plugs them, networks and ports created through the REST API, the
ports bound by the controller's OVSDB monitor and programmed by its reconciler.
Every test runs in GRE mode and in VLAN mode (provider VLAN on a shared wire).
"""
from __future__ import annotations

import itertools
import re
import time

import pytest

from tests.e2e.test_reconciler import Api
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.proc import wait_until

pytestmark = pytest.mark.lab

_seg = itertools.count(200)
ICMP_IP_OVERHEAD = 28


@pytest.fixture(params=["gre", "vlan"])
def mode(request):
    return request.param


@pytest.fixture
def env(mode, controller_factory, lab_factory):
    c = controller_factory()
    lab = lab_factory(2, c, tunnel_type="gre")
    return Env(mode, c, lab)


class Env:
    def __init__(self, mode, controller, lab):
        self.mode, self.c, self.lab = mode, controller, lab
        self.hv1, self.hv2 = lab.hvs

    def api(self, project="p-red"):
        return Api(self.c.url, project)

    def network(self, name, project="p-red", cidr="10.10.0.0/24", **attrs):
        api = Api(self.c.url)            # admin: provider attributes
        seg = next(_seg)
        if self.mode == "gre":
            prov = {"provider:network_type": "gre", "provider:segmentation_id": seg}
        else:
            prov = {"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                    "provider:segmentation_id": seg}
        net = api.network(name, project_id=project, **prov, **attrs)
        api.subnet(net, cidr, project_id=project)
        return net

    def vm(self, net, hv, project="p-red", ip=None):
        """A port through the API, a VM plugged for it, its address configured
        statically (DHCP is tested elsewhere), waiting for the port ACTIVE."""
        extra = {"fixed_ips": [{"ip_address": ip}]} if ip else {}
        port = Api(self.c.url).port(net, project_id=project, **extra)
        vm = self.lab.add_vm(hv, port)
        vm.ip = port["fixed_ips"][0]["ip_address"]
        vm.set_ip(vm.ip + "/24", mtu=net["mtu"])
        self.wait_status(port["id"], "ACTIVE")
        return vm

    def status(self, port_id):
        return Api(self.c.url).get(f"/ports/{port_id}")["port"]["status"]

    def wait_status(self, port_id, status):
        wait_until(lambda: self.status(port_id) == status, 30, what=f"port {status}")


def reaches(a, b, tries=10):
    """a can ping b (retries cover flows being pushed right now)."""
    for _ in range(tries):
        if a.ping(b.ip, count=1, timeout=1):
            return True
    return False


def test_same_host_and_cross_host_ping_and_tcp(env):
    net = env.network("n1")
    a, b, c = env.vm(net, env.hv1), env.vm(net, env.hv1), env.vm(net, env.hv2)
    assert reaches(a, b)
    assert reaches(a, c) and reaches(c, b)
    assert a.ping(c.ip, count=5, interval=0.05)
    sent, got = env.lab.tcp_transfer(a, c, c.ip, nbytes=10 * 2**20)
    assert sent.get("bytes") == 10 * 2**20 and sent == got
    sent, got = env.lab.tcp_transfer(c, b, b.ip, nbytes=10 * 2**20)
    assert sent.get("bytes") == 10 * 2**20 and sent == got


def test_networks_and_tenants_are_isolated_even_with_overlapping_cidrs(env):
    red = env.network("red", project="p-red", cidr="10.20.0.0/24")
    blue = env.network("blue", project="p-blue", cidr="10.20.0.0/24")
    r1, r2 = env.vm(red, env.hv1, "p-red", ip="10.20.0.11"), env.vm(red, env.hv2, "p-red", ip="10.20.0.12")
    b1, b2 = env.vm(blue, env.hv1, "p-blue", ip="10.20.0.11"), env.vm(blue, env.hv2, "p-blue", ip="10.20.0.12")
    assert reaches(r1, r2) and reaches(b1, b2)
    assert r2.mac in r1.exec("ip", "neigh", "show", "10.20.0.12").stdout
    assert b2.mac in b1.exec("ip", "neigh", "show", "10.20.0.12").stdout
    # With red's 10.20.0.12 gone, blue's 10.20.0.12 is still out of red's reach.
    r2.unplug()
    env.wait_status(r2.port_id, "DOWN")
    r1.exec("ip", "neigh", "flush", "dev", "eth0")
    assert not r1.ping("10.20.0.12", count=3, timeout=1)
    # ...even when red addresses blue's MAC directly.
    r1.exec("ip", "neigh", "replace", "10.20.0.12", "lladdr", b2.mac, "dev", "eth0", "nud", "permanent")
    assert not r1.ping("10.20.0.12", count=3, timeout=1)
    assert reaches(b1, b2)


def test_unplug_and_replug(env):
    net = env.network("n1")
    a, c = env.vm(net, env.hv1), env.vm(net, env.hv2)
    assert reaches(a, c)
    c.unplug()
    env.wait_status(c.port_id, "DOWN")
    assert not a.ping(c.ip, count=2, timeout=1)
    c.replug()
    env.wait_status(c.port_id, "ACTIVE")
    assert reaches(a, c)
    c.unplug()
    c.replug(env.hv1)                 # moved to the other hypervisor (live-migration style)
    env.wait_status(c.port_id, "ACTIVE")
    wait_until(lambda: reaches(a, c, tries=1), 30, what="ping after the move")


def test_admin_state_down_stops_traffic(env):
    net = env.network("n1")
    a, c = env.vm(net, env.hv1), env.vm(net, env.hv2)
    api = Api(env.c.url)
    assert reaches(a, c)
    api.put(f"/ports/{c.port_id}", {"port": {"admin_state_up": False}})
    wait_until(lambda: not a.ping(c.ip, count=1, timeout=1), 30, what="port admin down")
    assert not a.ping(c.ip, count=3, timeout=1)
    api.put(f"/ports/{c.port_id}", {"port": {"admin_state_up": True}})
    assert wait_until(lambda: reaches(a, c, tries=1), 30, what="port admin up")
    api.put(f"/networks/{net['id']}", {"network": {"admin_state_up": False}})
    wait_until(lambda: not a.ping(c.ip, count=1, timeout=1), 30, what="network admin down")
    assert not a.ping(c.ip, count=3, timeout=1)
    api.put(f"/networks/{net['id']}", {"network": {"admin_state_up": True}})
    wait_until(lambda: reaches(a, c, tries=1), 30, what="network admin up")


def test_mtu_is_respected(env):
    net = env.network("n1")
    a, c = env.vm(net, env.hv1), env.vm(net, env.hv2)
    mtu = net["mtu"]
    assert mtu == (1458 if env.mode == "gre" else 1500)
    assert reaches(a, c)
    largest = mtu - ICMP_IP_OVERHEAD
    assert a.ping(c.ip, count=3, size=largest, dont_fragment=True)
    assert not a.ping(c.ip, count=1, size=largest + 1, dont_fragment=True)


def test_controller_sigkill_loses_no_packet(env):
    net = env.network("n1")
    a, c = env.vm(net, env.hv1), env.vm(net, env.hv2)
    assert reaches(a, c)
    # 100 packets/s for 8 s across hosts while the controller dies and comes back.
    ping = a.popen("ping", "-n", "-i", "0.01", "-c", "800", "-W", "1", c.ip,
                   stdout=-1, stderr=-1, text=True)
    try:
        time.sleep(1.0)
        env.c.kill()
        time.sleep(1.0)
        env.c.start()
        out, _ = ping.communicate(timeout=60)
    finally:
        if ping.poll() is None:
            ping.kill()
            ping.wait()
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m and m.group(1) == "800" and m.group(2) == "800", out
    # The restarted controller found everything in place.
    log = env.c.log_text()
    assert "Traceback" not in log
    assert reaches(a, c)
