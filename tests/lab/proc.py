"""Small process and namespace helpers for the lab: run commands (optionally
inside a netns), stop daemons by pidfile, poll for a condition, and sweep what
an earlier, killed test run left behind."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

BASE_DIR = "/tmp/qlab"          # short on purpose: unix socket paths must stay < 108 bytes
PREFIX_RE = re.compile(r"^ql[0-9a-f]{6}$")


class CommandError(RuntimeError):
    pass


def run(*argv, netns: str | None = None, check: bool = True, timeout: float = 30,
        env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """Run argv (inside `netns` if given); raise CommandError with its output on failure."""
    argv = [str(a) for a in argv]
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=full_env, input=input)
    if check and r.returncode != 0:
        raise CommandError(f"{' '.join(argv)} -> {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll predicate() until it returns something truthy; return that value.
    A deadline guards against hangs; it is not a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_pidfile(path: str, expect: str, timeout: float = 5.0) -> None:
    """Stop the process named in pidfile `path` if its command line contains
    `expect` (guards against a recycled pid), SIGKILL if it lingers."""
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    if expect not in _cmdline(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and expect in _cmdline(pid):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        time.sleep(0.01)
    try:
        os.unlink(path)
    except OSError:
        pass


def netns_list() -> list[str]:
    out = run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_delete(name: str) -> None:
    run("ip", "netns", "del", name, check=False)


def kill_netns_processes(name: str) -> None:
    """Anything still running inside the namespace (udhcpc, servers) dies with it."""
    out = run("ip", "netns", "pids", name, check=False).stdout
    for pid in out.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


# pidfile name -> word expected in the process's command line
DAEMONS = {"socat": "socat", "ovs-vswitchd": "ovs-vswitchd", "ovsdb-server": "ovsdb-server"}


def destroy_lab_dir(prefix: str) -> None:
    """Remove every trace of lab `prefix`: daemons (by pidfile), namespaces, files."""
    root = os.path.join(BASE_DIR, prefix)
    if os.path.isdir(root):
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if not name.endswith(".pid"):
                    continue
                for daemon, expect in DAEMONS.items():
                    if name.startswith(daemon):
                        kill_pidfile(os.path.join(dirpath, name), expect)
    for ns in netns_list():
        if ns.startswith(prefix + "-"):
            kill_netns_processes(ns)
            netns_delete(ns)
    shutil.rmtree(root, ignore_errors=True)


def sweep_stale_labs() -> None:
    """Clean labs whose owning process is gone (a test run killed earlier)."""
    prefixes = set()
    if os.path.isdir(BASE_DIR):
        prefixes.update(p for p in os.listdir(BASE_DIR) if PREFIX_RE.match(p))
    prefixes.update(ns.split("-", 1)[0] for ns in netns_list()
                    if PREFIX_RE.match(ns.split("-", 1)[0]))
    for prefix in prefixes:
        root = os.path.join(BASE_DIR, prefix)
        try:
            with open(os.path.join(root, "owner")) as f:
                owner = int(f.read().strip())
        except (OSError, ValueError):
            owner = None
            try:
                if time.time() - os.stat(root).st_mtime < 30:
                    continue            # another process is creating it right now
            except OSError:
                pass
        if owner is None or not pid_alive(owner):
            destroy_lab_dir(prefix)
