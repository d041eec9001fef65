"""The API's HTTP server: werkzeug's threaded server, with keep-alive.

werkzeug's own handler ends every connection after one answer (it sends
`Connection: close`), so each request paid for a TCP connect, an accept and
a new thread (about a third of a port create's server time), and clients
(openstacksdk through requests, the CLI) paid for a new connection. This
handler keeps the connection when it safely can: the request body has a
Content-Length and was read to its end (or the little left is skipped here),
the answer is sent whole with its Content-Length, and neither side asked to
close. Chunked requests and `Expect: 100-continue` take werkzeug's path.
Hand-written on purpose: the measured third of a port create above.
"""
from __future__ import annotations

import json
import logging

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wsgi import LimitedStream

from controller.api.logsafe import exception_text, printable

LOG = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 120          # an idle kept-alive connection gives its thread back after this
SKIP_UNREAD_MAX = 64 * 1024   # an unread request body up to this is skipped; more: close
_DROPPED = (ConnectionError, TimeoutError)
# Errors of the HTTP layer itself, named as webob names them in Neutron.
_HTTP_ERROR_TYPES = {400: "HTTPBadRequest", 408: "HTTPRequestTimeout", 414: "HTTPRequestURITooLong",
                     431: "HTTPRequestHeaderFieldsTooLarge", 501: "HTTPNotImplemented",
                     505: "HTTPVersionNotSupported"}


class KeepAliveHandler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT_S
    disable_nagle_algorithm = True

    def run_wsgi(self) -> None:
        length = self.headers.get("Content-Length")
        if (self.headers.get("Transfer-Encoding")
                or self.headers.get("Expect", "").lower().strip() == "100-continue"
                or (length is not None and not length.strip().isdigit())):
            super().run_wsgi()            # werkzeug's path: one request, then close
            self.close_connection = True
            return
        self.environ = environ = self.make_environ()
        body = LimitedStream(self.rfile, int(length or 0))
        environ["wsgi.input"] = body
        started: list = []

        def start_response(status, headers, exc_info=None):
            started[:] = [status, headers]
            return chunks.append          # the legacy write() callable

        chunks: list[bytes] = []
        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except _DROPPED:
            self.close_connection = True
            return
        except Exception as exc:
            LOG.error("error on %s %s\n%s", printable(self.command), printable(self.path),
                      exception_text(exc))
            started[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
            chunks = [b"Internal Server Error"]
            self.close_connection = True
        if not body.is_exhausted:
            self._skip_unread(body, int(length))
        self._send(started[0], started[1], b"".join(chunks))

    def _skip_unread(self, body: LimitedStream, length: int) -> None:
        """Read what the app left of the request body, so the next request
        starts where it should; close instead when that is a lot."""
        if length - body.tell() > SKIP_UNREAD_MAX:
            self.close_connection = True
            return
        try:
            body.exhaust()
        except _DROPPED:
            self.close_connection = True

    def _send(self, status: str, headers: list, data: bytes) -> None:
        """Status line, headers and body in one write."""
        code = int(status.split(None, 1)[0])
        names = set()
        lines = [f"{self.protocol_version} {status}", f"Server: {self.version_string()}",
                 f"Date: {self.date_time_string()}"]
        for k, v in headers:
            names.add(k.lower())
            lines.append(f"{k}: {v}")
        if "content-length" not in names and code not in (204, 304) and code >= 200:
            lines.append(f"Content-Length: {len(data)}")
        if self.close_connection or any(k.lower() == "connection" and v.lower() == "close"
                                        for k, v in headers):
            self.close_connection = True
            if "connection" not in names:
                lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.command == "HEAD" or code in (204, 304):
            data = b""
        try:
            self.wfile.write(head + data)
        except _DROPPED:
            self.close_connection = True

    def send_error(self, code, message=None, explain=None) -> None:
        """What the HTTP layer refuses before the application sees the request
        (a request line over 64 KiB: 414, a header line too long or too many
        headers: 431, a malformed request line: 400) as a NeutronError in
        JSON, like every other error of the API, instead of an HTML page."""
        short = self.responses.get(code, ("Error",))[0]
        message = message or short
        self.log_error("code %d, message %s", code, message)
        body = json.dumps({"NeutronError": {"type": _HTTP_ERROR_TYPES.get(code, "HTTPError"),
                                            "message": message, "detail": ""}}).encode()
        self.close_connection = True
        self.send_response(code, short)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code="-", size="-") -> None:
        pass      # werkzeug's access log: off in the controller (its logger is at WARNING)

    def log_error(self, format, *args) -> None:
        if format.startswith("Request timed out"):
            return    # an idle kept-alive connection closed after IDLE_TIMEOUT_S: nothing failed
        super().log_error(format, *[printable(a) if isinstance(a, str) else a for a in args])


def make_api_server(host: str, port: int, app):
    """A threaded server for `app` whose connections are kept alive."""
    return make_server(host, port, app, threaded=True, request_handler=KeepAliveHandler)
