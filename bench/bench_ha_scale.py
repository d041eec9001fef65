"""100 hypervisors across 2 controllers on one PostgreSQL, against one
controller on the same database, bridges and run.

    sudo python bench/bench_ha_scale.py [--nodes 100] [--ports-on 50] [--ports-per-node 10]
                                        [--controllers 2] [--repeat 2] [--keep]

The bridges are bench_scale.py's (tests/lab/bridges.py), but every bridge has
one controller target per controller, each through its own socat relay (as
node-bootstrap's repeated --controller). The controllers run the HA app and
the reconciler (`serve`, docs/HA.md) on one PostgreSQL database
(tests/support/postgres.py), nodes registered and ports bound as in
bench_scale.py. Each round, alternately:
  - one controller (the others stopped: their relays refuse, as a host
    that is down would),
  - all `--controllers` started at once;
from every controller stopped and every bridge emptied. Figures (never
asserted):
  - cold start: controllers' processes started -> every bridge confirmed
    MASTER by one controller whose reconciler then read it back, programmed
    and confirmed it (its resync);
  - flow_mods sent, per controller and in all;
  - nodes each controller masters, its RSS and threads 2 s after converging.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_scale import add_lab_options, populate, register_nodes, threads  # noqa: E402
from common import load, make_controller, rng, rss_kb, serve, wait  # noqa: E402

from tests.lab.bridges import ManyBridges  # noqa: E402
from tests.support.postgres import PostgresCluster  # noqa: E402

SCRIPT = os.path.abspath(__file__)
APPS = ("controller.ha.app", "controller.apps.reconciler")


def converged(ctls, dpids: set[str]):
    """Every bridge confirmed MASTER by a controller that has resynced it;
    returns each controller's stats then."""
    stats = [c.stats() or {} for c in ctls]
    done = set()
    for st in stats:
        masters = set((st.get("ha") or {}).get("masters", []))
        done |= {s["dpid"] for s in st.get("switches", [])
                 if s["dpid"] in masters and s.get("resync_s") is not None and s["installed_flows"]}
    return stats if dpids <= done else None


def cold(ctls, sw: ManyBridges, dpids: set[str]) -> dict:
    sw.del_flows()
    t0 = time.perf_counter()
    starters = [threading.Thread(target=c.start, kwargs={"timeout": 60}) for c in ctls]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    stats = wait(lambda: converged(ctls, dpids), 600, f"cold start converged ({len(ctls)} controllers)",
                 interval=0.05)
    r = {"cold": time.perf_counter() - t0}
    time.sleep(2)
    stats = [c.stats() or st for c, st in zip(ctls, stats)]
    r["flow_mods"] = [st.get("flow_mods_sent", 0) for st in stats]
    r["mastered"] = [(st.get("ha") or {}).get("nodes_mastered") for st in stats]
    r["changes"] = [(st.get("ha") or {}).get("mastership_changes") for st in stats]
    r["rss_mb"] = [rss_kb(c.proc.pid) / 1024 for c in ctls]
    r["threads"] = [threads(c.proc.pid) for c in ctls]
    for c in ctls:
        c.stop()
    return r


def main():
    ap = argparse.ArgumentParser()
    add_lab_options(ap)
    ap.add_argument("--controllers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the state dirs (controller logs) at the end")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-ha-scale-")
    pg = PostgresCluster().start()
    url = pg.new_database()
    ctls = [make_controller(os.path.join(tmp, f"ctl{i}"), SCRIPT,
                            extra=["--database-connection", url, "--ha-controller-id", f"ctl-{i}"])
            for i in range(args.controllers)]
    sw = ManyBridges(args.nodes, [c.ofp_port for c in ctls])
    dpids = {f"{d:016x}" for d in sw.dpids.values()}
    one, many, loads = [], [], [load()]
    try:
        for c in ctls:
            c.start()
        sw.start()
        register_nodes(ctls[0].url, sw)
        n_ports = populate(url, sw, args.ports_on, args.ports_per_node)
        print(f"{args.nodes} bridges on one vswitchd, each connected to {args.controllers} controllers; "
              f"{n_ports} ports on {args.ports_on} of them; PostgreSQL; {loads[0]}", flush=True)
        wait(lambda: converged(ctls, dpids), 600, "first convergence", interval=0.1)
        wait(lambda: sw.connected() == sw.n * len(ctls), 60, "all bridges connected to every controller")
        sw.apply_max_backoff()     # OVS 3.1: see tests/lab/bridges.py
        for c in ctls:
            c.stop()
        for i in range(args.repeat):
            one.append(cold(ctls[:1], sw, dpids))
            print(f"  run {i + 1}, 1 controller: {one[-1]}", flush=True)
            many.append(cold(ctls, sw, dpids))
            print(f"  run {i + 1}, {len(ctls)} controllers: {many[-1]}", flush=True)
            loads.append(load())
    finally:
        for c in ctls:
            c.stop()
        sw.close()
        pg.stop()
        if args.keep:
            print(f"state dirs and controller logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"{len(one)} runs; {loads[0]} at start, {loads[-1]} at the end")
    k = len(ctls)
    hdr = f"{'figure (' + str(args.nodes) + ' bridges)':40} {'1 controller':>14} {str(k) + ' controllers':>22} {'ratio':>12}"
    print(hdr)
    print("-" * len(hdr))

    def per(runs, key, j, fmt):
        return rng([r[key][j] for r in runs], fmt)

    def ratio(xs, ys):
        return rng([y / x for x, y in zip(xs, ys) if x], "{:.2f}")
    print(f"{'cold start -> all confirmed (s)':40} {rng([r['cold'] for r in one], '{:.2f}'):>14} "
          f"{rng([r['cold'] for r in many], '{:.2f}'):>22} "
          f"{ratio([r['cold'] for r in one], [r['cold'] for r in many]):>12}")
    print(f"{'flow_mods sent (all controllers)':40} {rng([sum(r['flow_mods']) for r in one], '{}'):>14} "
          f"{rng([sum(r['flow_mods']) for r in many], '{}'):>22}")
    rss_one = [r["rss_mb"][0] for r in one]
    print(f"{'RSS (MB), largest controller':40} {rng(rss_one, '{:.0f}'):>14} "
          f"{rng([max(r['rss_mb']) for r in many], '{:.0f}'):>22} "
          f"{ratio(rss_one, [max(r['rss_mb']) for r in many]):>12}")
    print(f"{'RSS (MB), all controllers':40} {rng(rss_one, '{:.0f}'):>14} "
          f"{rng([sum(r['rss_mb']) for r in many], '{:.0f}'):>22} "
          f"{ratio(rss_one, [sum(r['rss_mb']) for r in many]):>12}")
    for j in range(k):
        print(f"{'  ctl-' + str(j) + ': nodes mastered':40} {per(one, 'mastered', j, '{}') if j == 0 else '-':>14} "
              f"{per(many, 'mastered', j, '{}'):>22}")
        print(f"{'  ctl-' + str(j) + ': flow_mods sent':40} {per(one, 'flow_mods', j, '{}') if j == 0 else '-':>14} "
              f"{per(many, 'flow_mods', j, '{}'):>22}")
        print(f"{'  ctl-' + str(j) + ': RSS (MB) / threads':40} "
              f"{(per(one, 'rss_mb', j, '{:.0f}') + ' / ' + per(one, 'threads', j, '{}')) if j == 0 else '-':>14} "
              f"{per(many, 'rss_mb', j, '{:.0f}') + ' / ' + per(many, 'threads', j, '{}'):>22}")
        print(f"{'  ctl-' + str(j) + ': mastership changes':40} "
              f"{per(one, 'changes', j, '{}') if j == 0 else '-':>14} {per(many, 'changes', j, '{}'):>22}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2:], apps=APPS))
    sys.exit(main())
