"""Start os-ken in-process with our apps (os-ken 4.2.2 ships no osken-manager,
shared/LAB.md P3). The listen port is always passed explicitly so os-ken does
not also open the legacy 6633."""
from __future__ import annotations

import logging

from os_ken import cfg as osken_cfg
from os_ken.base.app_manager import AppManager

from controller.apps import guard

LOG = logging.getLogger(__name__)

APPS = [
    "controller.apps.reconciler",
    "controller.apps.ovsdb_monitor",
    "controller.apps.dhcp",
    "controller.apps.l3_arp",
]


def start(runtime, apps=None):
    """Load and instantiate the apps; returns (app_manager, threads)."""
    guard.install()
    conf = osken_cfg.CONF
    conf([], project="os_ken", default_config_files=[])
    conf.set_override("ofp_listen_host", runtime.cfg.get("openflow.listen_host"))
    conf.set_override("ofp_tcp_listen_port", runtime.cfg.get("openflow.listen_port"))
    conf.set_override("echo_request_interval", float(runtime.cfg.get("openflow.echo_interval")))
    conf.set_override("maximum_unreplied_echo_requests", 3)
    mgr = AppManager.get_instance()
    mgr.load_apps(list(apps or APPS))
    contexts = mgr.create_contexts()
    threads = mgr.instantiate_apps(**contexts)
    for name, app in mgr.applications.items():
        runtime.apps[name] = app
    LOG.info("OpenFlow listening on %s:%s", runtime.cfg.get("openflow.listen_host"),
             runtime.cfg.get("openflow.listen_port"))
    return mgr, threads
