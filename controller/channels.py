"""Failures of the channels between the controller and its nodes, in one place.

Two kinds of channel can fail before any flow or port binding happens:
`ovsdb` (the controller cannot open or keep a node's OVSDB connection:
refused, timed out, TLS failure) and `openflow` (a switch's TLS or OpenFlow
handshake fails). Each failure is recorded here, so the log, the console's
nodes page and /metrics say the same thing (docs/ARCHITECTURE.md, "Secure
channels and their failures").

Logging stays readable while a channel keeps failing on every reconnect: a
warning on the first failure, whenever the reason changes, and a reminder
every REMIND_SECONDS; a line again when the channel works.
"""
from __future__ import annotations

import errno as errnos
import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass, replace

LOG = logging.getLogger(__name__)

REMIND_SECONDS = 60.0
MAX_ENTRIES = 256           # distinct failing channels remembered (oldest dropped)

# Short reasons (the metrics label) and what an operator should read into them.
REFUSED, TIMEOUT, UNREACHABLE, TLS, DROPPED, OPENFLOW, ERROR = (
    "refused", "timeout", "unreachable", "tls", "dropped", "openflow", "error")
REASONS = (REFUSED, TIMEOUT, UNREACHABLE, TLS, DROPPED, OPENFLOW, ERROR)


@dataclass(frozen=True)
class Failure:
    kind: str             # "ovsdb" | "openflow"
    key: str              # ovsdb: node id; openflow: the peer's address (no port), reason and detail
    node: str             # hostname, "" when no registered node is known for the peer
    peer: str             # the remote we dial (ovsdb) or the switch's address (openflow)
    reason: str           # one of REASONS
    detail: str           # what happened, in words
    count: int            # failures since the channel last worked
    first_at: float       # wall-clock time of the first of them
    last_at: float
    failing: bool = True  # False once the channel worked again (kept to show recovery)

    def describe(self) -> str:
        who = f"node {self.node}" if self.node else "unknown node"
        what = "OVSDB" if self.kind == "ovsdb" else "OpenFlow switch"
        return f"{what} of {who} at {self.peer}: {self.detail}"


class ChannelLog:
    """Thread-safe; written by the OVSDB monitor thread and the switches'
    connection threads, read by the console and /metrics."""

    def __init__(self, clock=time.time):
        self._lock = threading.Lock()
        self._clock = clock
        self._entries: dict[tuple[str, str], Failure] = {}
        self._logged_at: dict[tuple[str, str], float] = {}
        self.totals: dict[tuple[str, str], int] = {}     # (kind, reason) -> failures ever

    def failed(self, kind: str, key: str, *, node: str, peer: str, reason: str,
               detail: str) -> Failure:
        now = self._clock()
        k = (kind, key)
        with self._lock:
            old = self._entries.pop(k, None)
            if old is not None and old.failing:
                entry = replace(old, node=node or old.node, peer=peer, reason=reason,
                                detail=detail, count=old.count + 1, last_at=now)
            else:
                entry = Failure(kind, key, node, peer, reason, detail, 1, now, now)
            self._entries[k] = entry
            while len(self._entries) > MAX_ENTRIES:
                oldest = next(iter(self._entries))
                del self._entries[oldest]
                self._logged_at.pop(oldest, None)
            self.totals[(kind, reason)] = self.totals.get((kind, reason), 0) + 1
            changed = old is None or not old.failing or (old.reason, old.detail) != (reason, detail)
            remind = now - self._logged_at.get(k, 0.0) >= REMIND_SECONDS
            if changed or remind:
                self._logged_at[k] = now
        if changed:
            LOG.warning("%s", entry.describe())
        elif remind:
            LOG.warning("%s (still failing: %d attempts since %s)", entry.describe(), entry.count,
                        time.strftime("%H:%M:%S", time.localtime(entry.first_at)))
        return entry

    def succeeded(self, kind: str, key: str) -> None:
        """The channel works (again): log the recovery once, keep the entry shown as recovered."""
        with self._lock:
            old = self._entries.get((kind, key))
            if old is None or not old.failing:
                return
            self._entries[(kind, key)] = replace(old, failing=False, last_at=self._clock())
            self._logged_at.pop((kind, key), None)
        LOG.info("%s: works again after %d failed attempt(s)",
                 old.describe().split(": ")[0], old.count)

    def forget(self, kind: str, key: str) -> None:
        with self._lock:
            self._entries.pop((kind, key), None)
            self._logged_at.pop((kind, key), None)

    def entries(self, kind: str | None = None) -> list[Failure]:
        with self._lock:
            found = [e for e in self._entries.values() if kind is None or e.kind == kind]
        return sorted(found, key=lambda e: (not e.failing, e.kind, e.node, e.key))

    def totals_snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.totals)


# The process's record (one per controller process, like guard.handler_errors).
FAILURES = ChannelLog()


# --- reasons, from what the libraries report ------------------------------------------

def errno_reason(error: int) -> tuple[str, str]:
    """(reason, detail) for a failed connection attempt's errno."""
    if error == errnos.ECONNREFUSED:
        return REFUSED, "connection refused (nothing listens there?)"
    if error == errnos.ETIMEDOUT:
        return TIMEOUT, "timed out connecting"
    if error in (errnos.EHOSTUNREACH, errnos.ENETUNREACH, errnos.EADDRNOTAVAIL):
        return UNREACHABLE, os.strerror(error).lower()
    if error == errnos.ECONNRESET:
        return DROPPED, "connection reset by the node"
    return ERROR, os.strerror(error).lower() if error > 0 else f"error {error}"


# OpenSSL's reasons that mean the peer did not speak TLS at all.
NOT_TLS_REASONS = {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL",
                   "UNSUPPORTED_PROTOCOL", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}


def tls_detail(exc: BaseException, peer_role: str = "peer") -> str:
    """Words for a failed TLS handshake or TLS read (`peer_role`: 'switch' or 'node')."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the {peer_role}'s certificate was refused ({exc.verify_message})"
    if isinstance(exc, (TimeoutError, ssl.SSLWantReadError)):
        return "TLS: no handshake within the time allowed"
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or ""
        if reason in NOT_TLS_REASONS:
            return f"TLS: the {peer_role} does not speak TLS (plain TCP?)"
        if reason.startswith(("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")):
            alert = reason.split("ALERT_", 1)[1].lower().replace("_", " ")
            return f"TLS: the {peer_role} refused the controller's certificate (alert: {alert})"
        if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return f"TLS: the {peer_role} closed the connection during the handshake"
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return f"TLS: the {peer_role} sent no certificate"
        return f"TLS: {reason.lower().replace('_', ' ') or exc}"
    if isinstance(exc, ConnectionResetError):
        return f"TLS: the {peer_role} reset the connection during the handshake"
    return f"TLS: {exc}"
