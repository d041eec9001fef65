"""What TLS costs the flow programming: bench_flows' install and resync, over
plain TCP and over TLS, same run, alternating.

    sudo python bench/bench_tls.py [--flows 10000] [--repeat 3]

Two lab hypervisors, each with its own controller process (only the
reconciler app, `bench_tls.py serve`) and database: one plain, one with
[ssl] and node certificates made with openssl (tests/lab/pki.py), its
switches on ssl: targets through the lab's relays. Each repetition measures
both, one after the other (bench_flows.measure): installing ~N flows on an
empty br-int, and the resync after a restart with nothing changed. Figures
only, never asserted; the ratio TLS / plain is the one to read.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_flows import measure, ofctl_flow_lines, populate  # noqa: E402
from common import load, make_controller, rng, serve, switch_stats, wait  # noqa: E402

SCRIPT = os.path.abspath(__file__)


def prepare(c, lab, n_ports, tmp, name):
    hv = lab.hvs[0]
    wait(lambda: switch_stats(c, "br-int") and switch_stats(c, "br-int")["reconciles"], 60,
         f"{name}: br-int programmed")
    populate(f"sqlite:///{c.state_dir}/quantum.db", hv.hostname, n_ports)
    wait(lambda: switch_stats(c, "br-int")["installed_flows"] > n_ports * 10, 120,
         f"{name}: flows installed")
    time.sleep(1.5)
    lines = ofctl_flow_lines(hv, "br-int")
    path = os.path.join(tmp, f"flows-{name}.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return hv, path, len(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=10000, help="about this many flows on br-int")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from tests.lab import Lab
    from tests.lab.pki import Pki
    n_ports = max(1, args.flows // 10)
    tmp = tempfile.mkdtemp(prefix="bench-tls-")
    pki = Pki(os.path.join(tmp, "pki"))
    plain = make_controller(os.path.join(tmp, "plain"), SCRIPT)
    tls = make_controller(os.path.join(tmp, "tls"), SCRIPT, extra=pki.issue("controller").flags())
    results = {"plain": [], "tls": []}
    loads = [load()]
    try:
        plain.start()
        tls.start()
        with Lab(1, plain, physnets=()) as plain_lab, Lab(1, tls, tls=pki, physnets=()) as tls_lab:
            sides = {"plain": (plain, *prepare(plain, plain_lab, n_ports, tmp, "plain")),
                     "tls": (tls, *prepare(tls, tls_lab, n_ports, tmp, "tls"))}
            print(f"br-int: {sides['plain'][3]} / {sides['tls'][3]} flows; {loads[0]}", flush=True)
            for i in range(args.repeat):
                for name in ("plain", "tls") if i % 2 == 0 else ("tls", "plain"):
                    c, hv, flows_file, n = sides[name]
                    results[name].append(measure(c, hv, flows_file, n, previous=False))
                    print(f"  run {i + 1} {name}: {results[name][-1]}", flush=True)
                loads.append(load())
    finally:
        plain.stop()
        tls.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, loads)
    return 0


def report(results, loads):
    plain, tls = results["plain"], results["tls"]
    print()
    print(f"{len(plain)} runs each; {loads[0]} at start, {loads[-1]} at the end")
    hdr = f"{'figure':40} {'plain TCP':>15} {'TLS':>15} {'TLS / plain (same run)':>24}"
    print(hdr)
    print("-" * len(hdr))
    for key, label in (("install", "install on empty br-int (s)"),
                       ("resync", "resync, connect -> confirmed (s)"),
                       ("resync_wall", "resync, process start -> confirmed (s)")):
        ratios = [t[key] / p[key] for p, t in zip(plain, tls)]
        print(f"{label:40} {rng([r[key] for r in plain]):>15} {rng([r[key] for r in tls]):>15} "
              f"{rng(ratios, '{:.2f}'):>24}")
    print(f"{'flows installed':40} {rng([r['installed'] for r in plain], '{}'):>15} "
          f"{rng([r['installed'] for r in tls], '{}'):>15}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2:]))
    sys.exit(main())
