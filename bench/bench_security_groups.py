"""Security-group benchmarks (controller/flows/security_groups.py).

    python bench/bench_security_groups.py flows [--sizes 10,100,500]
    sudo python bench/bench_security_groups.py update [--ports 500] [--rounds 20]
    sudo python bench/bench_security_groups.py throughput [--repeat 3] [--mbytes 10]

flows       (no root, no switch) one group of N ports with a remote-group rule
            (the default group: ingress from itself), all N on one hypervisor
            and split over two: security-group flows per hypervisor and per
            port (must stay flat as N grows: linear, not N x N), and the time to
            compile a node.
update      two lab hypervisors, N ports of one default group bound half on
            each (database written directly, made-up ofports, as
            bench_flows.py does); the controller runs only its reconciler.
            Per round: POST a rule to the group (ingress tcp/<port> from the
            group itself: one conjunction clause per member port) -> the
            rule's flows on BOTH switches (ovs-ofctl dump-flows by the rule's
            cookie, polled), then DELETE it -> gone from both. p50/p99 of
            each; target p99 < 1 s.
throughput  two VMs on two hypervisors (GRE), the whole controller: a 10 MB TCP
            transfer through the security-group conntrack (both ports in the
            default group) against the same transfer between two ports with
            port_security_enabled=false, alternating; ratio of the times.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import load, make_controller, pct, rng, serve, wait  # noqa: E402

SCRIPT = os.path.abspath(__file__)


# --- flows per port against the group's size ----------------------------------------

def bench_flows(sizes):
    import logging
    logging.disable(logging.WARNING)
    from controller.flows import tables as t
    from controller.flows.compiler import compile_node
    from tests.unit.fakeoftable import make_world
    from tests.unit.test_flows_l2 import H1, H2, mknet, port
    sg_tables = {t.IntTable.INGRESS_ACL, t.IntTable.INGRESS_ACL_CT, t.IntTable.EGRESS_ACL,
                 t.IntTable.EGRESS_ACL_CT}
    print(f"one default group of N ports (ingress from itself: remote_group_id); {load()}")
    hdr = f"{'N':>5} {'hosts':>5} {'SG flows on hv1':>16} {'per port on hv1':>16} {'compile hv1 (s)':>16}"
    print(hdr)
    print("-" * len(hdr))
    for n in sizes:
        for hosts in (1, 2):
            net = mknet("gre")
            ports = [port(net, H1 if hosts == 1 or i % 2 == 0 else H2, 10 + i,
                          "fa:16:3e:%02x:%02x:%02x" % (i >> 16, (i >> 8) & 255, i & 255),
                          f"10.{(i + 1) >> 16}.{((i + 1) >> 8) & 255}.{(i + 1) & 255}") for i in range(n)]
            world = make_world([H1, H2], [net], ports)
            t0 = time.perf_counter()
            flows = compile_node(world, H1).flows
            dt = time.perf_counter() - t0
            sg = sum(1 for f in flows if f.table in sg_tables)
            local = sum(1 for p in ports if p.node_id == H1.id)
            print(f"{n:>5} {hosts:>5} {sg:>16} {sg / local:>16.2f} {dt:>16.3f}")


# --- rule update latency -------------------------------------------------------------

def populate(db_url: str, hostnames: list[str], n_ports: int) -> str:
    """One GRE network, n_ports ports in the project's default group bound
    round-robin to the hypervisors; -> the group id."""
    from controller.api import sg_rules
    from controller.db import models as m
    from controller.db.session import Database
    db = Database(db_url)
    out = {}

    def txn(s):
        net = m.Network(id=str(uuid.uuid4()), project_id="bench", name="bench", network_type="gre",
                        segmentation_id=4343, mtu=1458)
        s.add(net)
        sub = m.Subnet(id=str(uuid.uuid4()), project_id="bench", network_id=net.id, ip_version=4,
                       cidr="10.128.0.0/16", gateway_ip="10.128.0.1", enable_dhcp=False)
        s.add(sub)
        sg = m.SecurityGroup(id=str(uuid.uuid4()), project_id="bench", name="default", is_default=True)
        s.add(sg)
        s.flush()
        s.add(m.DefaultSecurityGroup(project_id="bench", security_group_id=sg.id))
        for r in sg_rules.default_rules(sg.id):
            s.add(m.SecurityGroupRule(id=str(uuid.uuid4()), project_id="bench", security_group_id=sg.id, **r))
        for i in range(n_ports):
            pid = str(uuid.uuid4())
            s.add(m.Port(id=pid, project_id="bench", network_id=net.id,
                         mac_address="fa:16:3e:%02x:%02x:%02x" % (i >> 16, (i >> 8) & 255, i & 255),
                         host_id=hostnames[i % len(hostnames)], ofport=1000 + i, vif_type="ovs",
                         device_owner="compute:nova"))
            s.flush()
            s.add(m.IPAllocation(subnet_id=sub.id, ip_address=f"10.128.{(i + 10) >> 8}.{(i + 10) & 255}",
                                 port_id=pid, network_id=net.id))
            s.add(m.PortSecurityGroup(port_id=pid, security_group_id=sg.id))
        s.add(m.ChangeLog(kind="network", resource_id=net.id))
        out["sg"] = sg.id
    db.run_in_transaction(txn)
    db.dispose()
    return out["sg"]


def rule_flows_on(hv, rule_id: str) -> int:
    from controller.flows import cookies
    c = cookies.cookie("security_group_rule", rule_id)
    out = hv.ofctl("dump-flows", "br-int", f"cookie={c:#x}/-1")
    return sum(1 for ln in out.splitlines() if "cookie=" in ln)


def bench_update(n_ports, rounds):
    from tests.e2e.test_reconciler import Api
    from tests.lab import Lab
    tmp = tempfile.mkdtemp(prefix="bench-sg-")
    c = make_controller(os.path.join(tmp, "ctl"), SCRIPT)
    adds, dels = [], []
    loads = [load()]
    try:
        c.start()
        with Lab(2, c, physnets=()) as lab:
            wait(lambda: len(sws := int_switches(c)) == 2 and all(s["reconciles"] for s in sws),
                 60, "br-int programmed")
            sg = populate(f"sqlite:///{c.state_dir}/quantum.db", [hv.hostname for hv in lab.hvs], n_ports)
            wait(lambda: all(s["installed_flows"] > n_ports * 2 for s in int_switches(c)), 180,
                 "flows installed")
            api = Api(c.url, "bench")
            print(f"{n_ports} ports in one group on 2 hypervisors; {loads[0]}", flush=True)
            for i in range(rounds):
                body = {"security_group_id": sg, "direction": "ingress", "ethertype": "IPv4",
                        "protocol": "tcp", "port_range_min": 2000 + i, "port_range_max": 2000 + i,
                        "remote_group_id": sg}
                t0 = time.perf_counter()
                rid = api.post("/security-group-rules", {"security_group_rule": body})["security_group_rule"]["id"]
                wait(lambda: all(rule_flows_on(hv, rid) >= n_ports // 2 for hv in lab.hvs), 60, "rule flows")
                adds.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                api.delete(f"/security-group-rules/{rid}")
                wait(lambda: all(rule_flows_on(hv, rid) == 0 for hv in lab.hvs), 60, "rule flows gone")
                dels.append(time.perf_counter() - t0)
                print(f"  round {i + 1}: add {adds[-1]:.3f} s, delete {dels[-1]:.3f} s", flush=True)
            loads.append(load())
    finally:
        c.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"{rounds} rounds; {loads[0]} at start, {loads[-1]} at the end")
    print(f"{'API call -> rule flows on both switches':44} {'p50':>7} {'p99':>7} {'max':>7}   target p99 < 1 s")
    for name, xs in (("add a rule (s)", adds), ("delete it (s)", dels)):
        print(f"{name:44} {pct(xs, 50):7.3f} {pct(xs, 99):7.3f} {max(xs):7.3f}")


def int_switches(c) -> list[dict]:
    return [s for s in (c.stats() or {}).get("switches", []) if s.get("bridge") == "br-int"]


# --- throughput through conntrack ------------------------------------------------------

def bench_throughput(repeat, mbytes):
    from tests.e2e.test_reconciler import Api
    from tests.lab import Lab
    from tests.lab.proc import wait_until
    from tests.support.controller import ControllerProcess
    tmp = tempfile.mkdtemp(prefix="bench-sg-tp-")
    c = ControllerProcess(os.path.join(tmp, "ctl"))
    times = {"security groups": [], "port security off": []}
    try:
        c.start()
        with Lab(2, c, tunnel_type="gre", physnets=()) as lab:
            admin = Api(c.url)
            net = admin.network("tp", project_id="bench", **{"provider:network_type": "gre",
                                                               "provider:segmentation_id": 4444})
            admin.subnet(net, "10.40.0.0/24", project_id="bench")
            pairs = {}
            for label, attrs in (("security groups", {}),
                                 ("port security off", {"port_security_enabled": False,
                                                        "security_groups": []})):
                vms = []
                for hv in lab.hvs:
                    p = admin.port(net, project_id="bench", **attrs)
                    vm = lab.add_vm(hv, p)
                    vm.ip = p["fixed_ips"][0]["ip_address"]
                    vm.set_ip(vm.ip + "/24", mtu=net["mtu"])
                    wait_until(lambda: admin.get(f"/ports/{p['id']}")["port"]["status"] == "ACTIVE", 60,
                               what="port ACTIVE")
                    vms.append(vm)
                pairs[label] = vms
            print(f"{mbytes} MB TCP transfer hv1 -> hv2 over GRE; {load()}", flush=True)
            for i in range(repeat):
                for label, (a, b) in pairs.items():
                    t0 = time.perf_counter()
                    sent, got = lab.tcp_transfer(a, b, b.ip, nbytes=mbytes * 2**20)
                    dt = time.perf_counter() - t0
                    assert sent == got and sent.get("bytes") == mbytes * 2**20, (sent, got)
                    times[label].append(dt)
                    print(f"  run {i + 1} {label}: {dt:.3f} s ({mbytes / dt:.1f} MB/s)", flush=True)
    finally:
        c.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    sg, off = times["security groups"], times["port security off"]
    print()
    print(f"{'transfer time (s)':30} {'min':>7} {'median':>7}")
    for label, xs in times.items():
        print(f"{label:30} {min(xs):7.3f} {pct(xs, 50):7.3f}")
    print(f"ratio security groups / off (median): {pct(sg, 50) / pct(off, 50):.2f}; "
          f"per run: {rng([a / b for a, b in zip(sg, off)], '{:.2f}')}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["flows", "update", "throughput"])
    ap.add_argument("--sizes", default="10,100,500")
    ap.add_argument("--ports", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mbytes", type=int, default=10)
    args = ap.parse_args()
    if args.what == "flows":
        bench_flows([int(x) for x in args.sizes.split(",")])
    elif args.what == "update":
        bench_update(args.ports, args.rounds)
    else:
        bench_throughput(args.repeat, args.mbytes)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2:]))
    sys.exit(main())
