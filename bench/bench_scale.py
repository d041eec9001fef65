"""One controller, 100 hypervisors: 100 bridges on one userspace ovs-vswitchd.

    sudo python bench/bench_scale.py [--nodes 100] [--ports-on 50] [--ports-per-node 10]
                                     [--repeat 2] [--previous REV|none]

Each "hypervisor" is one br-int bridge (datapath_type=netdev, fail_mode=secure,
OpenFlow 1.3, its own datapath-id) on a single ovs-vswitchd running in a
network namespace of our own, all connected to the controller through one
socat relay (unix socket in the run dir -> 127.0.0.1; tests/lab/bridges.py,
which also explains the relay's listen backlog and why the bridges' configured
1 s reconnect backoff is applied once they are connected: OVS 3.1 would
otherwise back off up to 8 s while the controller restarts). Every node is
registered through the REST API (POST /v2.0/nodes, as node-bootstrap does);
`--ports-on` of them get `--ports-per-node` VM ports each on one of 10 GRE
networks, bound in the database (made-up ofports, as bench_flows.py does: only
the reconciler runs, `serve`).

Figures (never asserted), ours next to the previous version's:
  - cold start: all bridges empty, controller process started -> every bridge
    read back, programmed and confirmed (and from the first switch connect);
  - restart with everything installed: -> every bridge resynced, flow_mods;
  - controller RSS and threads after converging; vswitchd RSS.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PREVIOUS_REV, export_rev, load, make_controller, rng, rss_kb, serve, wait  # noqa: E402

from tests.lab.bridges import ManyBridges  # noqa: E402

SCRIPT = os.path.abspath(__file__)


def threads(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(x.split()[1]) for x in f if x.startswith("Threads:"))
    except (OSError, StopIteration):
        return None


def register_nodes(api_url: str, sw: ManyBridges) -> None:
    """POST /v2.0/nodes for every bridge, as node-bootstrap does."""
    import json
    import urllib.request
    headers = {"X-Project-Id": "admin-project", "X-User-Id": "admin", "X-Roles": "admin,member,reader",
               "Content-Type": "application/json"}
    for i, (br, dpid) in enumerate(sw.dpids.items()):
        body = {"node": {"hostname": f"{sw.tag}-hv{i:03d}", "role": "compute",
                         "tunnel_ip": f"172.30.{i // 250}.{i % 250 + 1}", "tunnel_type": "gre",
                         "ovsdb": sw.db, "bridge_mappings": {}, "bridges": {"br-int": dpid}}}
        req = urllib.request.Request(api_url + "/v2.0/nodes", data=json.dumps(body).encode(),
                                     headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()


def populate(db_url: str, sw: ManyBridges, ports_on: int, per_node: int) -> int:
    """10 GRE networks; `per_node` VM ports on each of the first `ports_on`
    nodes, spread over the networks, bound in the database."""
    from controller.db import models as m
    from controller.db.session import Database
    db = Database(db_url)

    def txn(s):
        nets = []
        for k in range(10):
            net = m.Network(id=str(uuid.uuid4()), project_id="bench", name=f"scale{k}", network_type="gre",
                            segmentation_id=5000 + k, mtu=1458)
            s.add(net)
            sub = m.Subnet(id=str(uuid.uuid4()), project_id="bench", network_id=net.id, ip_version=4,
                           cidr=f"10.{100 + k}.0.0/16", gateway_ip=f"10.{100 + k}.0.1", enable_dhcp=False)
            s.add(sub)
            nets.append((net, sub, k))
        s.flush()
        count = 0
        for i in range(ports_on):
            for j in range(per_node):
                net, sub, k = nets[(i + j) % len(nets)]
                pid = str(uuid.uuid4())
                s.add(m.Port(id=pid, project_id="bench", network_id=net.id,
                             mac_address="fa:16:3e:%02x:%02x:%02x" % (k, i, j),
                             host_id=f"{sw.tag}-hv{i:03d}", ofport=100 + j, vif_type="ovs",
                             device_owner="compute:nova"))
                s.flush()
                s.add(m.IPAllocation(subnet_id=sub.id, ip_address=f"10.{100 + k}.{i}.{j + 10}",
                                     port_id=pid, network_id=net.id))
                count += 1
        for net, _sub, _k in nets:
            s.add(m.ChangeLog(kind="network", resource_id=net.id))
        return count
    n = db.run_in_transaction(txn)
    db.dispose()
    return n


def converged(c, n: int, ours: bool):
    st = c.stats() or {}
    sws = [s for s in st.get("switches", []) if s.get("bridge") == "br-int"]
    if len(sws) < n:
        return None
    if ours and any(s.get("resync_s") is None for s in sws):
        return None
    if not ours and any(not s["reconciles"] for s in sws):
        return None
    return st


def cold_and_restart(c, sw: ManyBridges, ours: bool) -> dict:
    r = {}
    c.stop()
    sw.del_flows()
    t0 = time.perf_counter()
    c.start(timeout=60)
    st = wait(lambda: converged(c, sw.n, ours), 600, "cold start converged", interval=0.05)
    r["cold"] = time.perf_counter() - t0
    sws = [s for s in st["switches"] if s.get("bridge") == "br-int"]
    r["flows"] = sum(s["installed_flows"] for s in sws)
    r["flow_mods"] = st["flow_mods_sent"]
    if ours:
        r["cold_from_connect"] = max(s["resync_s"] + s["connected_since"] for s in sws) - \
            min(s["connected_since"] for s in sws)
    time.sleep(2)
    st = c.stats() or st
    r["rss_mb"] = rss_kb(c.proc.pid) / 1024
    r["threads"] = threads(c.proc.pid)
    r["vswitchd_mb"] = sw.rss_kb() / 1024
    r["on_switch_br000"] = sw.flow_count("br000")
    c.stop()
    t0 = time.perf_counter()
    c.start(timeout=60)
    st = wait(lambda: converged(c, sw.n, ours), 600, "restart converged", interval=0.05)
    r["restart"] = time.perf_counter() - t0
    r["restart_flow_mods"] = st["flow_mods_sent"]
    return r


def add_lab_options(ap) -> None:
    """The lab's shape, shared with bench_ha_scale.py."""
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--ports-on", type=int, default=50, help="nodes that get VM ports")
    ap.add_argument("--ports-per-node", type=int, default=10)


def main():
    ap = argparse.ArgumentParser()
    add_lab_options(ap)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--previous", default=PREVIOUS_REV, help="git revision to compare with, or 'none'")
    ap.add_argument("--keep", action="store_true", help="keep the state dir (controller log) at the end")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-scale-")
    c = make_controller(os.path.join(tmp, "ctl"), SCRIPT)
    prev_tree = export_rev(args.previous) if args.previous != "none" else None
    cp = None
    if prev_tree:
        # The previous version's bench_flows.py has the same `serve`.
        cp = make_controller(c.state_dir, os.path.join(os.path.dirname(SCRIPT), "bench_flows.py"),
                             tree=prev_tree)
        cp.api_port, cp.ofp_port = c.api_port, c.ofp_port
    sw = ManyBridges(args.nodes, c.ofp_port)
    ours, prev, loads = [], [], [load()]
    try:
        c.start()
        sw.start()
        register_nodes(c.url, sw)
        n_ports = populate(f"sqlite:///{c.state_dir}/quantum.db", sw, args.ports_on, args.ports_per_node)
        print(f"{args.nodes} bridges on one vswitchd, {n_ports} ports on {args.ports_on} of them; {loads[0]}",
              flush=True)
        wait(lambda: converged(c, sw.n, True), 600, "first convergence", interval=0.1)
        wait(lambda: sw.connected() == sw.n, 60, "all bridges connected")
        sw.apply_max_backoff()     # OVS 3.1: see tests/lab/bridges.py
        for i in range(args.repeat):
            ours.append(cold_and_restart(c, sw, True))
            print(f"  run {i + 1} ours: {ours[-1]}", flush=True)
            if cp is not None:
                c.stop()
                prev.append(cold_and_restart(cp, sw, False))
                cp.stop()
                print(f"  run {i + 1} previous ({args.previous}): {prev[-1]}", flush=True)
            loads.append(load())
    finally:
        c.stop()
        if cp is not None:
            cp.stop()
        sw.close()
        if prev_tree:
            shutil.rmtree(prev_tree, ignore_errors=True)
        if args.keep:
            print(f"state dir and controller log kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"{len(ours)} runs; {loads[0]} at start, {loads[-1]} at the end")
    hdr = f"{'figure (' + str(args.nodes) + ' bridges)':44} {'ours':>15} {'previous ' + args.previous:>17} {'target / note':>26}"
    print(hdr)
    print("-" * len(hdr))

    def row(label, key, fmt="{:.2f}", note=""):
        print(f"{label:44} {rng([r.get(key) for r in ours], fmt):>15} {rng([r.get(key) for r in prev], fmt):>17} "
              f"{note:>26}")
    row("cold start: process start -> all confirmed (s)", "cold", note="(issue: report)")
    row("  first connect -> all confirmed (s)", "cold_from_connect")
    row("  flows installed (all bridges)", "flows", "{}")
    row("restart, nothing changed: -> all resynced (s)", "restart")
    row("  flow_mods sent", "restart_flow_mods", "{}", "0")
    row("controller RSS after converging (MB)", "rss_mb", "{:.0f}", "(issue: report)")
    row("controller threads", "threads", "{}")
    row("ovs-vswitchd RSS (MB)", "vswitchd_mb", "{:.0f}", "docs/LAB.md 6: 30 MB")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2:]))
    sys.exit(main())
