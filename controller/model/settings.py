"""The configuration the flow compilers depend on, carried in the World
snapshot (World.settings) so that a compiler reads its inputs and nothing
else: the DHCP packet-in rate and the [metadata] options (where the proxy
is - address, port, MAC - and the source range; None when metadata is off,
i.e. no proxy_address).

The snapshot loaders (controller/model/snapshot.py) take them from the
running controller's configuration (`current()`); tests build them by hand.
"""
from __future__ import annotations

import functools
import json
import logging
import subprocess
from dataclasses import dataclass

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetadataSettings:
    proxy_ip: str
    proxy_port: int
    proxy_mac: str
    source_range: str


def metadata_from_config(cfg) -> MetadataSettings | None:
    ip = cfg.get("metadata.proxy_address")
    if not ip:
        return None
    mac = (cfg.get("metadata.proxy_mac") or local_mac(ip) or "").lower()
    if not mac:
        _warn_once(f"metadata: no proxy_mac and no local interface holds {ip}; "
                   "metadata flows are off")
        return None
    return MetadataSettings(ip, int(cfg.get("metadata.proxy_port")), mac,
                            cfg.get("metadata.source_range"))


DEFAULT_DHCP_RATE = 50


@dataclass(frozen=True)
class Settings:
    dhcp_packet_in_rate: int = DEFAULT_DHCP_RATE   # packets/s a port may send to the DHCP server
    metadata: MetadataSettings | None = None       # None: no metadata flows, no source indexes


def settings_from_config(cfg) -> Settings:
    return Settings(dhcp_packet_in_rate=int(cfg.get("dhcp.packet_in_rate")),
                    metadata=metadata_from_config(cfg))


def current() -> Settings:
    """The running controller's settings; the defaults (metadata off) where
    no Runtime is set up (unit tests, tools)."""
    from controller.runtime import Runtime       # here: the model does not need a runtime to load
    try:
        cfg = Runtime.current().cfg
    except RuntimeError:
        return Settings()
    return settings_from_config(cfg)


@functools.lru_cache(maxsize=16)
def local_mac(ip: str) -> str | None:
    """MAC of the interface of this host holding `ip` (the proxy runs here)."""
    try:
        out = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True,
                             text=True, timeout=5).stdout
        for link in json.loads(out or "[]"):
            if any(a.get("local") == ip for a in link.get("addr_info", [])):
                with open(f"/sys/class/net/{link['ifname']}/address") as f:
                    return f.read().strip()
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return None


@functools.lru_cache(maxsize=16)
def _warn_once(message: str) -> None:
    LOG.error(message)
