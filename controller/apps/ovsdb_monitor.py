"""Port binding without an agent: watch every node's OVSDB from the controller.

One thread and one `ovs.poller` serve all registered nodes (Node.ovsdb, e.g.
tcp:192.0.2.17:6640 opened by `node-bootstrap --ovsdb-listen`). For each node
an `ovs.db.idl.Idl` replicates only what binding needs - Bridge/Port names
(to know what is on br-int) and Interface name/external_ids/ofport - so OVS's
statistics updates cause no traffic (docs/ARCHITECTURE.md, "Port binding"). On every
change_seqno the node's set of VIFs is recomputed and diffed with the last
one; after a (re)connect or a controller start the whole set is compared with
the database instead, so deletions during an outage are seen. port_binding.py
writes the result. Nothing here may end the thread: errors are logged and the
node is resynced on the next round.
"""
from __future__ import annotations

import logging
import os
import threading
import time

import ovs.db.idl
import ovs.poller
import ovs.reconnect
from os_ken.base import app_manager
from sqlalchemy import select

from controller import channels, tls
from controller.apps import port_binding, port_timing
from controller.apps.port_binding import NodeInfo, Vif
from controller.db import models
from controller.events import Change
from controller.runtime import Runtime

LOG = logging.getLogger(__name__)

INTEGRATION_BRIDGE = "br-int"
NODE_RELOAD_SECONDS = 10      # also pick up nodes registered through another controller process
RETRY_SECONDS = 1.0           # after a failed database write
RECHECK_SECONDS = 5.0         # look again at unbound VIFs (a port event may slip past)
MAX_BACKOFF_MS = 2000         # OVSDB reconnect backoff (the ovs library's floor is 1000)


def _column(key_type, min_=0, max_="unlimited", value_type=None, ref=None):
    key = {"type": key_type, "refTable": ref} if ref else key_type
    t = {"key": key, "min": min_, "max": max_}
    if value_type:
        t["value"] = value_type
    return {"type": t}


# The part of the Open_vSwitch schema we replicate. Written here rather than
# read from vswitch.ovsschema so the controller host needs no OVS installed.
SCHEMA = {
    "name": "Open_vSwitch", "version": "8.3.0",
    "tables": {
        "Open_vSwitch": {"columns": {"external_ids": _column("string", value_type="string")},
                         "isRoot": True, "maxRows": 1},
        "Bridge": {"columns": {"name": {"type": "string"},
                               "ports": _column("uuid", ref="Port")}, "isRoot": True},
        "Port": {"columns": {"name": {"type": "string"},
                             "interfaces": _column("uuid", 1, ref="Interface")}},
        "Interface": {"columns": {"name": {"type": "string"},
                                  "external_ids": _column("string", value_type="string"),
                                  "ofport": _column("integer", 0, 1)}},
    },
}


class _Idl(ovs.db.idl.Idl):
    """Remembers which rows changed since the last look (ovs calls notify()
    for every row it creates, updates or deletes)."""

    def __init__(self, *args, **kwargs):
        self.touched: set = set()
        super().__init__(*args, **kwargs)

    def notify(self, event, row, updates=None):
        self.touched.add(row.uuid.int)     # ints: uuid.UUID hashes in Python (see vifs)


class NodeConnection:
    """One node's OVSDB replica and what we last concluded from it."""

    def __init__(self, node: NodeInfo, remote: str):
        self.node = node
        self.remote = remote
        helper = ovs.db.idl.SchemaHelper(schema_json=SCHEMA)
        helper.register_columns("Open_vSwitch", ["external_ids"])
        helper.register_columns("Bridge", ["name", "ports"])
        helper.register_columns("Port", ["name", "interfaces"])
        helper.register_columns("Interface", ["name", "external_ids", "ofport"])
        self.idl = _Idl(remote, helper)
        reconnect = getattr(getattr(self.idl, "_session", None), "reconnect", None)
        self.channel_failures: list[tuple[str, int]] = []   # (FSM state, errno) since last look
        self.channel_ok = False
        if reconnect is not None:
            reconnect.set_backoff(1000, MAX_BACKOFF_MS)
            _record_failures(reconnect, self.channel_failures)
        self.seen_seqno = None
        self.last: dict[str, Vif] | None = None       # None: compare with the DB next time
        self.pending: dict[str, str] = {}            # iface -> port id / prefix we wait for
        self.refused: dict[str, tuple[str, str]] = {}  # iface -> (port id, reason), logged once
        self.retry_at = 0.0
        self.recheck_at = 0.0
        # vifs() keeps what it read per row: every attribute of an IDL row is
        # converted from its datum on each access, and re-reading 500
        # interfaces for every plug cost ~10 ms. Rows the IDL reports changed
        # (_Idl.touched) are read again; a new br-int row (reconnect) resets all.
        self._bridge_row = None
        self._port_ifaces: dict = {}       # Port uuid (int) -> its Interface uuids
        self._iface_vif: dict = {}         # Interface uuid (int) -> Vif, or None (no ofport, local port)

    def synced(self) -> bool:
        return self.idl.state == self.idl.IDL_S_MONITORING

    def channel_up(self) -> bool:
        """Connected now with the replica in sync (the IDL stays MONITORING
        between a dropped connection and the next one)."""
        session = getattr(self.idl, "_session", None)
        return self.synced() and (session is None or session.is_connected())

    def vifs(self) -> dict[str, Vif]:
        """Interfaces on br-int that have an OpenFlow port number."""
        touched, self.idl.touched = self.idl.touched, set()
        bridge = next((b for b in self.idl.tables["Bridge"].rows.values()
                       if b.name == INTEGRATION_BRIDGE), None)
        if bridge is None:
            return {}
        if bridge is not self._bridge_row:
            self._bridge_row, self._port_ifaces, self._iface_vif = bridge, {}, {}
        # Everything here is keyed by the uuids' integers: uuid.UUID hashes in
        # Python, which cost thousands of calls a plug at 500 ports.
        if not self._port_ifaces or bridge.uuid.int in touched or not touched.isdisjoint(self._port_ifaces):
            old, port_rows = self._port_ifaces, self.idl.tables["Port"].rows
            self._port_ifaces = {u.int: old[u.int] if u.int in old and u.int not in touched
                                 else _interfaces(port_rows.get(u))
                                 for u in _ref_uuids(bridge, "ports")}
            live = {u.int for ifaces in self._port_ifaces.values() for u in ifaces}
            self._iface_vif = {k: v for k, v in self._iface_vif.items() if k in live}
        rows = self.idl.tables["Interface"].rows
        cache = self._iface_vif
        out = {}
        for ifaces in self._port_ifaces.values():
            for u in ifaces:
                k = u.int
                if k in cache and k not in touched:
                    vif = cache[k]
                else:
                    iface = rows.get(u)
                    vif = cache[k] = _vif(iface) if iface is not None else None
                if vif is not None:
                    out[vif.iface] = vif
        return out

    def close(self):
        self.idl.close()


def _record_failures(reconnect, into: list) -> None:
    """Note every failed attempt or dropped connection of an ovs.reconnect FSM
    as (state, errno): the library only logs them through its own vlog, which
    says nothing in our log. CONNECTING with errno 0 is its connect timeout."""
    disconnected = reconnect.disconnected

    def noting(now, error):
        state = getattr(reconnect.state, "name", "")
        if state not in ("BACKOFF", "VOID"):
            into.append((state, error))
        return disconnected(now, error)
    reconnect.disconnected = noting


def channel_failure(state: str, error: int, tls_words: str | None) -> tuple[str, str]:
    """(reason, detail) of one failure noted by _record_failures."""
    if tls_words:
        return channels.TLS, tls_words
    if state == "CONNECTING":
        if error == 0:
            return channels.TIMEOUT, "timed out connecting (no answer from that address)"
        return channels.errno_reason(error)
    if error == ovs.reconnect.EOF:
        return channels.DROPPED, "connection closed by the node"
    if error == 0:
        return channels.TIMEOUT, "no answer to the inactivity probe: connection dropped"
    reason, detail = channels.errno_reason(error)
    return (channels.DROPPED if reason == channels.ERROR else reason), f"connection dropped: {detail}"


def _interfaces(port_row) -> tuple:
    """The Interface uuids of a Port row (none while the row is not replicated yet)."""
    return () if port_row is None else tuple(_ref_uuids(port_row, "interfaces"))


def _ref_uuids(row, column: str) -> list:
    """The uuids in a reference-set column of an IDL row we never write.
    Read from the row's datum: the ovs library's attribute access converts
    the whole set to rows and sorts them (~O(P log P) Python calls for
    br-int's ports at every plug)."""
    datum = row._data.get(column) if isinstance(getattr(row, "_data", None), dict) else None
    if datum is None or getattr(row, "_changes", None) or getattr(row, "_mutations", None):
        return [r.uuid for r in getattr(row, column)]
    return [atom.value for atom in datum.values]


def _vif(iface) -> Vif | None:
    ofport = iface.ofport[0] if iface.ofport else -1
    if ofport <= 0 or iface.name == INTEGRATION_BRIDGE:
        return None                    # not (yet) assigned, failed, or the local port
    ids = iface.external_ids
    return Vif(iface.name, ofport, ids.get("iface-id") or None, ids.get("attached-mac") or None)


class OvsdbMonitor(app_manager.OSKenApp):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.runtime = Runtime.current()
        self.conns: dict[str, NodeConnection] = {}     # node id -> connection
        self._stop = threading.Event()
        self._nodes_dirty = True
        self._recheck = threading.Event()              # a port we were waiting for changed
        self._waiting_ids: set[str] = set()            # read by the bus callback
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._nodes_loaded_at = 0.0
        self._orphans: set[str] = set()                # hostnames of removed nodes to unbind
        self._thread: threading.Thread | None = None
        self.runtime.bus.subscribe(self._on_changes)

    # --- os-ken app lifecycle ----------------------------------------------------

    def start(self):
        super().start()
        self._thread = threading.Thread(target=self._run, name="ovsdb-monitor", daemon=True)
        self._thread.start()

    def close(self):
        """Called by AppManager.close() at shutdown."""
        self._stop.set()
        self._wake()
        self.runtime.bus.unsubscribe(self._on_changes)

    # --- change bus (runs in the publisher's thread: only flag and wake) ---------

    def _on_changes(self, changes: list[Change]):
        wake = False
        for c in changes:
            if c.kind == "node":
                self._nodes_dirty = wake = True
            elif c.kind == "port" and self._is_awaited(c.id):
                self._recheck.set()
                wake = True
        if wake:
            self._wake()

    def _is_awaited(self, port_id: str) -> bool:
        waiting = self._waiting_ids
        return port_id in waiting or any(w.endswith("*") and port_id.startswith(w[:-1])
                                         for w in waiting)

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass                                       # already awake / closing

    # --- the thread ----------------------------------------------------------------

    def _run(self):
        LOG.info("OVSDB monitor running")
        while not self._stop.is_set():
            try:
                self._round()
            except Exception:
                LOG.exception("OVSDB monitor round failed; carrying on")
                time.sleep(RETRY_SECONDS)
        for conn in self.conns.values():
            conn.close()

    def _round(self):
        now = time.monotonic()
        if self._nodes_dirty or now - self._nodes_loaded_at > NODE_RELOAD_SECONDS:
            self._nodes_dirty = False
            self._load_nodes()
            self._nodes_loaded_at = now
        for hostname in list(self._orphans):
            self._release(hostname)
        recheck = self._recheck.is_set()
        self._recheck.clear()
        for conn in list(self.conns.values()):
            try:
                self._service(conn, recheck)
            except Exception:
                LOG.exception("OVSDB monitor: node %s failed; resyncing it", conn.node.hostname)
                conn.last = None
                conn.retry_at = time.monotonic() + RETRY_SECONDS
        self._waiting_ids = {v for c in self.conns.values() for v in c.pending.values()} | {
            port_id for c in self.conns.values() for port_id, _ in c.refused.values()}
        self._block()

    def _block(self):
        poller = ovs.poller.Poller()
        for conn in self.conns.values():
            conn.idl.wait(poller)
        poller.fd_wait(self._wake_r, ovs.poller.POLLIN)
        soonest = min([c.retry_at for c in self.conns.values()
                       if c.last is None and c.synced()] or [0])
        delay = max(0.0, soonest - time.monotonic()) if soonest else 1.0
        poller.timer_wait(int(min(delay, 1.0) * 1000))
        poller.block()
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _service(self, conn: NodeConnection, recheck: bool):
        conn.idl.run()
        self._report_channel(conn)
        if not conn.synced():
            return
        changed = conn.idl.change_seqno != conn.seen_seqno
        resync = conn.last is None and time.monotonic() >= conn.retry_at
        unbound = bool(conn.pending or conn.refused)
        recheck = unbound and (recheck or time.monotonic() >= conn.recheck_at)
        if not (changed or resync or recheck):
            return
        conn.seen_seqno = conn.idl.change_seqno
        vifs = conn.vifs()
        if conn.last is None or recheck:
            self._sync(conn, vifs, None, None)
            conn.recheck_at = time.monotonic() + RECHECK_SECONDS
        else:
            last = conn.last
            plugged = [v for name, v in vifs.items() if last.get(name) is not v and last.get(name) != v]
            unplugged = [v for name, v in conn.last.items() if name not in vifs]
            if plugged or unplugged:
                self._sync(conn, vifs, plugged, unplugged)
        conn.last = vifs

    def _report_channel(self, conn: NodeConnection):
        """Failures of the node's OVSDB connection to channels.FAILURES (log,
        console, metrics); working again once the replica is in sync."""
        failures, conn.channel_failures[:] = list(conn.channel_failures), []
        for state, error in failures:
            reason, detail = channel_failure(state, error, tls.last_errors.pop(conn.remote, None))
            conn.channel_ok = False
            channels.FAILURES.failed("ovsdb", conn.node.id, node=conn.node.hostname,
                                     peer=conn.remote, reason=reason, detail=detail)
        if not conn.channel_ok and conn.channel_up():
            conn.channel_ok = True
            channels.FAILURES.succeeded("ovsdb", conn.node.id)

    def _sync(self, conn: NodeConnection, vifs, plugged, unplugged):
        started, started_mono = time.perf_counter(), time.monotonic()
        result = self.runtime.db.run_in_transaction(
            port_binding.sync, conn.node, vifs, plugged, unplugged)
        LOG.debug("%s: %s sync of %d VIFs: %d port(s) changed in %.1f ms", conn.node.hostname,
                  "full" if plugged is None else "incremental",
                  len(vifs) if plugged is None else len(plugged) + len(unplugged),
                  len(result.changed), (time.perf_counter() - started) * 1000)
        touched = vifs.keys() if plugged is None else {v.iface for v in (plugged + unplugged)}
        for iface in touched:
            conn.pending.pop(iface, None)
            if iface not in result.refused:
                conn.refused.pop(iface, None)
        conn.pending.update(result.waiting)
        for iface in list(conn.pending):
            if iface not in vifs:
                del conn.pending[iface]
        for iface, refused in result.refused.items():
            if conn.refused.get(iface) != refused:
                LOG.warning("not binding %s on %s: %s", iface, conn.node.hostname, refused[1])
            conn.refused[iface] = refused
        for iface in list(conn.refused):
            if iface not in vifs:
                del conn.refused[iface]
        if result.changed:
            port_timing.bound(result.changed, at=started_mono)
            self.runtime.bus.publish([Change("port", pid) for pid in result.changed])

    # --- nodes -------------------------------------------------------------------------

    def _load_nodes(self):
        with self.runtime.db.read() as s:
            rows = s.execute(select(models.Node)).scalars().all()
            nodes = {n.id: (NodeInfo(n.id, n.hostname, n.tunnel_type, n.tunnel_ip,
                                     dict(n.bridge_mappings or {})), n.ovsdb) for n in rows}
        for node_id in list(self.conns):
            if node_id not in nodes:
                self._forget(node_id)
        for node_id, (info, remote) in nodes.items():
            conn = self.conns.get(node_id)
            if conn and conn.remote == remote:
                if conn.node != info:             # mappings or tunnel changed: recheck all
                    conn.node, conn.last = info, None
                continue
            if conn:
                conn.close()
                del self.conns[node_id]
            if not remote:
                LOG.warning("node %s registered no OVSDB address: its ports cannot be bound",
                            info.hostname)
                continue
            LOG.info("watching OVSDB of node %s at %s", info.hostname, remote)
            if remote.startswith("tcp:") and self.runtime.cfg.get("ssl.ca_cert"):
                LOG.warning("node %s registered a plain tcp: OVSDB address while [ssl] is "
                            "configured: that channel is unauthenticated (use --ovsdb-listen "
                            "pssl:PORT:IP)", info.hostname)
            self.conns[node_id] = NodeConnection(info, remote)

    def _forget(self, node_id: str):
        conn = self.conns.pop(node_id)
        conn.close()
        channels.FAILURES.forget("ovsdb", node_id)
        LOG.info("node %s removed: no longer watching %s", conn.node.hostname, conn.remote)
        self._orphans.add(conn.node.hostname)

    def _release(self, hostname: str):
        """Unbind the ports of a removed node (retried next round on failure)."""
        if any(c.node.hostname == hostname for c in self.conns.values()):
            self._orphans.discard(hostname)            # it registered again
            return
        changed = self.runtime.db.run_in_transaction(port_binding.unbind_host, hostname)
        self._orphans.discard(hostname)
        if changed:
            self.runtime.bus.publish([Change("port", pid) for pid in changed])
