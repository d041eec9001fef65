"""Agentless port binding and node-bootstrap figures (printed, never asserted).

    sudo python bench/bench_binding.py [--ports 200]

1. node-bootstrap on a fresh lab hypervisor, and a second (no-op) run.
2. bind latency: from `ovs-vsctl add-port` returning (vswitchd has applied
   it) to Port.host_id written by the OVSDB monitor, read straight from the
   controller's SQLite every millisecond; ports are added one after the other,
   so the last ones are bound with ~N ports on br-int. Baseline: the stock
   Quantum OVS agent polls OVSDB every 2 s (~1 s median, ~2 s worst).
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.e2e.test_binding import TENANT, api, create_port  # noqa: E402
from tests.lab import Lab  # noqa: E402
from tests.support.controller import ControllerProcess  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=200)
    args = ap.parse_args()
    c = ControllerProcess(os.path.join(tempfile.mkdtemp(prefix="bench-binding-"), "ctl")).start()
    lat = []
    try:
        with Lab(1, c) as lab:
            hv = lab.hvs[0]
            t0 = time.perf_counter()
            hv.bootstrap(undo=True)
            undo = time.perf_counter() - t0
            t0 = time.perf_counter()
            hv.bootstrap()
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            hv.bootstrap()
            again = time.perf_counter() - t0
            net = api(c, "POST", "/v2.0/networks", {"network": {"name": "bench"}}, TENANT)["network"]["id"]
            ports = [create_port(c, net) for _ in range(args.ports)]
            db = sqlite3.connect(os.path.join(c.state_dir, "quantum.db"), isolation_level=None)
            for i, p in enumerate(ports):
                tap = "tap" + p["id"][:11]
                hv.vsctl("add-port", "br-int", tap, "--", "set", "interface", tap, "type=internal",
                         f"external_ids:iface-id={p['id']}",
                         f"external_ids:attached-mac={p['mac_address']}",
                         "external_ids:iface-status=active")
                t0 = time.perf_counter()
                while not db.execute("SELECT host_id FROM ports WHERE id = ?", (p["id"],)).fetchone()[0]:
                    if time.perf_counter() - t0 > 30:
                        raise SystemExit(f"port {i} never bound")
                    time.sleep(0.001)
                lat.append(time.perf_counter() - t0)
    finally:
        c.stop()
    print(f"{'node-bootstrap (1 hypervisor, netdev)':44} {'seconds':>10}")
    print(f"{'  first run, with registration':44} {first:10.3f}")
    print(f"{'  second run (nothing to change)':44} {again:10.3f}")
    print(f"{'  --undo':44} {undo:10.3f}")
    print()
    print(f"{'bind latency, ' + str(len(lat)) + ' ports (ms)':44} {'ours':>10} {'stock agent (2 s poll)':>24}")
    print(f"{'  p50':44} {pct(lat, 50) * 1000:10.1f} {1000:24.0f}")
    print(f"{'  p99':44} {pct(lat, 99) * 1000:10.1f} {1980:24.0f}")
    print(f"{'  max':44} {max(lat) * 1000:10.1f}")
    print(f"{'  p50 of the last 50':44} {statistics.median(lat[-50:]) * 1000:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
