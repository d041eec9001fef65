"""The [metadata] options the flows need, resolved once: where the proxy is
(address, port, MAC) and the source range. None when metadata is off
(no proxy_address)."""
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


def from_config(cfg) -> MetadataSettings | None:
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


def configured() -> MetadataSettings | None:
    """The running controller's settings (None in unit tests without a Runtime)."""
    try:
        from controller.runtime import Runtime
        cfg = Runtime.current().cfg
    except RuntimeError:
        return None
    return from_config(cfg)


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
