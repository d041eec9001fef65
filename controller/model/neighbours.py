"""MAC addresses the controller resolved by ARP (the external networks'
gateways), shared between the ARP app that learns them
(controller/apps/l3_arp.py) and the World snapshot the NAT compiler reads.

The cache lives in memory and is written through to the `neighbours` table
when a MAC is new or changes (rare). A starting controller restores it
(controller/main.py) before it compiles anything, so it computes the very
same NAT flows as before the restart: the switches get zero flow_mods and
north-south traffic never stops, even if the gateway does not answer ARP
for a while. The ARP refresh (sent as soon as a gateway node connects)
replaces a MAC that changed meanwhile.
"""
from __future__ import annotations

import logging
import threading

from sqlalchemy import delete, select

from controller.db import models as m

LOG = logging.getLogger(__name__)

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


def store(db, network_id: str, ip: str, mac: str) -> None:
    """Write one resolution to the database (replacing the previous MAC)."""
    def txn(s):
        s.execute(delete(m.Neighbour).where(m.Neighbour.network_id == network_id,
                                            m.Neighbour.ip_address == ip))
        if s.get(m.Network, network_id) is not None:       # deleted meanwhile: nothing to keep
            s.add(m.Neighbour(network_id=network_id, ip_address=ip, mac_address=mac.lower()))
    db.run_in_transaction(txn)


def restore(db) -> int:
    """Fill the cache from the database; -> how many entries."""
    with db.read() as s:
        rows = s.execute(select(m.Neighbour.network_id, m.Neighbour.ip_address,
                                m.Neighbour.mac_address)).all()
    with _lock:
        for net, ip, mac in rows:
            _macs[(net, ip)] = mac.lower()
    if rows:
        LOG.info("restored %d external gateway MAC(s)", len(rows))
    return len(rows)
