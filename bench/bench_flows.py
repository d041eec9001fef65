"""Flow programming benchmarks of the reconciler on real Open vSwitch.

    sudo python bench/bench_flows.py [--flows 10000] [--repeat 2]

One lab hypervisor (its own ovsdb-server + userspace ovs-vswitchd, bootstrapped
by the real node-bootstrap). The controller runs as a process with only the
reconciler app (`bench_flows.py serve`: the port bindings below are written
into the database directly, with made-up ofports, so no OVSDB monitor may
unbind them). It writes its stats to <state dir>/stats.json.

Figures, printed with their baseline side by side (never asserted):
  1. programming rate: the controller installing ~N flows on an empty br-int
     (flow_mods in a bundle, commit, barrier) vs `ovs-ofctl --bundle add-flows`
     of the very same flows on the same bridge -> ratio (target >= 0.5);
  2. resync after a controller restart with those flows installed and nothing
     changed: time and flow_mods sent (targets < 2 s and 0).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --- the controller side ------------------------------------------------------

def serve(argv: list[str]) -> int:
    """quantum-controller with only the reconciler, dumping stats every 50 ms."""
    import signal
    import threading

    from controller import config
    from controller.apps import launcher
    from controller.main import ApiServer, build_runtime, setup_logging
    cfg = config.load(argv)
    setup_logging(cfg)
    rt = build_runtime(cfg)
    ApiServer(rt).start()
    launcher.start(rt, apps=["controller.apps.reconciler"])
    rec = rt.apps["Reconciler"]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    path = os.path.join(cfg.get("DEFAULT.state_dir"), "stats.json")
    while not stop.wait(0.05):
        with open(path + ".tmp", "w") as f:
            json.dump(rec.stats(), f)
        os.replace(path + ".tmp", path)
    os._exit(0)


# --- the bench side -------------------------------------------------------------

def make_controller(state_dir):
    from tests.support.controller import ControllerProcess

    class BenchController(ControllerProcess):
        def command(self):
            cmd = super().command()
            return [sys.executable, os.path.abspath(__file__), "serve"] + cmd[3:]

        def start(self, *a, **kw):
            try:               # never read the previous process's figures
                os.unlink(os.path.join(self.state_dir, "stats.json"))
            except OSError:
                pass
            return super().start(*a, **kw)

        def stats(self):
            try:
                with open(os.path.join(self.state_dir, "stats.json")) as f:
                    return json.load(f)
            except (OSError, ValueError):
                return None
    return BenchController(state_dir)


def switch_stats(c, bridge):
    st = c.stats() or {}
    return next((s for s in st.get("switches", []) if s["bridge"] == bridge), None)


def wait(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=10000, help="about this many flows on br-int")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    from tests.lab import Lab
    n_ports = max(1, args.flows // 10)
    tmp = tempfile.mkdtemp(prefix="bench-flows-")
    c = make_controller(os.path.join(tmp, "ctl"))
    c.start()
    results = {"ours": [], "ofctl": [], "resync_s": [], "resync_flow_mods": []}
    try:
        with Lab(1, c, physnets=()) as lab:
            hv = lab.hvs[0]
            wait(lambda: switch_stats(c, "br-int") and switch_stats(c, "br-int")["reconciles"], 30,
                 "br-int programmed")
            populate(f"sqlite:///{c.state_dir}/quantum.db", hv.hostname, n_ports)
            wait(lambda: switch_stats(c, "br-int")["installed_flows"] > n_ports * 10, 60,
                 "flows installed")
            time.sleep(1.5)
            lines = ofctl_flow_lines(hv, "br-int")
            n = len(lines)
            flows_file = os.path.join(tmp, "flows.txt")
            with open(flows_file, "w") as f:
                f.write("\n".join(lines) + "\n")
            print(f"br-int: {n} flows ({n_ports} ports)")
            for _ in range(args.repeat):
                # Baseline: ovs-ofctl --bundle add-flows of the same flows on an empty bridge.
                c.stop()
                hv.ofctl("del-flows", "br-int")
                t0 = time.perf_counter()
                subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--bundle", "add-flows",
                                    f"unix:{hv.rundir}/br-int.mgmt", flows_file], check=True,
                                   env=dict(os.environ, **hv.env))
                results["ofctl"].append(time.perf_counter() - t0)
                hv.ofctl("del-flows", "br-int")
                # Ours: the controller finds br-int empty and installs everything.
                c.start()
                sw = wait(lambda: (s := switch_stats(c, "br-int")) and s["reconciles"] and s, 60,
                          "controller install")
                n = sw["installed_flows"]
                results["ours"].append(sw["last_reconcile_s"])
                results.setdefault("round", []).append(c.stats()["last_round_s"])
                # Resync: restart with everything in place.
                c.stop()
                t0 = time.perf_counter()
                c.start()
                wait(lambda: (s := switch_stats(c, "br-int")) and s["reconciles"], 60, "resync")
                t_all = time.perf_counter() - t0
                st = c.stats()
                results["resync_s"].append((st["last_round_s"], t_all))
                results["resync_flow_mods"].append(st["flow_mods_sent"])
    finally:
        c.stop()
    print()
    print(f"{'figure':44} {'ours':>22} {'baseline':>22}")
    for ours, base in zip(results["ours"], results["ofctl"]):
        print(f"{'install ' + str(n) + ' flows (s)':44} {ours:22.3f} {base:22.3f}"
              f"   ratio ofctl/ours = {base / ours:.2f}  ({n / ours:,.0f} vs {n / base:,.0f} flows/s)")
    for rnd in results.get("round", []):
        print(f"{'  whole round incl. read-back, compile (s)':44} {rnd:22.3f}")
    for (rnd, wall), mods in zip(results["resync_s"], results["resync_flow_mods"]):
        print(f"{'resync, nothing changed: round (s)':44} {rnd:22.3f}")
        print(f"{'  process start -> resynced (s)':44} {wall:22.3f}")
        print(f"{'  flow_mods sent':44} {mods:22d}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2:]))
    sys.exit(main())
