"""Shared by the benchmarks: a controller process that dumps its reconciler
stats to a file, the previous version of the code from git for side-by-side
figures, waiting, percentiles and the machine's load."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# The code before the reconciler's byte encoder / raw read-back (for --previous).
PREVIOUS_REV = "5b3d681"


def serve(argv: list[str], apps=("controller.apps.reconciler",)) -> int:
    """quantum-controller with only the given apps, dumping the reconciler's
    stats to <state dir>/stats.json every 50 ms (plus its RSS; with the HA app,
    under "ha", the nodes it masters and the dpids that confirmed it MASTER)."""
    import signal
    import threading

    from controller import config
    from controller.apps import launcher
    from controller.main import ApiServer, build_runtime, setup_logging, tune_garbage_collection
    cfg = config.load(argv)
    setup_logging(cfg)
    rt = build_runtime(cfg)
    tune_garbage_collection()
    ApiServer(rt).start()
    launcher.start(rt, apps=list(apps))
    rec = rt.apps["Reconciler"]
    ha = rt.apps.get("HaRoles")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    path = os.path.join(cfg.get("DEFAULT.state_dir"), "stats.json")
    while not stop.wait(0.05):
        st = rec.stats()
        st["rss_kb"] = rss_kb(os.getpid())
        st["threads"] = threading.active_count()
        if ha is not None:
            hs = ha.status()
            st["ha"] = {"nodes_mastered": hs["nodes_mastered"], "mastership_changes": hs["mastership_changes"],
                        "masters": [s["dpid"] for s in hs["switches"] if s["role"] == "master"]}
        with open(path + ".tmp", "w") as f:
            json.dump(st, f)
        os.replace(path + ".tmp", path)
    os._exit(0)


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def make_controller(state_dir: str, script: str, tree: str | None = None, extra=()):
    """A ControllerProcess running `script serve` (from `tree`, an exported
    older version of the repo, when given) that reads its stats file."""
    from tests.support.controller import ControllerProcess

    class BenchController(ControllerProcess):
        def command(self):
            cmd = super().command()
            path = os.path.join(tree, os.path.relpath(script, REPO)) if tree else script
            return [sys.executable, path, "serve"] + cmd[3:] + list(extra)

        def start(self, *a, **kw):
            try:               # never read the previous process's figures
                os.unlink(os.path.join(self.state_dir, "stats.json"))
            except OSError:
                pass
            db_file = os.path.join(self.state_dir, "quantum.db")
            if tree and os.path.exists(db_file):   # same database: the schema the older code knows
                match_schema(f"sqlite:///{db_file}", tree)
            return super().start(*a, **kw)

        def stats(self):
            try:
                with open(os.path.join(self.state_dir, "stats.json")) as f:
                    return json.load(f)
            except (OSError, ValueError):
                return None
    return BenchController(state_dir)


def match_schema(db_url: str, tree: str) -> None:
    """Downgrade the database (with this version's migrations) to the newest
    migration of the exported older version in `tree`, which cannot start on
    a schema it does not know; ours upgrades it again when it starts."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from controller.db.session import Database
    old = Config()
    old.set_main_option("script_location", os.path.join(tree, "controller", "db", "migrations"))
    db = Database(db_url)
    try:
        db.downgrade(ScriptDirectory.from_config(old).get_current_head())
    finally:
        db.dispose()


def export_rev(rev: str) -> str:
    """`git archive` of an older revision into a temporary directory (no
    change to the checkout)."""
    out = tempfile.mkdtemp(prefix=f"bench-rev-{rev}-")
    archive = subprocess.run(["git", "-C", REPO, "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", out], input=archive, check=True)
    return out


def switch_stats(c, bridge):
    st = c.stats() or {}
    return next((s for s in st.get("switches", []) if s["bridge"] == bridge), None)


def wait(pred, timeout, what, interval=0.01):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def rng(xs, fmt="{:.3f}") -> str:
    """'min-max (n)' of a list of figures."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(min(xs))}-{fmt.format(max(xs))}"


def load() -> str:
    with open("/proc/loadavg") as f:
        a = f.read().split()
    return f"load average {a[0]} {a[1]} {a[2]} on {os.cpu_count()} cores"
