"""Flask application factory for the Quantum v2.0 API.

Requests under /v2.0/ go straight to controller.api.dispatch.Api (a plain
werkzeug Request, no Flask context); a catch-all route hands it the rest
that is not the console's. Api returns a Response or raises a NeutronError
(or a domain error of controller/domain_errors.py, answered as its Neutron
error); this module turns them into HTTP (JSON bodies, 204 without content) and
enforces the body size limit (413).
Anything unexpected is logged and becomes a 500 NeutronError, never a
traceback to the client.
"""
from __future__ import annotations

import logging
import time

from flask import Flask, Response as FlaskResponse, request
from werkzeug.wrappers import Request

from controller.api import errors
from controller.api.dispatch import Api
from controller.api.logsafe import exception_text, printable
from controller.api.response import dumps
from controller.domain_errors import DomainError

LOG = logging.getLogger(__name__)
API_PREFIX = "/v2.0/"
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
_DRAIN_LIMIT = 64 * 1024 * 1024


def resource_label(known):
    """path -> its collection for the metrics' resource label; paths outside
    the known collections are "other" (no label per garbage path)."""
    known = frozenset(known)

    def of(path: str) -> str:
        first = path[len(API_PREFIX):].split("/", 1)[0]
        first = first[:-5] if first.endswith(".json") else first
        return first if first in known else "other"
    return of


def create_app(runtime) -> Flask:
    app = Flask("quantum-controller")
    api = Api(runtime)
    from controller.api import registry
    resource_of = resource_label(list(api.resources) + list(registry.SPECIAL))
    app.extensions["quantum_api"] = api
    if api.keystone:
        from controller.api.keystone import Keystone
        app.extensions["quantum_keystone"] = Keystone(runtime.cfg)
    max_body = int(runtime.cfg.get("DEFAULT.max_body_size"))

    def answer(req) -> FlaskResponse:
        try:
            _read_body(req, max_body)
            r = api.handle(req)
            return _http(r.status, r.body, r.headers)
        except errors.NeutronError as e:
            headers = {"Connection": "close"} if e.status == 413 else {}
            return _http(e.status, e.body(), headers)
        except DomainError as e:
            e = errors.from_domain(e)
            return _http(e.status, e.body())
        except Exception as exc:
            LOG.error("unexpected error on %s %s\n%s", printable(req.method), printable(req.path),
                      exception_text(exc))
            e = errors.InternalError()
            return _http(500, e.body())

    def serve(path=""):
        return answer(request)

    app.add_url_rule("/", "root", serve, methods=METHODS, provide_automatic_options=False)
    app.add_url_rule("/<path:path>", "any", serve, methods=METHODS, provide_automatic_options=False)
    # Request counts and latency for /metrics; the web console at /console.
    from controller import console, metrics
    api_metrics = metrics.instrument(app)
    console.mount(app, runtime)

    # /v2.0/... goes straight to the API: Flask's request context, routing
    # and hooks were a tenth of a port create's server time, and the API
    # needs none of them (the same answer() as through Flask, counted the same).
    flask_wsgi = app.wsgi_app

    def api_wsgi(environ, start_response):
        t0 = environ["quantum.t0"]
        req = Request(environ)
        resp = answer(req)
        seconds = time.perf_counter() - t0
        api_metrics.record(req.method, resp.status_code, seconds, resource_of(req.path))
        # The access log: writes and failures at INFO, successful reads at DEBUG.
        level = logging.DEBUG if req.method == "GET" and resp.status_code < 400 else logging.INFO
        if LOG.isEnabledFor(level):
            # Everything from the request is escaped: no forged lines, no raw NULs.
            LOG.log(level, "%s %s -> %d in %.1f ms (project %s)", printable(req.method),
                    printable(req.full_path.rstrip("?")), resp.status_code, seconds * 1000,
                    printable(environ.get("HTTP_X_PROJECT_ID") or environ.get("HTTP_X_TENANT_ID") or "-"))
        return resp(environ, start_response)

    # With Keystone, /v2.0/ passes auth_token first (controller/api/keystone.py);
    # "/" (the version document clients discover) stays open, as in neutron.
    keystone = app.extensions.get("quantum_keystone")
    entry = keystone.protect(api_wsgi) if keystone else api_wsgi

    def wsgi(environ, start_response):
        if not environ.get("PATH_INFO", "").startswith(API_PREFIX):
            return flask_wsgi(environ, start_response)
        environ["quantum.t0"] = time.perf_counter()
        return entry(environ, start_response)

    app.wsgi_app = wsgi
    return app


def _read_body(req, max_body: int) -> None:
    """Read the body once (cached for get_data); 413 when it is too large.
    An oversized body is drained first so the client sees the answer rather
    than a reset connection."""
    length = req.content_length
    stream = req.stream
    if length is not None and length > max_body:
        _drain(stream, length)
        raise errors.HTTPRequestEntityTooLarge()
    data = stream.read(max_body + 1) if (length or req.headers.get("Transfer-Encoding")) else b""
    if len(data) > max_body:
        _drain(stream, _DRAIN_LIMIT)
        raise errors.HTTPRequestEntityTooLarge()
    req._cached_data = data


def _drain(stream, limit: int) -> None:
    left = min(limit, _DRAIN_LIMIT)
    while left > 0:
        chunk = stream.read(min(65536, left))
        if not chunk:
            break
        left -= len(chunk)


def _http(status: int, body, headers=None) -> FlaskResponse:
    if status == 204 or body is None:
        resp = FlaskResponse(status=status)
        resp.headers.pop("Content-Type", None)
    else:
        data = body if isinstance(body, bytes) else dumps(body)     # bytes: JSON made already
        resp = FlaskResponse(data, status=status, content_type="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp
