"""MAC addresses the controller resolved by ARP (the external networks'
gateways), shared between the ARP app that learns them
(controller/apps/l3_arp.py) and the World snapshot the NAT compiler reads.

Kept in memory: after a controller restart the first ARP exchange (sent as
soon as the gateway node's br-int connects) fills it again; until then the
outbound NAT flows, which need the MAC, are not compiled.
"""
from __future__ import annotations

import threading

_lock = threading.Lock()
_macs: dict[tuple[str, str], str] = {}      # (network_id, ip) -> mac


def learn(network_id: str, ip: str, mac: str) -> bool:
    """Record a resolution; True when it is new or changed."""
    mac = mac.lower()
    with _lock:
        if _macs.get((network_id, ip)) == mac:
            return False
        _macs[(network_id, ip)] = mac
        return True


def snapshot() -> dict[tuple[str, str], str]:
    with _lock:
        return dict(_macs)


def forget_all() -> None:
    with _lock:
        _macs.clear()
