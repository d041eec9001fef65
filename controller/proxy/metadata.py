"""The metadata proxy: VMs' requests to 169.254.169.254 -> Nova's metadata API.

How a request gets here (docs/PIPELINE.md, table METADATA): the node's
br-int rewrites a VM's TCP packets to 169.254.169.254:80 statelessly, source
to the port's own address in `[metadata] source_range`, destination to
`proxy_address:proxy_port`, and sends them out of its metadata uplink onto
the management network; the replies come back the same way and are
rewritten to come from 169.254.169.254:80. No agent runs on the node.

Here: the source address names the port (controller/proxy/lookup.py), hence
the instance (device_id) and project; the request is forwarded to Nova with
the signed headers (controller/proxy/nova.py) and Nova's status, headers and
body go back. Unknown source: 404. Nova down: 502, slow: 504. Methods other
than GET/HEAD: 405. Oversized request lines or headers: 414/431. Bodies: 400.
Each of those is one log line. One request per connection.

    proxy = MetadataProxy(cfg, db, host, port).start()   # serving in a thread
    proxy.port; proxy.stop()

Standalone (same configuration file as quantum-controller):
    python -m controller.proxy --config-file /etc/quantum/quantum.conf
"""
from __future__ import annotations

import logging
import socket
import socketserver
import threading

from controller.proxy import httpio, nova
from controller.proxy.lookup import find_instance

LOG = logging.getLogger(__name__)

ALLOWED_METHODS = ("GET", "HEAD")
CLIENT_TIMEOUT = 10.0      # seconds a client may take to send its request head
MAX_CONCURRENT = 64        # requests in flight; beyond that: 503 at once
POLL_S = 0.1              # how soon stop() takes effect
DRAIN_LIMIT = 1 << 20      # bytes read and dropped after a response, before closing


class MetadataProxy:
    def __init__(self, cfg, db, host: str, port: int, max_concurrent: int = MAX_CONCURRENT):
        self.db = db
        self.nova_url = cfg.get("metadata.nova_metadata_url")
        self.secret = cfg.get("metadata.metadata_proxy_shared_secret")
        self.timeout = float(cfg.get("metadata.timeout"))
        self.source_range = cfg.get("metadata.source_range")
        self.max_concurrent = max_concurrent
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.server = _Server((host, port), _Handler, proxy=self)
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> "MetadataProxy":
        self.thread = threading.Thread(target=self.server.serve_forever, args=(POLL_S,),
                                       name="metadata-proxy", daemon=True)
        self.thread.start()
        LOG.info("metadata proxy listening on %s:%s, forwarding to %s",
                 *self.server.server_address[:2], self.nova_url)
        return self

    def serve_forever(self) -> None:
        LOG.info("metadata proxy listening on %s:%s, forwarding to %s",
                 *self.server.server_address[:2], self.nova_url)
        self.server.serve_forever(POLL_S)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- one request ----------------------------------------------------------

    def answer(self, req: httpio.Request, source_ip: str) -> bytes:
        """The complete response bytes for a parsed request from source_ip."""
        head = req.method == "HEAD"
        where = f"{req.method} {req.target[:200]!r} from {source_ip}"
        if req.method not in ALLOWED_METHODS:
            LOG.warning("metadata: %s refused: method not allowed", where)
            return httpio.response_bytes(405, [("Allow", ", ".join(ALLOWED_METHODS))],
                                         b"405 Method Not Allowed\n")
        if httpio.has_body(req):
            LOG.warning("metadata: %s refused: request has a body", where)
            return httpio.error_bytes(400, "request bodies are not accepted", head)
        try:
            instance, why = find_instance(self.db, source_ip, self.source_range)
        except Exception:
            LOG.exception("metadata: %s: port lookup failed", where)
            return httpio.error_bytes(500, "port lookup failed", head)
        if instance is None:
            LOG.warning("metadata: %s: unknown source (%s)", where, why)
            return httpio.error_bytes(404, "unknown instance", head)
        try:
            a = nova.forward(self.nova_url, req.method, req.target, instance, self.secret,
                             self.timeout)
        except nova.NovaError as e:
            LOG.error("metadata: %s (instance %s): %s -> %d", where, instance.instance_id, e, e.status)
            return httpio.error_bytes(e.status, "the metadata service is unavailable", head)
        LOG.info("metadata: %s (port %s, instance %s) -> %d", where, instance.port_id,
                 instance.instance_id, a.status)
        return httpio.response_bytes(a.status, a.headers, a.body, head)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, proxy: MetadataProxy):
        self.proxy = proxy
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        # Bounded concurrency: a flood of slow clients gets 503, not threads.
        if not self.proxy.slots.acquire(blocking=False):
            LOG.warning("metadata: busy (%d requests in flight), 503 to %s",
                        self.proxy.max_concurrent, client_address[0])
            try:
                request.settimeout(1.0)
                request.sendall(httpio.error_bytes(503, "too many requests in flight"))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.proxy.slots.release()


class _Handler(socketserver.StreamRequestHandler):
    timeout = CLIENT_TIMEOUT

    def handle(self):
        source_ip = self.client_address[0]
        try:
            req = httpio.read_request(self.rfile)
        except httpio.BadRequest as e:
            LOG.warning("metadata: bad request from %s: %s -> %d", source_ip, e, e.status)
            self._send(httpio.error_bytes(e.status, str(e)))
            return
        except (socket.timeout, TimeoutError):
            LOG.warning("metadata: %s sent no complete request in %.0fs", source_ip, CLIENT_TIMEOUT)
            return
        except OSError:
            return
        if req is None:
            return
        self._send(self.server.proxy.answer(req, source_ip))

    def _send(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self._drain()
        except OSError:
            pass       # the client went away; nothing to tell it

    def _drain(self) -> None:
        """Read (a bounded amount of) what the client still sends before
        closing: closing with unread data sends a RST, which can destroy the
        response before the client has read it."""
        self.connection.settimeout(1.0)
        left = DRAIN_LIMIT
        while left > 0:
            chunk = self.connection.recv(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)
