"""Accepting a switch's connection: TLS when [ssl] is configured, and the
outcome of the handshake recorded in controller.channels.

os-ken's OpenFlow listener hands every accepted socket to
`os_ken.controller.controller.datapath_connection_factory` in a thread of its
own; `install()` replaces that function with `serve_switch`, which
  1. with TLS, waits (handshake_timeout) for the switch's first bytes and
     completes the handshake with a certificate from the deployment's CA
     required (anything else, plain TCP included, is refused);
  2. runs os-ken's Datapath as os-ken does, and records a switch that left
     before its OpenFlow handshake completed (no features reply: no dpid).
A connection closed before sending any byte is a port probe (a health
check), not a switch, and is ignored.
The listener itself stays os-ken's plain one: its own TLS mode would give no
reason for a refused switch, and would let the Datapath's receive and send
threads use one OpenSSL connection at once (see SerializedTLSSocket).
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import select
import socket
import ssl
import threading
import time

from os_ken.controller.controller import Datapath

from controller import channels
from controller.openflow import osken_patches

LOG = logging.getLogger(__name__)

NODE_CACHE_SECONDS = 10.0
WAIT_SLICE = 1.0      # longest single wait on the socket before trying the TLS call again


class SerializedTLSSocket:
    """An SSLSocket that os-ken's Datapath may use from its two threads (the
    receive loop and the send loop). OpenSSL forbids using one connection from
    two threads at once, so every TLS call here runs alone, non-blocking, under
    a lock, and waiting for the socket happens outside it."""

    def __init__(self, tls: ssl.SSLSocket):
        self._tls = tls
        self._lock = threading.Lock()
        self._timeout: float | None = None
        tls.setblocking(False)

    def settimeout(self, timeout):
        self._timeout = timeout

    def gettimeout(self):
        return self._timeout

    def setsockopt(self, *args):
        return self._tls.setsockopt(*args)

    def fileno(self):
        return self._tls.fileno()

    def getpeercert(self, binary_form=False):
        return self._tls.getpeercert(binary_form)

    def recv(self, n: int) -> bytes:
        deadline = self._deadline()
        while True:
            with self._lock:
                try:
                    return self._recv_available(n)
                except ssl.SSLWantReadError:
                    want = select.POLLIN
                except ssl.SSLWantWriteError:
                    want = select.POLLOUT
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return b""
            self._wait(want, deadline)

    def _recv_available(self, n: int) -> bytes:
        """Up to n bytes from every TLS record already readable, not just the
        first: a TLS record holds at most 16 KiB, and a flow dump arrives as
        64 KiB multipart messages that os-ken would otherwise take in 4 loops."""
        data = self._tls.recv(n)
        if not data or len(data) >= n:
            return data
        parts, got = [data], len(data)
        while got < n:
            try:
                more = self._tls.recv(n - got)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, ssl.SSLZeroReturnError,
                    ssl.SSLEOFError):
                break                         # the next call reports it
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def sendall(self, data) -> None:
        view = memoryview(data)
        deadline = self._deadline()
        while view:
            with self._lock:
                try:
                    view = view[self._tls.send(view):]
                    continue
                except ssl.SSLWantWriteError:
                    want = select.POLLOUT
                except ssl.SSLWantReadError:
                    want = select.POLLIN
            self._wait(want, deadline)

    def shutdown(self, how) -> None:
        # SSLSocket.shutdown() drops its TLS state, under the feet of the
        # other thread; shut the TCP socket down instead (no close_notify).
        with self._lock:
            socket.socket.shutdown(self._tls, how)

    def close(self) -> None:
        with self._lock:
            self._tls.close()

    def _deadline(self):
        return None if self._timeout is None else time.monotonic() + self._timeout

    def _wait(self, events: int, deadline: float | None) -> None:
        left = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - time.monotonic())
        if left <= 0:
            raise socket.timeout("timed out")
        poller = select.poll()
        poller.register(self._tls.fileno(), events)
        poller.poll(left * 1000)


class CountingSocket:
    """A plain TCP socket that counts the bytes received: a connection closed
    before sending any is a port probe (a health check), not a failed switch;
    one that starts with a TLS handshake is a switch with an ssl: target."""

    def __init__(self, sock):
        self._sock = sock
        self.received = 0
        self.first = b""

    def recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        if not self.received:
            self.first = data[:3]
            if self.spoke_tls():               # 0x16 is no OpenFlow version: end it now
                self.received = len(data)
                return b""
        self.received += len(data)
        return data

    def spoke_tls(self) -> bool:
        """The first bytes were a TLS handshake record (an ssl: target)."""
        return self.first[:1] == b"\x16" and self.first[1:2] == b"\x03"

    def __getattr__(self, name):
        return getattr(self._sock, name)


class SwitchAcceptor:
    """What serve_switch needs: the TLS context (None: plain TCP), the
    handshake timeout, and a way to name the node behind an address."""

    def __init__(self, tls_context: ssl.SSLContext | None, handshake_timeout: float, db=None):
        self.ctx = tls_context
        self.timeout = float(handshake_timeout)
        self.db = db
        self._nodes_by_ip: dict[str, str] = {}
        self._nodes_at = 0.0
        self._lock = threading.Lock()

    # os-ken's datapath_connection_factory(socket, address)
    def serve_switch(self, sock, address):
        peer = _host(address)
        try:
            conn = self._open(sock, address)
        except Exception:
            LOG.exception("switch at %s: accepting failed", peer)
            conn = None
        if conn is None:
            _close(sock)
            return
        with contextlib.closing(Datapath(conn, address)) as dp:
            try:
                dp.serve()
            except Exception:
                LOG.exception("switch %s at %s: its connection failed",
                              f"{dp.id:016x}" if dp.id else "(no dpid yet)", peer)
            if dp.id is None and getattr(conn, "received", 1) == 0:
                LOG.debug("switch at %s: closed without sending anything (a port probe)", peer)
            elif dp.id is None and isinstance(conn, CountingSocket) and conn.spoke_tls():
                self._failed(peer, channels.TLS, "the switch speaks TLS (an ssl: target) but "
                             "the controller has no [ssl] files")
            elif dp.id is None:
                self._failed(peer, channels.OPENFLOW,
                             "closed before the OpenFlow handshake completed "
                             "(no common OpenFlow version, or the switch gave up)")

    def _open(self, sock, address):
        """The socket to run OpenFlow on, or None when the connection was refused."""
        peer = _host(address)
        if self.ctx is None:
            return CountingSocket(sock)        # os-ken sends its HELLO at once, as before
        sock.settimeout(self.timeout)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            self._failed(peer, channels.TIMEOUT, f"sent nothing within {self.timeout:g} s")
            return None
        except OSError as e:
            LOG.debug("switch at %s: gone before sending anything (%s)", peer, e)
            return None
        if not first:
            LOG.debug("switch at %s: closed without sending anything (a port probe)", peer)
            return None
        try:
            tls = self.ctx.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self._failed(peer, channels.TLS, channels.tls_detail(e, "switch"))
            return None
        LOG.info("switch at %s: TLS (%s) with certificate of %s", peer, tls.version(),
                 _subject(tls.getpeercert()))
        return SerializedTLSSocket(tls)

    def _failed(self, peer: str, reason: str, detail: str) -> None:
        # Keyed by what went wrong too: switches behind one address (NAT, a
        # relay) that fail differently are separate rows, not one that flips.
        channels.FAILURES.failed("openflow", f"{peer} {reason} {detail}", node=self.node_at(peer),
                                 peer=peer, reason=reason, detail=detail)

    def node_at(self, ip: str) -> str:
        """The hostname of the one registered node with this address (its OVSDB
        address or tunnel IP), "" when none or several have it."""
        with self._lock:
            if time.monotonic() - self._nodes_at > NODE_CACHE_SECONDS:
                self._nodes_by_ip, self._nodes_at = self._load_nodes(), time.monotonic()
            return self._nodes_by_ip.get(ip, "")

    def _load_nodes(self) -> dict[str, str]:
        if self.db is None:
            return {}
        from sqlalchemy import select as sql_select
        from controller.db import models
        try:
            with self.db.read() as s:
                rows = s.execute(sql_select(models.Node.hostname, models.Node.ovsdb,
                                            models.Node.tunnel_ip)).all()
        except Exception:
            LOG.exception("cannot read the nodes to name a switch's address")
            return {}
        return nodes_by_address(rows)


def nodes_by_address(rows) -> dict[str, str]:
    """{ip: hostname} from (hostname, ovsdb remote, tunnel ip) rows; an address
    two nodes share (a lab on loopback) names neither."""
    seen: dict[str, set] = {}
    for hostname, ovsdb, tunnel_ip in rows:
        for ip in {_remote_host(ovsdb or ""), tunnel_ip or ""} - {""}:
            seen.setdefault(ip, set()).add(hostname)
    return {ip: next(iter(names)) for ip, names in seen.items() if len(names) == 1}


def _remote_host(remote: str) -> str:
    """The address in tcp:IP:PORT / ssl:IP:PORT / ssl:[IPv6]:PORT, "" otherwise."""
    kind, _, rest = remote.partition(":")
    if kind not in ("tcp", "ssl") or not rest:
        return ""
    host = rest.rsplit(":", 1)[0].strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return ""


def _host(address) -> str:
    return str(address[0]) if isinstance(address, tuple) and address else str(address)


def _subject(cert: dict | None) -> str:
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return f"CN={value}"
    return "an unnamed subject"


def _close(sock) -> None:
    try:
        sock.close()
    except OSError:
        pass


def install(tls_context: ssl.SSLContext | None, handshake_timeout: float, db=None) -> SwitchAcceptor:
    """Make os-ken's OpenFlow listener accept switches through a SwitchAcceptor.
    Call before the apps are instantiated (the listener starts with them)."""
    acceptor = SwitchAcceptor(tls_context, handshake_timeout, db)
    osken_patches.accept_switches_with(acceptor.serve_switch)
    return acceptor
