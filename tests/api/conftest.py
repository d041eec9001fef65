"""API test helpers: one real controller process per test module (tests use
distinct projects so they do not interfere), and a small HTTP client that
sends the noauth identity headers."""
from __future__ import annotations

import http.client
import json
import uuid
from urllib.parse import urlsplit

import pytest

from tests.support.controller import ControllerProcess

MEMBER_ROLES = "member,reader"
ADMIN_ROLES = "admin,member,reader"


@pytest.fixture(scope="module")
def api_controller(tmp_path_factory):
    c = ControllerProcess(str(tmp_path_factory.mktemp("ctl")))
    c.start()
    yield c
    c.stop()


class Http:
    """Plain HTTP against the API with noauth headers (None: no identity headers)."""

    def __init__(self, url: str, project: str | None = None, roles: str = MEMBER_ROLES,
                 user: str | None = "user"):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.url = url
        self.project = project
        self.roles = roles
        self.user = user

    def headers(self, extra=None) -> dict:
        h = {}
        if self.project is not None:
            h["X-Project-Id"] = self.project
            h["X-Roles"] = self.roles
            if self.user:
                h["X-User-Id"] = self.user
        h.update(extra or {})
        return h

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            h = self.headers(headers)
            if data is not None:
                h.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            text = r.read()
            ctype = r.getheader("Content-Type") or ""
            parsed = json.loads(text) if text and "json" in ctype else (text.decode(errors="replace") or None)
            return Result(r.status, parsed, dict(r.getheaders()))
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


class Result:
    def __init__(self, status, body, headers):
        self.status, self.body, self.headers = status, body, headers

    @property
    def error_type(self):
        return (self.body or {}).get("NeutronError", {}).get("type") if isinstance(self.body, dict) else None

    @property
    def message(self):
        return (self.body or {}).get("NeutronError", {}).get("message") if isinstance(self.body, dict) else None

    def __repr__(self):
        return f"<{self.status} {self.body!r}>"


def new_project() -> str:
    return "proj-" + uuid.uuid4().hex[:12]


@pytest.fixture
def admin(api_controller):
    return Http(api_controller.url, project="admin-project", roles=ADMIN_ROLES)


@pytest.fixture
def member(api_controller):
    return Http(api_controller.url, project=new_project())


@pytest.fixture
def other_member(api_controller):
    return Http(api_controller.url, project=new_project())
