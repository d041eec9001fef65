"""Security groups on real Open vSwitch: rules made through the REST API
enforced by the conntrack flows (controller/flows/security_groups.py) on
traffic between VM namespaces of two hypervisors, GRE and VLAN.

One lab per mode, many checks on it (the lab's bring-up is the expensive
part). Reachability is asked with tests/lab/probe.py (TCP / UDP echo that
answers with the server's name) and ping. Flows are pushed asynchronously
after an API call: a check that must change polls until it does.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import tests.lab
from tests.e2e.test_l2 import Env, mode  # noqa: F401 (the gre/vlan fixture)
from tests.e2e.test_l3 import Cloud, cli, seen_as, WHOAMI_PORT
from tests.e2e.test_reconciler import Api
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.proc import wait_until

pytestmark = pytest.mark.lab

PROBE = os.path.join(os.path.dirname(tests.lab.__file__), "probe.py")
PROJECT = "p-sg"
VIP = "10.30.0.200"


def answers(vm, proto, ip, port, src=None):
    """The name of the server that answered, or None."""
    r = vm.exec(sys.executable, PROBE, "check", proto, ip, port, *([src] if src else []),
                check=False, timeout=15)
    return r.stdout.strip() if r.returncode == 0 else None


def pings(vm, ip, src=None):
    return vm.ping(ip, count=1, timeout=1) if src is None else \
        vm.exec("ping", "-n", "-c", "1", "-W", "1", "-I", src, ip, check=False).returncode == 0


def becomes(predicate, what):
    return wait_until(predicate, 30, interval=0.2, what=what)


class Servers:
    def __init__(self):
        self.procs = []

    def start(self, vm, *specs, name=None):
        p = vm.popen(sys.executable, PROBE, "serve", name or vm.name, *specs,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "listening", p.stderr.read()
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def servers():
    s = Servers()
    yield s
    s.stop()


@pytest.fixture
def env(mode, controller_factory, lab_factory):
    c = controller_factory()
    env = Env(mode, c, lab_factory(2, c, tunnel_type="gre"))
    yield env
    assert "Traceback" not in c.log_text()


class Tenant:
    def __init__(self, env):
        self.env, self.api = env, Api(env.c.url, PROJECT)
        self.net = env.network("sg-net", project=PROJECT, cidr="10.30.0.0/24")

    def default_group(self):
        groups = self.api.get(f"/security-groups?name=default&project_id={PROJECT}")["security_groups"]
        return groups[0]["id"]

    def group(self, name, *rules):
        g = self.api.post("/security-groups", {"security_group": {"name": name}})["security_group"]
        for r in rules:
            self.rule(g["id"], **r)
        return g["id"]

    def rule(self, group_id, direction="ingress", **attrs):
        body = {"security_group_id": group_id, "direction": direction, "ethertype": "IPv4", **attrs}
        return self.api.post("/security-group-rules", {"security_group_rule": body})["security_group_rule"]["id"]

    def vm(self, hv, name, ip, **port_attrs):
        port = self.api.port(self.net, name=name, fixed_ips=[{"ip_address": ip}], **port_attrs)
        vm = self.env.lab.add_vm(hv, port, name=name)
        vm.ip = ip
        vm.set_ip(ip + "/24", mtu=self.net["mtu"])
        self.env.wait_status(port["id"], "ACTIVE")
        return vm

    def set_groups(self, vm, groups):
        self.api.put(f"/ports/{vm.port_id}", {"port": {"security_groups": groups}})


def tcp(port_min, port_max=None, **kw):
    return {"protocol": "tcp", "port_range_min": port_min, "port_range_max": port_max or port_min, **kw}


def test_rules_membership_state_and_port_security(env, servers):
    t = Tenant(env)
    default = t.default_group()
    a = t.vm(env.hv1, "a", "10.30.0.11")                       # default group
    srv = t.group("srv", tcp(8000, 8009), {"protocol": "udp", "port_range_min": 5353,
                                           "port_range_max": 5353, "remote_ip_prefix": "10.30.0.11/32"},
                  {"protocol": "icmp", "remote_group_id": default})
    other = t.group("other")                                    # egress only
    s = t.vm(env.hv2, "s", "10.30.0.12", security_groups=[srv])
    x = t.vm(env.hv1, "x", "10.30.0.13", security_groups=[other])
    servers.start(s, "tcp:7999", "tcp:8000", "tcp:8009", "tcp:8010", "tcp:9000", "tcp:9001",
                  "udp:5353", "udp:5354")

    # Port ranges at their edges; UDP by remote prefix; ICMP by remote group.
    becomes(lambda: answers(a, "tcp", s.ip, 8000) == "s", "tcp 8000 allowed")
    assert answers(a, "tcp", s.ip, 8009) == "s"
    assert answers(a, "tcp", s.ip, 7999) is None and answers(a, "tcp", s.ip, 8010) is None
    assert answers(a, "udp", s.ip, 5353) == "s"
    assert answers(x, "udp", s.ip, 5353) is None              # not from 10.30.0.11
    assert answers(a, "udp", s.ip, 5354) is None
    assert answers(x, "tcp", s.ip, 8000) == "s"               # from anywhere
    assert pings(a, s.ip) and not pings(x, s.ip)
    # The default group admits only its members: s and x cannot reach a.
    assert not pings(s, a.ip) and not pings(x, a.ip)

    # Remote group membership follows ports joining and leaving.
    t.set_groups(x, [other, default])
    becomes(lambda: pings(x, s.ip), "x joined default: icmp to s")
    assert pings(x, a.ip)
    t.set_groups(x, [other])
    becomes(lambda: not pings(x, s.ip), "x left default")

    # Stateful: an established connection survives an unrelated rule change
    # and is cut when the rule that allowed it goes.
    r9000 = t.rule(srv, **tcp(9000))
    becomes(lambda: answers(a, "tcp", s.ip, 9000) == "s", "tcp 9000 allowed")
    log = os.path.join(env.lab.dir, "stream.log")
    with open(log, "w") as out:
        stream = a.popen(sys.executable, PROBE, "stream", s.ip, 9000, stdout=out, stderr=out)
    try:
        becomes(lambda: "ok 3" in open(log).read(), "stream running")
        t.rule(srv, **tcp(9001))
        becomes(lambda: answers(a, "tcp", s.ip, 9001) == "s", "unrelated rule in place")
        seen = open(log).read().count("ok ")
        becomes(lambda: open(log).read().count("ok ") >= seen + 5, "stream goes on")
        assert "stalled" not in open(log).read()
        t.api.delete(f"/security-group-rules/{r9000}")
        becomes(lambda: "stalled" in open(log).read(), "stream cut by the rule's removal")
        assert answers(a, "tcp", s.ip, 9000) is None
    finally:
        if stream.poll() is None:
            stream.kill()
        stream.wait()

    # Anti-spoofing: another source IP, then another MAC, get nowhere.
    x.exec("ip", "addr", "add", "10.30.0.99/24", "dev", "eth0")
    assert answers(x, "tcp", s.ip, 8000, src="10.30.0.99") is None
    assert answers(x, "tcp", s.ip, 8000) == "s"
    x.exec("ip", "link", "set", "eth0", "address", "fa:16:3e:99:99:99")
    assert answers(x, "tcp", s.ip, 8000) is None
    x.exec("ip", "link", "set", "eth0", "address", x.mac)

    # port_security_enabled=false: no filtering, no anti-spoofing.
    p = t.vm(env.hv2, "p", "10.30.0.14", port_security_enabled=False, security_groups=[])
    servers.start(p, "tcp:8000")
    becomes(lambda: answers(x, "tcp", p.ip, 8000) == "p", "unfiltered port reachable")
    p.exec("ip", "addr", "add", "10.30.0.98/24", "dev", "eth0")
    assert answers(p, "tcp", s.ip, 8000, src="10.30.0.98") == "s"

    # Allowed address pairs: a VIP moving between two VMs; the VIP is also a
    # member address of their groups (s admits icmp from the default group).
    pair = [{"ip_address": VIP}]
    v1 = t.vm(env.hv1, "v1", "10.30.0.21", security_groups=[srv, default], allowed_address_pairs=pair)
    v2 = t.vm(env.hv2, "v2", "10.30.0.22", security_groups=[srv, default], allowed_address_pairs=pair)
    servers.start(v1, "tcp:8000")
    servers.start(v2, "tcp:8000")
    v1.exec("ip", "addr", "add", VIP + "/24", "dev", "eth0")
    becomes(lambda: answers(a, "tcp", VIP, 8000) == "v1", "VIP on v1")
    assert pings(v1, s.ip, src=VIP)
    v1.exec("ip", "addr", "del", VIP + "/24", "dev", "eth0")
    v2.exec("ip", "addr", "add", VIP + "/24", "dev", "eth0")
    for vm in (a, s):                 # (keepalived would send a gratuitous ARP)
        vm.exec("ip", "neigh", "flush", "dev", "eth0")
    becomes(lambda: answers(a, "tcp", VIP, 8000) == "v2", "VIP moved to v2")
    assert pings(v2, s.ip, src=VIP)
    # Without the pair the VIP is spoofed.
    t.api.put(f"/ports/{v2.port_id}", {"port": {"allowed_address_pairs": []}})
    becomes(lambda: answers(a, "tcp", VIP, 8000) is None, "VIP no longer allowed on v2")


@pytest.mark.parametrize("mode", ["gre"])        # the NAT flows are the same on VLAN
def test_floating_ip_and_snat_traffic_is_filtered_by_the_vms_group(mode, controller_factory, lab_factory):
    c = controller_factory()
    cloud = Cloud(mode, c, lab_factory(2, c, tunnel_type="gre", gateways={2}))
    vm1 = cloud.vm(cloud.net1, cloud.hv1, "vm1")
    group = cli(cloud.url, "port", "show", "vm1-port")["security_group_ids"][0]
    fip = cli(cloud.url, "floating", "ip", "create", "net-ext")
    addr = fip["floating_ip_address"]
    cli(cloud.url, "floating", "ip", "set", "--port", "vm1-port", fip["id"], "--no-json")
    whoami = cloud.ext_host.whoami_server(WHOAMI_PORT)
    servers = Servers()
    try:
        servers.start(vm1, "tcp:8080")
        # Outbound (SNAT'd through the floating IP) is allowed by the default group's egress.
        becomes(lambda: seen_as(vm1, "192.168.0.1") == addr, "vm1 out as its floating IP")
        # Inbound to the floating IP: the default group admits only its members.
        assert not cloud.ext_host.ping(addr, count=2, timeout=1)
        assert answers(cloud.ext_host, "tcp", addr, 8080) is None
        cli(cloud.url, "security", "group", "rule", "create", group, "--ingress", "--protocol", "tcp",
            "--dst-port", "8080", "--remote-ip", "192.168.0.0/24")
        becomes(lambda: answers(cloud.ext_host, "tcp", addr, 8080) == "vm1", "tcp 8080 via the floating IP")
        assert not cloud.ext_host.ping(addr, count=1, timeout=1)
        # Egress filtered too: without egress rules, SNAT'd traffic stops.
        cli(cloud.url, "floating", "ip", "unset", "--port", fip["id"], "--no-json")
        becomes(lambda: seen_as(vm1, "192.168.0.1") == cloud.gw_ip, "vm1 out through SNAT")
        for r in cli(cloud.url, "security", "group", "rule", "list", group, "--egress"):
            cli(cloud.url, "security", "group", "rule", "delete", r["ID"], "--no-json")
        becomes(lambda: seen_as(vm1, "192.168.0.1") is None, "SNAT traffic filtered by egress")
    finally:
        servers.stop()
        whoami.kill()
        whoami.wait()
    assert "Traceback" not in c.log_text()
