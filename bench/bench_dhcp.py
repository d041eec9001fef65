"""DHCP benchmark: the controller's packet-in responder against dnsmasq run the
way Quantum's DHCP agent ran it (host file, static range, SIGHUP on change),
serving the same VMs on the same lab, in one run.

    sudo python bench/bench_dhcp.py [--clients 50] [--rounds 30] [--flood-seconds 6]

Phase "ours": subnet enable_dhcp=true, the controller answers.
Phase "dnsmasq": enable_dhcp=false (no punt flows, no DHCP port), dnsmasq in a
namespace plugged into br-int like the agent's qdhcp tap, --dhcp-hostsfile with
every VM's MAC and address.

Figures (printed, never asserted; ratios = ours / dnsmasq):
  - reply time at the VM's NIC (DISCOVER->OFFER, REQUEST->ACK; tcpdump in the VM) p50/p99
  - udhcpc start-to-bound for one client, p50/p99
  - --clients clients started together: time until all are bound (best/median of 3)
  - port created through the API -> lease (dnsmasq: + host file rewrite and SIGHUP)
  - another VM's start-to-bound while one VM floods DISCOVERs, vs unloaded
Targets (issue 8): reply time <= 1.5x dnsmasq, start-to-bound and 50-together no
worse, flooded lease latency within 2x unloaded.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.e2e.test_dhcp import RAW_CLIENT, client_frame  # noqa: E402
from tests.e2e.test_reconciler import Api  # noqa: E402
from tests.lab import Lab  # noqa: E402
from tests.lab.proc import wait_until  # noqa: E402
from tests.support.controller import ControllerProcess  # noqa: E402

HOOK = """#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew) ip addr replace "$ip/${mask:-24}" dev "$interface" ;;
esac
exit 0
"""
CIDR, PREFIX = "10.77.0.0/22", "10.77"
DNSMASQ_IP = "10.77.3.250"
LEASE = 86400


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


class Bench:
    def __init__(self, lab, api, workdir, args):
        self.lab, self.api, self.dir, self.args = lab, api, workdir, args
        self.hv = lab.hvs[0]
        self.hook = os.path.join(workdir, "hook.sh")
        with open(self.hook, "w") as f:
            f.write(HOOK)
        os.chmod(self.hook, 0o755)
        self.raw_client = os.path.join(workdir, "raw_client.py")
        with open(self.raw_client, "w") as f:
            f.write(RAW_CLIENT)
        self.dnsmasq = None
        self.hosts_file = os.path.join(workdir, "host")

    # --- model ------------------------------------------------------------------------

    def setup(self):
        self.net = self.api.network("bench-dhcp", **{"provider:network_type": "gre",
                                                     "provider:segmentation_id": 77})
        self.subnet = self.api.subnet(self.net, CIDR, dns_nameservers=["192.0.2.53"])
        self.vms = [self.new_vm() for _ in range(self.args.clients + 2)]
        self.client, self.flooder = self.vms[0], self.vms[-1]
        self.crowd = self.vms[1:-1]
        for vm in self.vms:
            self.wait_active(vm.port_id)

    def new_vm(self):
        port = self.api.port(self.net)
        vm = self.lab.add_vm(self.hv, port)
        vm.ip = port["fixed_ips"][0]["ip_address"]
        return vm

    def wait_active(self, port_id):
        wait_until(lambda: self.api.get(f"/ports/{port_id}")["port"]["status"] == "ACTIVE",
                   60, interval=0.005, what="port ACTIVE")

    def set_dhcp(self, enabled: bool):
        self.api.put(f"/subnets/{self.subnet['id']}", {"subnet": {"enable_dhcp": enabled}})
        time.sleep(1.0)        # flows follow; nothing below is timed across this

    # --- dnsmasq as the DHCP agent ran it --------------------------------------------

    def start_dnsmasq(self):
        port = self.api.port(self.net, fixed_ips=[{"subnet_id": self.subnet["id"],
                                                   "ip_address": DNSMASQ_IP}])
        self.dvm = self.lab.add_vm(self.hv, port, name="qdhcp")
        self.wait_active(port["id"])
        self.dvm.set_ip(DNSMASQ_IP + "/22")
        self.write_hosts(self.vms)
        opts = os.path.join(self.dir, "opts")
        with open(opts, "w") as f:
            f.write(f"tag:tag0,option:router,{self.subnet['gateway_ip']}\n"
                    "tag:tag0,option:dns-server,192.0.2.53\n"
                    f"tag:tag0,option:mtu,{self.net['mtu']}\n")
        self.dnsmasq = self.dvm.popen(
            "dnsmasq", "--no-hosts", "--no-resolv", "--strict-order", "--bind-interfaces",
            "--interface=eth0", "--except-interface=lo", "--keep-in-foreground", "--user=root",
            f"--pid-file={self.dir}/dnsmasq.pid", f"--dhcp-hostsfile={self.hosts_file}",
            f"--dhcp-optsfile={opts}", "--leasefile-ro",
            f"--dhcp-range=set:tag0,{CIDR.split('/')[0]},static,255.255.252.0,{LEASE}s",
            "--dhcp-lease-max=256", "--conf-file=", "--domain=openstacklocal",
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "dnsmasq.log"), "w"))
        time.sleep(0.5)

    def write_hosts(self, vms):
        tmp = self.hosts_file + ".tmp"
        with open(tmp, "w") as f:
            for vm in vms:
                f.write(f"{vm.mac},host-{vm.ip.replace('.', '-')}.openstacklocal,{vm.ip}\n")
        os.replace(tmp, self.hosts_file)

    def stop_dnsmasq(self):
        if self.dnsmasq and self.dnsmasq.poll() is None:
            self.dnsmasq.terminate()
            self.dnsmasq.wait(5)

    # --- clients ----------------------------------------------------------------------

    def udhcpc_argv(self, extra=()):
        return ["udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-O", "mtu",
                "-s", self.hook, *extra]

    def bound_time(self, vm) -> float | None:
        t = time.perf_counter()
        r = vm.exec(*self.udhcpc_argv(), check=False, timeout=30)
        return time.perf_counter() - t if r.returncode == 0 else None

    def start_to_bound(self, vm, rounds) -> list[float]:
        return [x for x in (self.bound_time(vm) for _ in range(rounds)) if x is not None]

    def reply_times(self, vm, rounds):
        """(DISCOVER->OFFER, REQUEST->ACK) lists from a capture on the VM's eth0."""
        pcap = os.path.join(self.dir, f"cap-{time.time_ns()}.pcap")
        err = pcap + ".log"
        dump = vm.popen("tcpdump", "-i", "eth0", "-n", "-U", "--immediate-mode", "-w", pcap, "udp port 67 or udp port 68",
                        stdout=subprocess.DEVNULL, stderr=open(err, "w"))
        wait_until(lambda: "listening" in open(err).read(), 10, what="tcpdump listening")
        self.start_to_bound(vm, rounds)
        time.sleep(1.0)                      # let tcpdump write what it has seen
        dump.send_signal(signal.SIGINT)
        dump.wait(10)
        times = pair_times(pcap)
        if not times[0]:
            print(f"  (no DHCP exchange in the capture {pcap}: {open(err).read().strip()})")
        return times

    def together(self, vms) -> float | None:
        t = time.perf_counter()
        procs = [vm.popen(*self.udhcpc_argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for vm in vms]
        codes = [p.wait(60) for p in procs]          # explicit PIDs (LAB.md 11)
        elapsed = time.perf_counter() - t
        return elapsed if not any(codes) else None

    def flooded(self, vm, rounds) -> tuple[list[float], int]:
        frame = client_frame(self.flooder, "discover", 0x1)
        flood = self.flooder.popen(sys.executable, self.raw_client, "flood", frame.hex(),
                                   self.args.flood_seconds, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
        time.sleep(1.0)
        lat = []
        while flood.poll() is None and len(lat) < rounds:
            x = self.bound_time(vm)
            if x is not None:
                lat.append(x)
        out, _ = flood.communicate(timeout=60)
        sent = int(out.strip() or 0)
        return lat, sent

    # --- phases -----------------------------------------------------------------------

    def phase(self, name, new_port_lease):
        a = self.args
        res = {}
        res["offer"], res["ack"] = self.reply_times(self.client, a.rounds)
        res["bound"] = self.start_to_bound(self.client, a.rounds)
        res["together"] = [self.together(self.crowd) for _ in range(3)]
        res["new_port"] = new_port_lease()
        res["flood"], res["flood_sent"] = self.flooded(self.client, 10)
        print(f"  {name}: done", flush=True)
        return res

    def new_port_ours(self):
        out = []
        for _ in range(3):
            t = time.perf_counter()
            vm = self.new_vm()
            self.wait_active(vm.port_id)
            active = time.perf_counter()
            lease = self.retry_lease(vm)
            out.append((time.perf_counter() - t, time.perf_counter() - active, 0.0, lease))
            self.vms.append(vm)
        return out

    def new_port_dnsmasq(self):
        out = []
        for _ in range(3):
            t = time.perf_counter()
            vm = self.new_vm()
            self.wait_active(vm.port_id)
            active = time.perf_counter()
            self.vms.append(vm)
            self.write_hosts(self.vms)                     # what the agent did on port create
            os.kill(self.dnsmasq.pid, signal.SIGHUP)
            reload_s = time.perf_counter() - active
            lease = self.retry_lease(vm)
            out.append((time.perf_counter() - t, time.perf_counter() - active, reload_s, lease))
        return out

    def retry_lease(self, vm) -> bool:
        for _ in range(5):
            if self.bound_time(vm) is not None:
                return True
        return False


def pair_times(pcap: str):
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.utils import rdpcap
    first: dict[tuple[int, int], float] = {}
    offer, ack = [], []
    for p in rdpcap(pcap):
        if BOOTP not in p or DHCP not in p:
            continue
        mt = next((o[1] for o in p[DHCP].options if isinstance(o, tuple) and o[0] == "message-type"), None)
        xid, ts = p[BOOTP].xid, float(p.time)
        if mt in (1, 3):
            first.setdefault((xid, mt), ts)
        elif mt == 2 and (xid, 1) in first:
            offer.append(ts - first.pop((xid, 1)))
        elif mt == 5 and (xid, 3) in first:
            ack.append(ts - first.pop((xid, 3)))
    return offer, ack


def report(ours, theirs, args):
    def ms(x):
        return f"{x * 1000:9.2f}" if x == x else "      n/a"

    def row(label, a, b):
        ratio = f"{a / b:7.2f}" if b and a == a and b == b else "    n/a"
        print(f"{label:46} {ms(a)} {ms(b)} {ratio}")

    print()
    print(f"{'DHCP (ms)':46} {'ours':>9} {'dnsmasq':>9} {'ratio':>7}")
    for key, label in [("offer", "reply at VM NIC, DISCOVER->OFFER"), ("ack", "reply at VM NIC, REQUEST->ACK")]:
        row(f"{label} p50", pct(ours[key], 50), pct(theirs[key], 50))
        row(f"{label} p99", pct(ours[key], 99), pct(theirs[key], 99))
    row("udhcpc start-to-bound, one client, p50", pct(ours["bound"], 50), pct(theirs["bound"], 50))
    row("udhcpc start-to-bound, one client, p99", pct(ours["bound"], 99), pct(theirs["bound"], 99))
    to = [x for x in ours["together"] if x]
    tt = [x for x in theirs["together"] if x]
    row(f"{args.clients} clients together, all bound (best)", min(to or [float("nan")]),
        min(tt or [float("nan")]))
    row(f"{args.clients} clients together, all bound (median)", statistics.median(to) if to else float("nan"),
        statistics.median(tt) if tt else float("nan"))
    for name, res in (("ours", ours), ("dnsmasq", theirs)):
        for total, after_active, reload_s, ok in res["new_port"]:
            extra = f", host file + SIGHUP {reload_s * 1000:.2f} ms" if name == "dnsmasq" else ", no reload"
            print(f"  port created -> lease ({name}): {total * 1000:8.1f} ms; port ACTIVE -> lease "
                  f"{after_active * 1000:7.1f} ms{extra}{'' if ok else ' (NO LEASE)'}")
    for name, res in (("ours", ours), ("dnsmasq", theirs)):
        unloaded = pct(res["bound"], 50)
        loaded = pct(res["flood"], 50) if res["flood"] else float("nan")
        print(f"  {name}: start-to-bound under a flood of {res['flood_sent']} DISCOVERs in "
              f"{args.flood_seconds} s: p50 {ms(loaded).strip()} ms over {len(res['flood'])} leases, "
              f"{loaded / unloaded:.2f}x unloaded" if res["flood"] else
              f"  {name}: no lease obtained under the flood ({res['flood_sent']} DISCOVERs sent)")
    print(f"\n  samples: reply {len(ours['offer'])}/{len(theirs['offer'])}, bound "
          f"{len(ours['bound'])}/{len(theirs['bound'])} (ours/dnsmasq)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--flood-seconds", type=int, default=6)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-dhcp-")
    c = ControllerProcess(os.path.join(work, "ctl")).start()
    try:
        with Lab(1, c, physnets=()) as lab:
            b = Bench(lab, Api(c.url), work, args)
            print(f"setting up {args.clients + 2} VMs ...", flush=True)
            b.setup()
            ours = b.phase("ours", b.new_port_ours)
            b.set_dhcp(False)
            b.start_dnsmasq()
            try:
                theirs = b.phase("dnsmasq", b.new_port_dnsmasq)
            finally:
                b.stop_dnsmasq()
            report(ours, theirs, args)
    finally:
        c.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
