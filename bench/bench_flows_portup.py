"""Port-up latency: from the OVS port add (what Nova's VIF driver does) to the
port ACTIVE in the API, i.e. bound by the OVSDB monitor, its flows pushed and
confirmed by a barrier. The real controller process, one lab hypervisor.

    sudo python bench/bench_flows_portup.py [--ports 500]

Ports are added one after the other onto a br-int that already holds the
previous ones, so the last figures are with ~500 ports on the hypervisor.
Baseline printed alongside: the stock Quantum OVS agent polls every 2 s
(expected ~1 s median, 2 s p99 before it even starts programming).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.e2e.test_reconciler import Api  # noqa: E402
from tests.lab import Lab  # noqa: E402
from tests.support.controller import ControllerProcess  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=500)
    args = ap.parse_args()
    c = ControllerProcess(os.path.join(tempfile.mkdtemp(prefix="bench-portup-"), "ctl")).start()
    lat = []
    try:
        with Lab(1, c, physnets=()) as lab:
            hv = lab.hvs[0]
            api = Api(c.url)
            net = api.network("bench", **{"provider:network_type": "gre", "provider:segmentation_id": 99})
            api.subnet(net, "10.64.0.0/20", enable_dhcp=False)
            ports = [api.port(net) for _ in range(args.ports)]
            for i, p in enumerate(ports):
                tap = "tap" + p["id"][:11]
                t0 = time.perf_counter()
                hv.vsctl("add-port", "br-int", tap, "--", "set", "interface", tap, "type=internal",
                         f"external_ids:iface-id={p['id']}", f"external_ids:attached-mac={p['mac_address']}",
                         "external_ids:iface-status=active")
                while api.get(f"/ports/{p['id']}")["port"]["status"] != "ACTIVE":
                    if time.perf_counter() - t0 > 30:
                        raise SystemExit(f"port {i} never became ACTIVE")
                    time.sleep(0.002)
                lat.append(time.perf_counter() - t0)
                if (i + 1) % 100 == 0:
                    print(f"  {i + 1} ports: last-100 p50 {statistics.median(lat[-100:]) * 1000:.1f} ms",
                          flush=True)
    finally:
        c.stop()
    print()
    print(f"{'port-up latency, ' + str(len(lat)) + ' ports':40} {'ours':>12} {'stock agent (2 s poll)':>24}")
    print(f"{'  p50 (ms)':40} {pct(lat, 50) * 1000:12.1f} {1000:24.0f}")
    print(f"{'  p99 (ms)':40} {pct(lat, 99) * 1000:12.1f} {1980:24.0f}")
    print(f"{'  max (ms)':40} {max(lat) * 1000:12.1f}")
    print(f"{'  p50 of the last 100 (ms)':40} {statistics.median(lat[-100:]) * 1000:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
