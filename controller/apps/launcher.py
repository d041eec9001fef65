"""Start os-ken in-process with our apps (os-ken 4.2.2 ships no osken-manager,
docs/ARCHITECTURE.md "os-ken"). The listen port is always passed explicitly so os-ken does
not also open the legacy 6633."""
from __future__ import annotations

import logging

from os_ken import cfg as osken_cfg
from os_ken.base.app_manager import AppManager

from controller import tls
from controller.apps import switch_channel
from controller.openflow import osken_patches

LOG = logging.getLogger(__name__)

APPS = [
    "controller.ha.app",          # roles first: a switch is asked for its role as it connects
    "controller.apps.reconciler",
    "controller.apps.ovsdb_monitor",
    "controller.apps.dhcp",
    "controller.apps.l3_arp",
]
# Loaded with any set of apps: echo requests, and the one packet-in observer.
ALWAYS = ["controller.apps.liveness", "controller.apps.packet_in"]


def start(runtime, apps=None):
    """Load and instantiate the apps; returns (app_manager, threads)."""
    osken_patches.keep_apps_alive_on_errors()
    conf = osken_cfg.CONF
    conf([], project="os_ken", default_config_files=[])
    conf.set_override("ofp_listen_host", runtime.cfg.get("openflow.listen_host"))
    conf.set_override("ofp_tcp_listen_port", runtime.cfg.get("openflow.listen_port"))
    conf.set_override("echo_request_interval", float(runtime.cfg.get("openflow.echo_interval")))
    # 0: no echo thread per connection in os-ken; controller.apps.liveness
    # probes every switch from one thread (always loaded, below).
    conf.set_override("maximum_unreplied_echo_requests", 0)
    osken_patches.set_listen_backlog(runtime.cfg.get("openflow.listen_backlog"))
    tls_files = tls.files_from(runtime.cfg)
    tls.configure_ovsdb_client(tls_files)
    switch_channel.install(tls.server_context(tls_files) if tls_files else None,
                           runtime.cfg.get("openflow.handshake_timeout"), runtime.db)
    mgr = AppManager.get_instance()
    mgr.load_apps(list(apps or APPS) + ALWAYS)
    contexts = mgr.create_contexts()
    threads = mgr.instantiate_apps(**contexts)
    for name, app in mgr.applications.items():
        runtime.apps[name] = app
    LOG.info("OpenFlow listening on %s:%s (%s)", runtime.cfg.get("openflow.listen_host"),
             runtime.cfg.get("openflow.listen_port"),
             f"TLS only, switches' certificates signed by {tls_files.ca_cert}" if tls_files
             else "plain TCP: anything that reaches it can connect as a switch")
    return mgr, threads



