"""Forward one metadata request to Nova's metadata API, the way Nova expects
it from Quantum's metadata agent: X-Instance-ID, X-Tenant-ID, X-Forwarded-For
and X-Instance-ID-Signature = HMAC-SHA256(shared secret, instance id).

Headers sent by the VM are not passed on (a VM must not be able to claim
another instance). The whole exchange has a deadline: a Nova that is down
gives 502 at once, one that is slow gives 504 after `timeout` seconds.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import time
import urllib.parse
from dataclasses import dataclass

from controller.proxy.lookup import Instance

MAX_RESPONSE_BODY = 16 * 2**20     # user-data is at most 64 KiB in Nova; be generous
CHUNK = 65536


def sign(instance_id: str, secret: str) -> str:
    return hmac.new(secret.encode(), instance_id.encode(), hashlib.sha256).hexdigest()


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class NovaError(Exception):
    """Nova could not answer: status is what the VM gets (502 or 504)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def forward(url: str, method: str, target: str, instance: Instance, secret: str,
            timeout: float) -> Answer:
    base = urllib.parse.urlsplit(url)
    if base.scheme not in ("http", "https") or not base.hostname:
        raise NovaError(502, f"bad nova_metadata_url {url!r}")
    conn_cls = http.client.HTTPSConnection if base.scheme == "https" else http.client.HTTPConnection
    deadline = time.monotonic() + timeout
    conn = conn_cls(base.hostname, base.port, timeout=timeout)
    headers = {
        "X-Instance-ID": instance.instance_id,
        "X-Tenant-ID": instance.project_id,
        "X-Forwarded-For": instance.fixed_ip,
        "X-Instance-ID-Signature": sign(instance.instance_id, secret),
    }
    try:
        conn.request(method, base.path.rstrip("/") + target, headers=headers)
        resp = conn.getresponse()
        body = b"" if method == "HEAD" else _read_body(resp, deadline)
        return Answer(resp.status, resp.getheaders(), body)
    except (socket.timeout, TimeoutError):
        raise NovaError(504, f"no answer from {url} within {timeout}s") from None
    except (ConnectionError, OSError, http.client.HTTPException) as e:
        raise NovaError(502, f"{url} unreachable: {e.__class__.__name__}: {e}") from None
    finally:
        conn.close()


def _read_body(resp, deadline: float) -> bytes:
    """Read with an overall deadline: a Nova trickling bytes cannot hold the
    VM's request past `timeout`."""
    parts, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError
        chunk = resp.read1(CHUNK) if hasattr(resp, "read1") else resp.read(CHUNK)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > MAX_RESPONSE_BODY:
            raise NovaError(502, f"Nova's answer is larger than {MAX_RESPONSE_BODY} bytes")
        parts.append(chunk)
