"""Routing, SNAT and floating IPs on real Open vSwitch, driven by the
`openstack` CLI: the seeds' workflow end to end.

Lab: hv1 (compute) and hv2 (compute + gateway: br-ex on the external wire),
an "external" namespace on that wire playing the upstream router
192.168.0.1. net1 10.0.0.0/24 and net2 10.0.1.0/24 (GRE or provider VLAN),
net-ext 192.168.0.0/24 (flat on physnet `public`), routerA with its gateway
on net-ext and both subnets. VM addresses are configured statically.
"""
from __future__ import annotations

import itertools
import json
import re
import subprocess
import time

import pytest

from controller.flows import cookies
from tests.e2e.test_reconciler import Api, resynced, round_totals
from tests.lab.external import ExternalWire, whoami_client
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.proc import wait_until
from tests.support.tools import venv_bin

pytestmark = pytest.mark.lab

_seg = itertools.count(300)
WHOAMI_PORT = 7000


def cli(url, *args):
    """The openstack CLI (noauth); -> parsed JSON output (or None)."""
    argv = [venv_bin("openstack"), "--os-auth-type", "none", "--os-endpoint", url, *map(str, args)]
    show = args[-1] != "--no-json"
    if not show:
        argv.pop()
    r = subprocess.run(argv + (["-f", "json"] if show else []), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"openstack {' '.join(map(str, args))}: {r.stderr}"
    return json.loads(r.stdout) if show and r.stdout.strip() else None


class Cloud:
    """The seeds' topology, built through the CLI."""

    def __init__(self, mode, controller, lab):
        self.url, self.lab = controller.url, lab
        self.c = controller
        self.hv1, self.hv2 = lab.hvs
        self.wire = ExternalWire(lab)
        self.wire.attach_gateway(self.hv2)
        self.ext_host = self.wire.add_host("ext", "192.168.0.1/24")
        self.ext = cli(self.url, "network", "create", "net-ext", "--external",
                       "--provider-network-type", "flat", "--provider-physical-network", "public")
        cli(self.url, "subnet", "create", "sub-ext", "--network", "net-ext", "--no-dhcp",
            "--subnet-range", "192.168.0.0/24", "--gateway", "192.168.0.1",
            "--allocation-pool", "start=192.168.0.10,end=192.168.0.99")
        self.net1 = self.network(mode, "net1", "10.0.0.0/24")
        self.net2 = self.network(mode, "net2", "10.0.1.0/24")
        self.router = cli(self.url, "router", "create", "routerA")
        cli(self.url, "router", "set", "routerA", "--external-gateway", "net-ext", "--no-json")
        cli(self.url, "router", "add", "subnet", "routerA", "net1-sub", "--no-json")
        cli(self.url, "router", "add", "subnet", "routerA", "net2-sub", "--no-json")
        info = cli(self.url, "router", "show", "routerA")["external_gateway_info"]
        self.gw_ip = info["external_fixed_ips"][0]["ip_address"]

    def open_to_outside(self, port_name):
        """What a user does to reach a VM from outside: ingress rules (ping,
        and TCP to the transfer port) in the port's security group."""
        group = cli(self.url, "port", "show", port_name)["security_group_ids"][0]
        cli(self.url, "security", "group", "rule", "create", group, "--ingress", "--protocol", "icmp",
            "--remote-ip", "192.168.0.0/24")
        cli(self.url, "security", "group", "rule", "create", group, "--ingress", "--protocol", "tcp",
            "--dst-port", "5001", "--remote-ip", "192.168.0.0/24")

    def network(self, mode, name, cidr):
        args = ["--provider-network-type", "gre", "--provider-segment", next(_seg)]
        if mode == "vlan":
            args = ["--provider-network-type", "vlan", "--provider-physical-network", "physnet1",
                    "--provider-segment", next(_seg)]
        net = cli(self.url, "network", "create", name, *args)
        cli(self.url, "subnet", "create", f"{name}-sub", "--network", name, "--subnet-range", cidr)
        return net

    def vm(self, net, hv, name):
        port = cli(self.url, "port", "create", f"{name}-port", "--network", net["name"])
        vm = self.lab.add_vm(hv, port, name=name)
        vm.ip = port["fixed_ips"][0]["ip_address"]
        gateway = vm.ip.rsplit(".", 1)[0] + ".1"
        vm.set_ip(vm.ip + "/24", gateway=gateway, mtu=net["mtu"])
        try:
            wait_until(lambda: cli(self.url, "port", "show", port["id"])["status"] == "ACTIVE", 60,
                       what=f"{name} ACTIVE")
        except TimeoutError:
            raise AssertionError(f"{name} not ACTIVE; controller log:\n{self.c.log_tail(60)}")
        return vm


@pytest.fixture(params=["gre", "vlan"])
def mode(request):
    return request.param


@pytest.fixture
def cloud(mode, controller_factory, lab_factory):
    c = controller_factory()
    lab = lab_factory(2, c, tunnel_type="gre", gateways={2})
    cloud = Cloud(mode, c, lab)
    yield cloud
    assert "Traceback" not in c.log_text()


def purge_datapath_caches(cloud, router_id):
    """Once the router's flows are back on every hypervisor, empty OVS's
    datapath flow caches. Works around an OVS userspace-datapath bug of the
    lab's Debian OVS 3.1.0, fixed upstream in 2.17.8, 3.0.5, 3.1.3 and 3.2.0
    ("dpif-netdev: Fix dpif_netdev_flow_put.", 9c600710b on branch-3.1): a
    revalidator's modify of one megaflow is applied to whichever overlapping
    megaflow the datapath finds first. While the router was down, its traffic
    got a coarser drop megaflow next to the finer one kept from before; the
    SNAT actions of re-enabling then went to the coarse one (deleted next),
    and the fine one stayed `drop` for as long as traffic kept it alive (seen
    in ~1 of 6 VLAN runs; vswitchd's dpif_netdev debug log shows the
    flow_mod of the fine key applied to the coarse ufid). See PIPELINE.md."""
    prefix = f"cookie={hex(cookies.cookie('router', router_id))},"
    for hv in cloud.lab.hvs:
        wait_until(lambda: prefix in hv.dump_flows("br-int"), 30, what=f"router flows on {hv.name}")
        hv.appctl("revalidator/purge")


def reaches(src, ip, tries=20):
    """src can ping ip (retries cover flows being pushed right now)."""
    return any(src.ping(ip, count=1, timeout=1) for _ in range(tries))


def cut_off(src, ip):
    """Once flows are updated, no ping gets through (polls until then)."""
    wait_until(lambda: not src.ping(ip, count=2, timeout=1, interval=0.2), 30,
               what=f"{src.name} cut off from {ip}")
    return True


def ttl1_ping(src, ip):
    """One TTL-1 echo request to ip; -> ping's output. ping stops at the
    first answer, an echo reply or an ICMP error (-W only bounds a silence)."""
    r = src.exec("ping", "-n", "-c", "1", "-W", "10", "-t", "1", ip, check=False, timeout=30)
    assert "bytes from" not in r.stdout, "a TTL 1 packet was routed"
    return r.stdout


def seen_as(src, host_ip):
    """The source address the external host's whoami server saw."""
    r = src.exec(*whoami_client(host_ip, WHOAMI_PORT), check=False, timeout=15)
    return r.stdout.strip() if r.returncode == 0 else None


def test_routing_snat_and_floating_ip(cloud):
    vm1 = cloud.vm(cloud.net1, cloud.hv1, "vm1")
    vm2 = cloud.vm(cloud.net2, cloud.hv2, "vm2")
    ext = cloud.ext_host
    whoami = ext.whoami_server(WHOAMI_PORT)
    try:
        # East-west, across hosts, both ways; TCP too.
        assert reaches(vm1, vm2.ip) and reaches(vm2, vm1.ip)
        assert vm1.ping(vm2.ip, count=5, interval=0.05)
        sent, got = cloud.lab.tcp_transfer(vm1, vm2, vm2.ip, nbytes=5 * 2**20)
        assert sent.get("bytes") == 5 * 2**20 and sent == got
        # The router's own addresses answer ping.
        assert reaches(vm1, "10.0.0.1") and reaches(vm1, "10.0.1.1")

        # North-south without a floating IP: SNAT to the router's gateway address.
        assert reaches(vm1, "192.168.0.1") and reaches(vm2, "192.168.0.1")
        assert seen_as(vm1, "192.168.0.1") == cloud.gw_ip
        assert seen_as(vm2, "192.168.0.1") == cloud.gw_ip
        # The outside cannot open connections to a VM without a floating IP.
        assert not ext.ping(vm1.ip, count=2, timeout=1)

        # A floating IP for vm1: reachable from outside (ping, TCP, which its
        # security group allows), and vm1's own traffic leaves with the
        # floating address.
        cloud.open_to_outside("vm1-port")
        fip = cli(cloud.url, "floating", "ip", "create", "net-ext")
        addr = fip["floating_ip_address"]
        cli(cloud.url, "floating", "ip", "set", "--port", "vm1-port", fip["id"], "--no-json")
        assert reaches(ext, addr)
        sent, got = cloud.lab.tcp_transfer(ext, vm1, addr, nbytes=5 * 2**20)
        assert sent.get("bytes") == 5 * 2**20 and sent == got
        wait_until(lambda: seen_as(vm1, "192.168.0.1") == addr, 30, what="vm1 seen as its floating IP")
        assert seen_as(vm2, "192.168.0.1") == cloud.gw_ip

        # Disassociated: the outside loses vm1, which falls back to SNAT.
        cli(cloud.url, "floating", "ip", "unset", "--port", fip["id"], "--no-json")
        assert cut_off(ext, addr)
        wait_until(lambda: seen_as(vm1, "192.168.0.1") == cloud.gw_ip, 30, what="vm1 back to SNAT")

        # Re-associated with vm2 this time.
        cli(cloud.url, "floating", "ip", "set", "--port", "vm2-port", fip["id"], "--no-json")
        assert reaches(ext, addr)
        wait_until(lambda: seen_as(vm2, "192.168.0.1") == addr, 30, what="vm2 seen as the floating IP")
        cli(cloud.url, "floating", "ip", "delete", fip["id"], "--no-json")
        assert cut_off(ext, addr)

        # Removing net2's interface cuts east-west (and net2's way out).
        cli(cloud.url, "router", "remove", "subnet", "routerA", "net2-sub", "--no-json")
        assert cut_off(vm1, vm2.ip)
        assert cut_off(vm2, "192.168.0.1")
        assert reaches(vm1, "192.168.0.1")
    finally:
        whoami.kill()
        whoami.wait()


def test_ttl_router_admin_down_and_snat_off(cloud):
    vm1 = cloud.vm(cloud.net1, cloud.hv1, "vm1")
    vm2 = cloud.vm(cloud.net2, cloud.hv2, "vm2")
    assert reaches(vm1, vm2.ip) and reaches(vm1, "192.168.0.1")
    # TTL 1: not forwarded; the router answers ICMP time exceeded from its
    # address on vm1's subnet, east-west and north-south alike.
    for dst in (vm2.ip, vm2.ip, "192.168.0.1"):
        out = ttl1_ping(vm1, dst)
        assert "From 10.0.0.1 icmp_seq=1 Time to live exceeded" in out, out
    cli(cloud.url, "router", "set", "routerA", "--disable", "--no-json")
    assert cut_off(vm1, vm2.ip) and cut_off(vm1, "192.168.0.1")
    cli(cloud.url, "router", "set", "routerA", "--enable", "--no-json")
    purge_datapath_caches(cloud, cloud.router["id"])
    assert reaches(vm1, vm2.ip) and reaches(vm1, "192.168.0.1")
    cli(cloud.url, "router", "set", "routerA", "--external-gateway", "net-ext", "--disable-snat",
        "--no-json")
    assert cut_off(vm1, "192.168.0.1")
    assert reaches(vm1, vm2.ip)


def test_overlapping_tenants_behind_two_routers(cloud):
    """routerB of another tenant (made through the REST API with that
    tenant's identity: the noauth CLI cannot name a project) has the SAME
    10.0.0.0/24 behind it: both tenants reach the outside through their own
    router and conntrack zone, and neither reaches the other's networks."""
    vm1 = cloud.vm(cloud.net1, cloud.hv1, "vm1")
    vm2 = cloud.vm(cloud.net2, cloud.hv1, "vm2")
    blue = Api(cloud.url, project="p-blue")
    prov = {"provider:network_type": cloud.net1["provider:network_type"],
            "provider:segmentation_id": next(_seg)}
    if prov["provider:network_type"] == "vlan":
        prov["provider:physical_network"] = "physnet1"
    net = blue.network("blue", **prov)
    sub = blue.subnet(net, "10.0.0.0/24")
    router = blue.post("/routers", {"router": {"name": "routerB", "external_gateway_info":
                                               {"network_id": cloud.ext["id"]}}})["router"]
    blue.put(f"/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    gw_b = blue.get(f"/routers/{router['id']}")["router"]["external_gateway_info"][
        "external_fixed_ips"][0]["ip_address"]
    port = blue.port(net, fixed_ips=[{"subnet_id": sub["id"], "ip_address": vm1.ip}])
    blue_vm = cloud.lab.add_vm(cloud.hv2, port, name="bluevm")
    blue_vm.set_ip(vm1.ip + "/24", gateway="10.0.0.1", mtu=net["mtu"])
    whoami = cloud.ext_host.whoami_server(WHOAMI_PORT)
    try:
        assert reaches(vm1, "192.168.0.1") and reaches(blue_vm, "192.168.0.1")
        assert seen_as(vm1, "192.168.0.1") == cloud.gw_ip
        assert seen_as(blue_vm, "192.168.0.1") == gw_b != cloud.gw_ip
        assert reaches(vm1, vm2.ip)
        assert not blue_vm.ping(vm2.ip, count=3, timeout=1)
    finally:
        whoami.kill()
        whoami.wait()


def _received(p) -> tuple[str, str] | None:
    out, _ = p.communicate(timeout=60)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    return (m.group(1), m.group(2)) if m else None


@pytest.mark.parametrize("mode", ["gre"])        # the NAT flows are the same on VLAN
def test_controller_restart_keeps_north_south_flowing(cloud):
    """The external gateway's MAC is stored (neighbours table): a controller
    killed and started again compiles the very same NAT flows at once, sends
    zero flow_mods, and SNAT and floating-IP traffic never stops, even while
    the upstream router does not answer ARP (its replies are dropped on br-ex
    by an operator's flow, cookie 0, which the controller leaves alone)."""
    vm1 = cloud.vm(cloud.net1, cloud.hv1, "vm1")
    vm2 = cloud.vm(cloud.net2, cloud.hv2, "vm2")
    cloud.open_to_outside("vm2-port")
    fip = cli(cloud.url, "floating", "ip", "create", "net-ext")
    addr = fip["floating_ip_address"]
    cli(cloud.url, "floating", "ip", "set", "--port", "vm2-port", fip["id"], "--no-json")
    assert reaches(vm1, "192.168.0.1") and reaches(cloud.ext_host, addr) and reaches(vm2, "192.168.0.1")
    switches = sum(1 for hv in cloud.lab.hvs for b in hv.bridges() if b != "br-phy")
    silent_upstream = "priority=100,in_port=ethx,arp,arp_op=2,arp_spa=192.168.0.1"
    cloud.hv2.ofctl("add-flow", "br-ex", silent_upstream + ",actions=drop")
    # 100 packets/s for 8 s each way while the controller dies and comes back.
    argv = ("ping", "-n", "-i", "0.01", "-c", "800", "-W", "1")
    pings = [vm1.popen(*argv, "192.168.0.1", stdout=-1, stderr=-1, text=True),      # SNAT
             cloud.ext_host.popen(*argv, addr, stdout=-1, stderr=-1, text=True)]    # floating IP
    try:
        time.sleep(1.0)
        cloud.c.kill()
        mark = len(cloud.c.log_text())
        time.sleep(1.0)
        cloud.c.start()
        got = [_received(p) for p in pings]
    finally:
        for p in pings:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert got == [("800", "800")] * 2, got
    log = cloud.c.log_text()[mark:]
    assert "restored 1 external gateway MAC" in log, log
    wait_until(lambda: resynced(cloud.c.log_text()[mark:], switches), 30, what="resync after restart")
    assert set(round_totals(cloud.c.log_text()[mark:])) == {0}, cloud.c.log_text()[mark:]
    # Still flowing with the upstream silent (without the stored MAC the NAT
    # flows were removed here and these failed until it answered ARP again).
    assert vm1.ping("192.168.0.1", count=3, timeout=1) and cloud.ext_host.ping(addr, count=3, timeout=1)
    assert "arp_spa=192.168.0.1" in cloud.hv2.dump_flows("br-ex")    # the operator's flow stayed
    cloud.hv2.ofctl("del-flows", "br-ex", "--strict", silent_upstream)
