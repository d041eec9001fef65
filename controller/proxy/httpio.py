"""Just enough HTTP/1.x for the metadata proxy, with hard bounds.

VMs are untrusted: every read is bounded (request line, header count and
bytes) and the client socket has a timeout, so a slow or malicious client
costs one thread for a few seconds at most. Request bodies are never read:
the proxy only serves GET and HEAD and closes the connection after each
response.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus

MAX_REQUEST_LINE = 4096
MAX_HEADER_LINES = 64
MAX_HEADER_BYTES = 16384
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade",
                        "content-length"})


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    target: str                  # origin-form: /latest/meta-data/instance-id?x=y
    version: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


def read_request(rfile) -> Request | None:
    """Parse one request head from a binary file object. None when the client
    closed the connection without sending anything."""
    line = rfile.readline(MAX_REQUEST_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_REQUEST_LINE:
        raise BadRequest(414, "request line too long")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if not target.startswith("/") or any(c in target for c in "\x00\r\n\t"):
        raise BadRequest(400, "bad request target")
    req = Request(method, target, version)
    total = 0
    while True:
        hline = rfile.readline(MAX_HEADER_BYTES + 1)
        total += len(hline)
        if total > MAX_HEADER_BYTES:
            raise BadRequest(431, "request headers too large")
        if hline in (b"\r\n", b"\n"):
            return req
        if not hline:
            raise BadRequest(400, "connection closed inside the headers")
        if len(req.headers) >= MAX_HEADER_LINES:
            raise BadRequest(431, "too many request headers")
        name, sep, value = hline.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "malformed header line")
        req.headers.append((name, value.strip()))


def has_body(req: Request) -> bool:
    length = req.header("content-length")
    return req.header("transfer-encoding") is not None or (length is not None and length.strip() != "0")


def response_bytes(status: int, headers: list[tuple[str, str]], body: bytes,
                   head_only: bool = False) -> bytes:
    """A complete HTTP/1.1 response that closes the connection."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in HOP_BY_HOP]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    return head if head_only else head + body


def error_bytes(status: int, message: str, head_only: bool = False) -> bytes:
    body = f"{status} {HTTPStatus(status).phrase}: {message}\n".encode()
    return response_bytes(status, [("Content-Type", "text/plain; charset=UTF-8")], body, head_only)
