"""Flow programming benchmarks of the reconciler on real Open vSwitch.

    sudo python bench/bench_flows.py [--flows 10000] [--repeat 3] [--previous REV|none]

One lab hypervisor (its own ovsdb-server + userspace ovs-vswitchd, bootstrapped
by the real node-bootstrap). The controller runs as a process with only the
reconciler app (`bench_flows.py serve`: the port bindings below are written
into the database directly, with made-up ofports, so no OVSDB monitor may
unbind them). It writes its stats to <state dir>/stats.json.

Figures, printed with their baselines side by side (never asserted):
  1. programming rate: the controller installing ~N flows on an empty br-int
     (flow_mods in a bundle, commit, barrier) vs `ovs-ofctl --bundle add-flows`
     of the very same flows on the same bridge -> ratio (target >= 0.5);
  2. resync after a controller restart with those flows installed and nothing
     changed: time from the switch's connection to its flows read back,
     compared and confirmed, from process start, and flow_mods sent
     (targets < 2 s and 0).
Each repetition runs the current code and, unless --previous none, the
previous version (git archive of REV into a temporary directory) on the same
lab, one after the other.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (PREVIOUS_REV, export_rev, load, make_controller, rng, serve,  # noqa: E402
                    switch_stats, wait)

SCRIPT = os.path.abspath(__file__)


def populate(db_url: str, hostname: str, n_ports: int) -> None:
    """One GRE network and n_ports ports bound to the hypervisor (made-up
    ofports), written straight into the database with a change-log row."""
    from controller.db import models as m
    from controller.db.session import Database
    db = Database(db_url)

    def txn(s):
        net = m.Network(id=str(uuid.uuid4()), project_id="bench", name="bench", network_type="gre",
                        segmentation_id=4242, mtu=1458)
        s.add(net)
        sub = m.Subnet(id=str(uuid.uuid4()), project_id="bench", network_id=net.id, ip_version=4,
                       cidr="10.128.0.0/16", gateway_ip="10.128.0.1", enable_dhcp=False)
        s.add(sub)
        s.flush()
        for i in range(n_ports):
            pid = str(uuid.uuid4())
            s.add(m.Port(id=pid, project_id="bench", network_id=net.id,
                         mac_address="fa:16:3e:%02x:%02x:%02x" % (i >> 16, (i >> 8) & 255, i & 255),
                         host_id=hostname, ofport=1000 + i, vif_type="ovs", device_owner="compute:nova"))
            s.flush()
            s.add(m.IPAllocation(subnet_id=sub.id, ip_address=f"10.128.{(i + 10) >> 8}.{(i + 10) & 255}",
                                 port_id=pid, network_id=net.id))
        s.add(m.ChangeLog(kind="network", resource_id=net.id))
    db.run_in_transaction(txn)
    db.dispose()


def ofctl_flow_lines(hv, bridge):
    """dump-flows output turned back into add-flows input (the same flows)."""
    out = []
    for line in hv.dump_flows(bridge).splitlines():
        line = line.strip()
        if not line.startswith("cookie="):
            continue
        line = re.sub(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?", "", line)
        out.append(line.replace(" actions=", ",actions=").replace(", ", ","))
    return out


def measure(c, hv, flows_file, n, previous: bool) -> dict:
    """One repetition with controller `c`: ofctl baseline, install, resync."""
    r = {}
    c.stop()
    hv.ofctl("del-flows", "br-int")
    t0 = time.perf_counter()
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--bundle", "add-flows",
                    f"unix:{hv.rundir}/br-int.mgmt", flows_file], check=True, env=dict(os.environ, **hv.env))
    r["ofctl"] = time.perf_counter() - t0
    hv.ofctl("del-flows", "br-int")
    # Install: the controller finds br-int empty and installs everything.
    c.start()
    sw = wait(lambda: (s := switch_stats(c, "br-int")) and s["reconciles"] and s, 120, "controller install")
    r["installed"] = sw["installed_flows"]
    r["install"] = sw["last_reconcile_s"]          # send -> commit -> barrier
    if not previous:
        busy = wait(lambda: (c.stats() or {}).get("last_busy_round"), 30, "round stats", interval=0.05)
        r["install_round"] = busy["seconds"]
        r["install_phases"] = busy["phases"]
    got = len([ln for ln in hv.dump_flows("br-int").splitlines() if "cookie=" in ln])
    r["on_switch"] = got
    # Resync: restart with everything in place.
    c.stop()
    t0 = time.perf_counter()
    c.start()
    if previous:          # no resync field: the first reconcile of br-int after the restart
        wait(lambda: (s := switch_stats(c, "br-int")) and s["reconciles"], 120, "resync")
        r["resync_wall"] = time.perf_counter() - t0
        r["resync_mods"] = (c.stats() or {}).get("flow_mods_sent")
    else:
        sw = wait(lambda: (s := switch_stats(c, "br-int")) and s.get("resync_s") is not None and s,
                  120, "resync", interval=0.005)
        r["resync_wall"] = time.perf_counter() - t0
        r["resync"] = sw["resync_s"]
        r["resync_mods"] = sw["resync_flow_mods"]
        busy = wait(lambda: (c.stats() or {}).get("last_busy_round"), 30, "round stats", interval=0.05)
        r["resync_phases"] = busy["phases"]
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=10000, help="about this many flows on br-int")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--previous", default=PREVIOUS_REV, help="git revision to compare with, or 'none'")
    args = ap.parse_args()
    from tests.lab import Lab
    n_ports = max(1, args.flows // 10)
    tmp = tempfile.mkdtemp(prefix="bench-flows-")
    c = make_controller(os.path.join(tmp, "ctl"), SCRIPT)
    prev_tree = export_rev(args.previous) if args.previous != "none" else None
    cp = make_controller(c.state_dir, SCRIPT, tree=prev_tree) if prev_tree else None
    if cp is not None:    # same database, same ports: the previous version serves the same lab
        cp.api_port, cp.ofp_port = c.api_port, c.ofp_port
    ours, prev = [], []
    loads = [load()]
    try:
        c.start()
        with Lab(1, c, physnets=()) as lab:
            hv = lab.hvs[0]
            wait(lambda: switch_stats(c, "br-int") and switch_stats(c, "br-int")["reconciles"], 60,
                 "br-int programmed")
            populate(f"sqlite:///{c.state_dir}/quantum.db", hv.hostname, n_ports)
            wait(lambda: switch_stats(c, "br-int")["installed_flows"] > n_ports * 10, 120, "flows installed")
            time.sleep(1.5)
            lines = ofctl_flow_lines(hv, "br-int")
            n = len(lines)
            flows_file = os.path.join(tmp, "flows.txt")
            with open(flows_file, "w") as f:
                f.write("\n".join(lines) + "\n")
            print(f"br-int: {n} flows ({n_ports} ports); {loads[0]}", flush=True)
            for i in range(args.repeat):
                ours.append(measure(c, hv, flows_file, n, previous=False))
                print(f"  run {i + 1} ours: {ours[-1]}", flush=True)
                if cp is not None:
                    c.stop()
                    prev.append(measure(cp, hv, flows_file, n, previous=True))
                    cp.stop()
                    c.start()
                    print(f"  run {i + 1} previous ({args.previous}): {prev[-1]}", flush=True)
                loads.append(load())
    finally:
        c.stop()
        if cp is not None:
            cp.stop()
        if prev_tree:
            shutil.rmtree(prev_tree, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)       # state dir, flows file
    report(n, ours, prev, args.previous, loads)
    return 0


def report(n, ours, prev, rev, loads):
    ofctl = [r["ofctl"] for r in ours + prev]
    print()
    print(f"{len(ours)} runs; {loads[0]} at start, {loads[-1]} at the end")
    hdr = f"{'figure':46} {'ours':>15} {'previous ' + rev:>17} {'baseline':>22} {'target':>10}"
    print(hdr)
    print("-" * len(hdr))
    ins = [r["install"] for r in ours]
    pins = [r["install"] for r in prev]
    print(f"{'install ' + str(n) + ' flows on empty br-int (s)':46} {rng(ins):>15} {rng(pins):>17} "
          f"{'ofctl ' + rng(ofctl):>22}")
    ratios = [r["ofctl"] / r["install"] for r in ours]
    pratios = [r["ofctl"] / r["install"] for r in prev]
    print(f"{'  ratio ofctl time / our time (same run)':46} {rng(ratios, '{:.2f}'):>15} "
          f"{rng(pratios, '{:.2f}'):>17} {'1.00':>22} {'>= 0.5':>10}")
    print(f"{'  flows/s':46} {rng([n / x for x in ins], '{:,.0f}'):>15} {rng([n / x for x in pins], '{:,.0f}'):>17} "
          f"{rng([n / x for x in ofctl], '{:,.0f}'):>22}")
    print(f"{'  whole round incl. load, compile, status (s)':46} {rng([r['install_round'] for r in ours]):>15}")
    print(f"{'resync after restart, nothing changed:':46}")
    print(f"{'  connect -> confirmed (s)':46} {rng([r['resync'] for r in ours]):>15} {'-':>17} "
          f"{'':>22} {'< 2':>10}")
    print(f"{'  process start -> confirmed (s)':46} {rng([r['resync_wall'] for r in ours]):>15} "
          f"{rng([r['resync_wall'] for r in prev]):>17}")
    print(f"{'  flow_mods sent':46} {rng([r['resync_mods'] for r in ours], '{}'):>15} "
          f"{rng([r['resync_mods'] for r in prev], '{}'):>17} {'':>22} {'0':>10}")
    for r in ours:
        print(f"  phases: install {r.get('install_phases')}  resync {r.get('resync_phases')}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2:]))
    sys.exit(main())
