"""`quantum-controller`: one process serving the Quantum v2.0 API and
programming every Open vSwitch that connects.

    quantum-controller                       # SQLite in /var/lib/quantum-controller, :9696, :6653
    quantum-controller --config-file /etc/quantum/quantum.conf --bind-port 19696
"""
from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading

from controller import config, service
from controller import cli
from controller.db.session import Database
from controller.model import neighbours
from controller.runtime import Runtime

LOG = logging.getLogger("controller")


setup_logging = service.setup_logging


def tune_garbage_collection() -> None:
    """Python's full (generation 2) garbage collections paused the whole
    process for 60-400 ms at a few hundred ports (the World, memoized flows,
    SQLAlchemy), at random points of the port-up path. The automatic ones are
    turned off for the process; the reconciler's scheduler runs one when idle
    and at the latest every few minutes (controller/apps/scheduler.py
    FULL_GC_IDLE_S, FULL_GC_MAX_S), so cyclic garbage stays bounded.
    Generations 0 and 1 are left as they are."""
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, 1_000_000)


def build_runtime(cfg) -> Runtime:
    db = Database(cfg.database_url)
    db.upgrade()
    neighbours.restore(db)          # before any flow is compiled: same NAT flows as before a restart
    rt = Runtime(cfg=cfg, db=db)
    Runtime.set_current(rt)
    return rt


class ApiServer:
    """The WSGI app on a threaded server that keeps connections alive
    (controller/api/server.py), in a thread of its own."""

    def __init__(self, rt: Runtime, app=None):
        from controller.api.app import create_app
        from controller.api.server import make_api_server
        self.app = app or create_app(rt)
        self.server = make_api_server(rt.cfg.get("DEFAULT.bind_host"), rt.cfg.get("DEFAULT.bind_port"),
                                      self.app)
        self.thread = threading.Thread(target=self.server.serve_forever, name="api", daemon=True)

    def start(self):
        self.thread.start()
        LOG.info("API listening on %s:%s", self.server.host, self.server.port)

    def stop(self):
        self.server.shutdown()

    def reload_policy(self, path: str) -> None:
        """New rules for the requests that arrive from now on (one reference swap)."""
        from controller.api.policy import Enforcer
        api = self.app.extensions["quantum_api"]
        api.policy = Enforcer(path)
        LOG.info("policy rules reloaded%s", f" from {path}" if path else " (defaults)")


def log_auth_strategy(cfg) -> None:
    if cfg.get("DEFAULT.auth_strategy") == "keystone":
        LOG.info("auth_strategy = keystone: API tokens validated by Keystone at %s as %s",
                 cfg.get("keystone_authtoken.auth_url"), cfg.get("keystone_authtoken.username"))
    else:
        LOG.warning("auth_strategy = noauth: the API and the console are UNAUTHENTICATED; any "
                    "caller can claim any project and the admin role (X-Project-Id, X-Roles). "
                    "For development only; production uses auth_strategy = keystone")


def start_metadata_proxy(rt: Runtime):
    """The metadata proxy (controller/proxy), when [metadata] listen_host is set."""
    host = rt.cfg.get("metadata.listen_host")
    if not host:
        return None
    from controller.proxy.metadata import MetadataProxy
    try:
        return MetadataProxy(rt.cfg, rt.db, host, rt.cfg.get("metadata.proxy_port")).start()
    except OSError as e:
        LOG.error("metadata proxy: cannot listen on %s:%s: %s", host,
                  rt.cfg.get("metadata.proxy_port"), e)
        return None


def wait_for_stop(wake, signals, rt, api, argv) -> bool:
    """Handle the signals received; True once one asks to stop. SIGHUP
    re-reads the configuration files: log level and policy file change live."""
    wake.wait(1.0)
    wake.clear()
    while signals:
        signum = signals.pop(0)
        if signum != signal.SIGHUP:
            LOG.info("received %s, shutting down", signal.Signals(signum).name)
            return True
        LOG.info("received SIGHUP, re-reading the configuration")
        rt.cfg = service.reload(argv, rt.cfg, api.reload_policy)
    return False


def check_tls(cfg) -> None:
    """[ssl] files complete and usable, before anything listens (raises ConfigError)."""
    from controller import tls
    files = tls.files_from(cfg)
    if files:
        tls.server_context(files)


def main(argv: list[str] | None = None) -> int:
    clock = service.StartupClock()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in cli.COMMANDS:
        return cli.run(argv)
    try:
        cfg = config.load(argv)
    except config.ConfigError as e:
        print(f"quantum-controller: {e}", file=sys.stderr)
        return 2
    setup_logging(cfg)      # first: what the TLS check imports may warn (in the log's format)
    try:
        check_tls(cfg)
    except config.ConfigError as e:
        print(f"quantum-controller: {e}", file=sys.stderr)
        return 2
    try:    # first: switches connect while the rest starts (controller/openflow/early_listen.py)
        from controller.openflow import early_listen
        early_listen.listen(cfg.get("openflow.listen_host"), cfg.get("openflow.listen_port"),
                            cfg.get("openflow.listen_backlog"))
    except OSError as e:
        LOG.error("cannot listen for OpenFlow on %s:%s: %s", cfg.get("openflow.listen_host"),
                  cfg.get("openflow.listen_port"), e)
        return 1
    clock.mark("config")
    try:
        rt = build_runtime(cfg)
    except Exception as e:   # unreachable DB, unwritable state dir, ...
        LOG.error("cannot open the database: %s", e)
        return 1
    clock.mark("database")
    tune_garbage_collection()
    log_auth_strategy(cfg)

    from controller.apps import launcher
    wake = threading.Event()
    signals: list[int] = []

    def on_signal(signum, _frame):
        signals.append(signum)      # handled in the loop below, not in the handler
        wake.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    # The switches first: they reconnect and resync while the API is built
    # (its imports and app are a good part of start-up; nothing here needs it).
    mgr, _threads = launcher.start(rt)
    clock.mark("openflow")
    # A failure from here on leaves by os._exit: os-ken's threads would keep us alive.
    try:
        api = ApiServer(rt)
    except ValueError as e:          # e.g. auth_strategy = keystone without its options
        LOG.error("cannot start the API: %s", e)
        logging.shutdown()
        os._exit(2)
    except (OSError, SystemExit) as e:   # the port is taken (werkzeug exits)
        LOG.error("cannot serve the API on %s:%s: %s", cfg.get("DEFAULT.bind_host"),
                  cfg.get("DEFAULT.bind_port"), e)
        logging.shutdown()
        os._exit(1)
    api.start()
    clock.mark("api")
    metadata_proxy = start_metadata_proxy(rt)
    LOG.info("quantum-controller ready (database %s) %.2fs after process start (%s)",
             cfg.database_url.split("@")[-1], clock.total(), clock.summary())
    service.notify("READY=1\nSTATUS=API on %s:%s, OpenFlow on %s:%s" % (
        cfg.get("DEFAULT.bind_host"), cfg.get("DEFAULT.bind_port"),
        cfg.get("openflow.listen_host"), cfg.get("openflow.listen_port")))
    while not wait_for_stop(wake, signals, rt, api, argv):
        pass
    service.notify("STOPPING=1")
    api.stop()
    if metadata_proxy:
        metadata_proxy.stop()
    try:
        mgr.close()
    except Exception:
        LOG.exception("error while stopping the OpenFlow apps")
    rt.db.dispose()
    LOG.info("stopped")
    logging.shutdown()
    # os-ken's listener and datapath threads are not daemons and cannot be
    # killed in native mode; leave without waiting for them.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
