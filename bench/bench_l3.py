"""L3 reaction times on the real-OVS lab (printed, never asserted).

    sudo python bench/bench_l3.py [--runs 20] [--mode gre|vlan]

Lab: hv1 (compute), hv2 (compute + gateway with br-ex on the external wire),
an external host 192.168.0.1; net1 10.0.0.0/24 with vm1 on hv1, net2
10.0.1.0/24 with vm2 on hv2, routerA with its gateway on net-ext. Built
through the REST API; addresses static.

1. floating IP: the external host pings the floating address every 2 ms
   (`ping -D`: each reply time-stamped); t0 = just before the API call that
   associates it with vm1; figure = first reply - t0. Then disassociate and
   wait until the address is dead again. The external host has a static ARP
   entry for the address, so Linux's 1 s ARP retry is not in the figure.
2. router interface: vm1 pings vm2 every 2 ms; t0 = just before
   add_router_interface for net2's subnet; figure = first reply - t0. Then
   remove_router_interface and wait until vm2 is cut off (vm2's ARP cache is
   flushed: a re-added interface has a new port, hence a new MAC). When vm2
   asks for the new gateway MAC before its own host's flows have landed, its
   ARP retry (1 s) shows in the tail.

Both include the API transaction, the reconciler's round (DB snapshot,
compile, diff, flow_mods, barrier) and the first packet's round trip; the
ping interval bounds the resolution (2 ms). Reference: Quantum's L3 agent
applies a floating IP after its RPC notification or next sync (iptables
rewrite in the router namespace), typically seconds.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.e2e.test_reconciler import Api  # noqa: E402
from tests.lab import Lab  # noqa: E402
from tests.lab.external import ExternalWire  # noqa: E402
from tests.lab.proc import wait_until  # noqa: E402
from tests.support.controller import ControllerProcess  # noqa: E402

REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Prober:
    """`ping -D -i 0.002` from a namespace; first_reply_after(t0) waits for
    the first time-stamped reply at or after t0."""

    def __init__(self, host, ip: str):
        self.proc = host.popen("ping", "-n", "-D", "-i", "0.002", "-W", "1", ip,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.replies: list[float] = []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            m = REPLY.match(line)
            if m:
                with self.cv:
                    self.replies.append(float(m.group(1)))
                    self.cv.notify_all()

    def first_reply_after(self, t0: float, timeout: float = 30.0) -> float | None:
        deadline = time.time() + timeout
        with self.cv:
            while True:
                later = [t for t in self.replies if t >= t0]
                if later:
                    return later[0]
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cv.wait(left)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def build(lab, c, mode):
    api = Api(c.url)
    wire = ExternalWire(lab)
    wire.attach_gateway(lab.hvs[1])
    ext_host = wire.add_host("ext", "192.168.0.1/24")
    ext = api.network("net-ext", **{"router:external": True, "provider:network_type": "flat",
                                    "provider:physical_network": "public"})
    api.subnet(ext, "192.168.0.0/24", gateway_ip="192.168.0.1", enable_dhcp=False)
    nets, subs = [], []
    for i, cidr in enumerate(("10.0.0.0/24", "10.0.1.0/24")):
        prov = {"provider:network_type": mode, "provider:segmentation_id": 400 + i}
        if mode == "vlan":
            prov["provider:physical_network"] = "physnet1"
        net = api.network(f"net{i + 1}", **prov)
        nets.append(net)
        subs.append(api.subnet(net, cidr))
    router = api.post("/routers", {"router": {"name": "routerA", "external_gateway_info":
                                              {"network_id": ext["id"]}}})["router"]
    vms = []
    for i, (net, hv) in enumerate(zip(nets, lab.hvs)):
        port = api.port(net)
        vm = lab.add_vm(hv, port, name=f"vm{i + 1}")
        vm.ip = port["fixed_ips"][0]["ip_address"]
        vm.port = port
        vm.set_ip(vm.ip + "/24", gateway=vm.ip.rsplit(".", 1)[0] + ".1", mtu=net["mtu"])
        vms.append(vm)
    for vm in vms:
        wait_until(lambda: api.get(f"/ports/{vm.port['id']}")["port"]["status"] == "ACTIVE", 60,
                   what=f"{vm.name} ACTIVE")
    return api, ext, subs, router, vms, ext_host


def time_floating_ip(api, ext, router, vm1, ext_host, runs):
    fip = api.post("/floatingips", {"floatingip": {"floating_network_id": ext["id"]}})["floatingip"]
    addr = fip["floating_ip_address"]
    path = f"/floatingips/{fip['id']}"
    # The external host knows the floating address's MAC (the router's
    # gateway port) already: its ARP retry timer (1 s) is not ours to measure.
    gw_port = api.get(f"/ports?device_id={router['id']}&device_owner=network:router_gateway")["ports"][0]
    ext_host.exec("ip", "neigh", "replace", addr, "lladdr", gw_port["mac_address"], "dev", "eth0",
                  "nud", "permanent")
    out, api_ms = [], []
    prober = Prober(ext_host, addr)
    try:
        for _ in range(runs):
            t0 = time.time()
            api.put(path, {"floatingip": {"port_id": vm1.port["id"]}})
            api_ms.append((time.time() - t0) * 1000)
            t1 = prober.first_reply_after(t0)
            if t1 is None:
                print("  floating IP: no reply within 30 s", flush=True)
                continue
            out.append((t1 - t0) * 1000)
            api.put(path, {"floatingip": {"port_id": None}})
            wait_until(lambda: not ext_host.ping(addr, count=1, timeout=1), 30, what="FIP dead")
    finally:
        prober.stop()
    report("  (the API call alone)", api_ms)
    return out


def time_router_interface(api, router, sub2, vm1, vm2, runs):
    out, api_ms = [], []
    rpath = f"/routers/{router['id']}"
    prober = Prober(vm1, vm2.ip)
    try:
        for _ in range(runs):
            vm2.exec("ip", "neigh", "flush", "dev", "eth0")
            t0 = time.time()
            api.put(rpath + "/add_router_interface", {"subnet_id": sub2["id"]})
            api_ms.append((time.time() - t0) * 1000)
            t1 = prober.first_reply_after(t0)
            if t1 is None:
                print("  router interface: no reply within 30 s", flush=True)
            else:
                out.append((t1 - t0) * 1000)
            api.put(rpath + "/remove_router_interface", {"subnet_id": sub2["id"]})
            wait_until(lambda: not vm1.ping(vm2.ip, count=1, timeout=1), 30, what="east-west cut")
    finally:
        prober.stop()
    report("  (the API call alone)", api_ms)
    return out


def report(name, xs):
    if not xs:
        print(f"{name}: no successful run")
        return
    print(f"{name}: n={len(xs)} p50={statistics.median(xs):.1f} ms p99={pct(xs, 99):.1f} ms "
          f"min={min(xs):.1f} max={max(xs):.1f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--mode", choices=("gre", "vlan"), default="gre")
    args = ap.parse_args()
    c = ControllerProcess(os.path.join(tempfile.mkdtemp(prefix="bench-l3-"), "ctl")).start()
    lab = Lab(2, c, tunnel_type="gre", gateways={2})
    try:
        lab.start()
        api, ext, subs, router, (vm1, vm2), ext_host = build(lab, c, args.mode)
        api.put(f"/routers/{router['id']}/add_router_interface", {"subnet_id": subs[0]["id"]})
        # warm-up: SNAT path up (external gateway MAC resolved) before timing
        wait_until(lambda: vm1.ping("192.168.0.1", count=1, timeout=1), 60, what="SNAT path")
        print(f"mode={args.mode} runs={args.runs}", flush=True)
        report("associate floating IP -> first packet through it",
               time_floating_ip(api, ext, router, vm1, ext_host, args.runs))
        report("add_router_interface -> first routed packet",
               time_router_interface(api, router, subs[1], vm1, vm2, args.runs))
    finally:
        lab.close()
        c.stop()


if __name__ == "__main__":
    main()
