"""Start-up time of the whole controller: process start -> every switch of a
hypervisor confirmed, ~10,000 flows installed and nothing changed.

    sudo python bench/bench_startup.py [--flows 10000] [--repeat 5] [--previous REV|none]

One lab hypervisor (br-int, br-tun; bootstrapped by the real node-bootstrap)
and the real `python -m controller.main` with every app. The ports behind the
flows are written into the database with made-up ofports; the node's OVSDB
address is cleared so the OVSDB monitor (which would unbind ports it cannot
see) leaves them alone. Each repetition stops the controller and starts it
again with everything installed, and takes from its log:

  ready      process start -> "quantum-controller ready" (API and OpenFlow
             listening), with the ready line's own phases (imports, config,
             database, api, openflow) where the version logs them;
  connected  -> the last bridge's "switch connected" (the rest is Open
             vSwitch's reconnect backoff: 1 s at most here, see below);
  confirmed  -> the last bridge's "resynced in ..." line (read back,
             compared, confirmed), with the flow_mods those lines report.

The previous version (`git archive REV`, default: the commit before the
start-up work) runs the same way on the same lab and database, alternating
with ours. Nothing is asserted; the target is confirmed < 2 s with 0
flow_mods. Open vSwitch before 3.3 applies the bridges' 1 s reconnect
backoff only after a reconfiguration while connected (tests/lab/bridges.py):
the benchmark makes one after the first start.
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_flows import populate  # noqa: E402
from common import REPO, export_rev, load, match_schema, rng, wait  # noqa: E402

# The commit before the start-up work (eventlet kept out of the imports, the
# OpenFlow apps started before the API).
PREVIOUS_REV = "e3e1762"
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
RESYNCED = re.compile(r"switch ([0-9a-f]{16}) .*resynced in [0-9.]+s after connect, (\d+) flow_mods")
CONNECTED = re.compile(r"switch connected: dpid=([0-9a-f]{16})")
PHASES = re.compile(r"quantum-controller ready .*after process start \((.*)\)")


def controller(state_dir: str, tree: str | None):
    """The real controller process, from this checkout or an exported older tree."""
    from tests.support.controller import ControllerProcess

    class Proc(ControllerProcess):
        def command(self):
            cmd = super().command()
            # -m puts the working directory first on sys.path: run from the tree.
            return ["env", "-C", tree or REPO] + cmd

        def start(self, *a, **kw):
            os.makedirs(self.state_dir, exist_ok=True)
            if tree and os.path.exists(f"{self.state_dir}/quantum.db"):
                match_schema(f"sqlite:///{self.state_dir}/quantum.db", tree)
            with open(self.log_path, "w"):
                pass                     # this run's lines only
            return super().start(*a, **kw)
    return Proc(state_dir)


def stamp(line: str) -> float | None:
    m = STAMP.match(line)
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() if m else None


def measure(c, n_bridges: int) -> dict:
    c.stop()
    t0 = time.time()
    c.start()

    def done():
        lines = c.log_text().splitlines()
        resynced = {m.group(1): (stamp(ln), int(m.group(2))) for ln in lines if (m := RESYNCED.search(ln))}
        return (lines, resynced) if len(resynced) >= n_bridges else None
    lines, resynced = wait(done, 120, "every bridge resynced", interval=0.005)
    ready = next(stamp(ln) for ln in lines if "quantum-controller ready" in ln)
    connected = [stamp(ln) for ln in lines if CONNECTED.search(ln)]
    phases = next((m.group(1) for ln in lines if (m := PHASES.search(ln))), "")
    return {"ready": ready - t0, "connected": max(connected) - t0,
            "confirmed": max(t for t, _ in resynced.values()) - t0,
            "flow_mods": sum(n for _, n in resynced.values()), "phases": phases}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=10000, help="about this many flows on br-int")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--previous", default=PREVIOUS_REV, help="git revision to compare with, or 'none'")
    args = ap.parse_args()
    from controller.db import models as m
    from controller.db.session import Database
    from tests.lab import Lab
    tmp = tempfile.mkdtemp(prefix="bench-startup-")
    ours_c = controller(os.path.join(tmp, "ctl"), None)
    tree = export_rev(args.previous) if args.previous != "none" else None
    prev_c = controller(ours_c.state_dir, tree) if tree else None
    if prev_c:
        prev_c.api_port, prev_c.ofp_port = ours_c.api_port, ours_c.ofp_port
    ours, prev, loads = [], [], [load()]
    try:
        ours_c.start()
        with Lab(1, ours_c, physnets=()) as lab:
            hv = lab.hvs[0]
            db_url = f"sqlite:///{ours_c.state_dir}/quantum.db"
            db = Database(db_url)
            db.run_in_transaction(lambda s: s.query(m.Node).update({"ovsdb": ""}))
            db.dispose()
            n_ports = max(1, args.flows // 10)
            populate(db_url, hv.hostname, n_ports)
            wait(lambda: hv.dump_flows("br-int").count("cookie=") > n_ports * 9, 180, "flows installed",
                 interval=0.5)
            bridges = [b for b in hv.bridges() if b in ("br-int", "br-tun")]
            # OVS < 3.3: make the 1 s reconnect backoff effective (module docstring).
            hv.vsctl("set", "Open_vSwitch", ".", f"external_ids:bench-touch={secrets.token_hex(2)}")
            time.sleep(1)
            n = hv.dump_flows("br-int").count("cookie=")
            print(f"br-int: {n} flows ({n_ports} ports), bridges {bridges}; {loads[0]}", flush=True)
            for i in range(args.repeat):
                ours.append(measure(ours_c, len(bridges)))
                print(f"  run {i + 1} ours: {fmt(ours[-1])}", flush=True)
                if prev_c:
                    ours_c.stop()
                    prev.append(measure(prev_c, len(bridges)))
                    prev_c.stop()
                    print(f"  run {i + 1} previous ({args.previous}): {fmt(prev[-1])}", flush=True)
                loads.append(load())
    finally:
        ours_c.stop()
        if prev_c:
            prev_c.stop()
        if tree:
            shutil.rmtree(tree, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nprocess start -> (s), {len(ours)} runs, ranges; {loads[-1]}")
    print(f"{'':24} {'ours':>15} {'previous ' + args.previous if prev else '':>22}")
    for key in ("ready", "connected", "confirmed"):
        print(f"{key:24} {rng([r[key] for r in ours]):>15} {rng([r[key] for r in prev]) if prev else '':>22}")
    print(f"{'flow_mods at resync':24} {rng([r['flow_mods'] for r in ours], '{:d}'):>15} "
          f"{rng([r['flow_mods'] for r in prev], '{:d}') if prev else '':>22}")
    print("target: confirmed < 2 s, 0 flow_mods")
    return 0


def fmt(r: dict) -> str:
    out = f"ready {r['ready']:.2f}s connected {r['connected']:.2f}s confirmed {r['confirmed']:.2f}s " \
          f"flow_mods {r['flow_mods']}"
    return out + (f" [{r['phases']}]" if r["phases"] else "")


if __name__ == "__main__":
    sys.exit(main())
