"""What an API handler returns (status, body, headers) and how a body
becomes JSON. Its own module so the special collections (extensions,
quotas, tags) and dispatch.py can all use it without importing each other."""
from __future__ import annotations

import json

try:
    import orjson
except ImportError:         # optional: only speed depends on it
    orjson = None


class Response:
    def __init__(self, status: int, body=None, headers: dict | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


def dumps(body) -> bytes:
    # orjson encodes a 10,000-port list several times faster than json; it
    # refuses what json accepts here (lone surrogates, huge ints): then json.
    if orjson is not None:
        try:
            return orjson.dumps(body)
        except (TypeError, orjson.JSONEncodeError):
            pass
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
