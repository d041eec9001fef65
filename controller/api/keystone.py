"""auth_strategy = keystone: keystonemiddleware's auth_token in front of the API.

    ks = Keystone(cfg)                 # from the [keystone_authtoken] options
    wsgi_app = ks.protect(api_wsgi)    # /v2.0/...: validates X-Auth-Token
    ks.context_for_token(token, policy) -> Context | None   # the console's session
    ks.password_token(user, password, project) -> token     # the console's login

auth_token runs in delay_auth_decision mode: it strips every identity header
the client sent (X-Roles, X-Project-Id, X-Identity-Status, ...), validates the
token (with its service user, against Keystone's /v3/auth/tokens), caches the
answer (`token_cache_time`, in memory or memcached) and marks the request; the
API then answers 401 itself, in Neutron's error shape
(controller.api.context.from_token). One AuthProtocol serves the API and the
console so they share one token cache. When Keystone cannot be reached,
auth_token (in that mode) calls the token invalid; we mark the request
(context.KEYSTONE_UNAVAILABLE_ENV) and the API answers 503, as
neutron-server does, not 401.
"""
from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.error
import urllib.request

from controller.api import context as contexts

LOG = logging.getLogger(__name__)
GROUP = "keystone_authtoken"
_NEXT = "quantum.auth_next"          # environ key: the app auth_token hands the request to
# our option -> keystoneauth's password plugin option of the same meaning
_PLUGIN_OPTS = ("auth_url", "username", "password", "project_name", "user_domain_name",
                "project_domain_name")
_MIDDLEWARE_OPTS = ("www_authenticate_uri", "region_name", "interface", "memcached_servers",
                    "token_cache_time", "cafile", "insecure")


def _oslo_conf(cfg):
    """A private oslo.config object holding [keystone_authtoken] as
    controller/config.py read it (auth_token never sees the global CONF)."""
    from keystoneauth1 import loading
    from keystonemiddleware import auth_token
    from oslo_config import cfg as oslo_cfg
    conf = oslo_cfg.ConfigOpts()
    conf([], project="quantum-controller", default_config_files=[])
    for group, opts in auth_token.list_opts():
        conf.register_opts(opts, group=group)
    auth_type = cfg.get(f"{GROUP}.auth_type")
    conf.register_opts(loading.get_auth_plugin_conf_options(auth_type), group=GROUP)
    # service_type: an application credential's access rules name it (neutron's too)
    values = {"auth_type": auth_type, "delay_auth_decision": True,
              "include_service_catalog": False, "service_type": "network"}
    for name in _PLUGIN_OPTS + _MIDDLEWARE_OPTS:
        v = cfg.get(f"{GROUP}.{name}")
        if v not in ("", None, []):
            values[name] = v
    for name, v in values.items():
        try:
            conf.set_override(name, v, group=GROUP)
        except oslo_cfg.NoSuchOptError:
            raise ValueError(f"[{GROUP}] {name} is not an option of auth_type {auth_type}") from None
    return conf


class Keystone:
    def __init__(self, cfg):
        for name in ("auth_url", "username", "password"):
            if not cfg.get(f"{GROUP}.{name}"):
                raise ValueError(f"auth_strategy = keystone needs [{GROUP}] {name}")
        self.public_url = (cfg.get(f"{GROUP}.www_authenticate_uri")
                           or cfg.get(f"{GROUP}.auth_url")).rstrip("/")
        self.verify = (False if cfg.get(f"{GROUP}.insecure")
                       else cfg.get(f"{GROUP}.cafile") or True)
        self.protocol = _protocol_class()(_handed_on, {"oslo_config_config": _oslo_conf(cfg)})
        self.recent = RecentTokens(cfg.get(f"{GROUP}.token_cache_time"))

    def protect(self, app):
        """A WSGI app that runs `app` behind token validation."""
        protocol, recent = self.protocol, self.recent

        def protected(environ, start_response):
            token = environ.get("HTTP_X_AUTH_TOKEN")
            if token and recent.admit(token, environ):
                return app(environ, start_response)
            _unreachable.seen = False
            environ[_NEXT] = app
            result = protocol(environ, start_response)
            if token:
                recent.note(token, environ)
            return result
        return protected

    def context_for_token(self, token: str, policy) -> contexts.Context | None:
        """Validate a token the way the API does (same cache); None when refused."""
        seen = {}

        def capture(environ, start_response):
            seen["environ"] = environ
            start_response("204 No Content", [])
            return [b""]

        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SCRIPT_NAME": "",
                   "SERVER_NAME": "console", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
                   "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(),
                   "HTTP_X_AUTH_TOKEN": token, _NEXT: capture}
        _unreachable.seen = False
        for _ in self.protocol(environ, lambda *a, **k: None):
            pass
        try:
            return contexts.from_token(seen.get("environ", {}), policy)
        except Exception:
            return None

    def password_token(self, username: str, password: str, project: str,
                       domain: str = "Default") -> str | None:
        """A project-scoped token from Keystone for a user name and password
        (the console's login); None when Keystone refuses them."""
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": username, "domain": {"name": domain}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
        req = urllib.request.Request(self.public_url + _v3("/auth/tokens", self.public_url),
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        ctx = None
        if self.verify is False or isinstance(self.verify, str):
            import ssl
            ctx = ssl.create_default_context(cafile=self.verify or None)
            if self.verify is False:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(req, timeout=15, context=ctx) as r:
                return r.headers.get("X-Subject-Token")
        except urllib.error.HTTPError as e:
            LOG.info("console login of %s refused by Keystone: HTTP %s", username, e.code)
            return None
        except OSError as e:
            LOG.error("console login: cannot reach Keystone at %s: %s", self.public_url, e)
            raise


_unreachable = threading.local()       # .seen: this thread's last token check could not reach Keystone


def _handed_on(environ, start_response):
    """The app auth_token calls: marks a request whose token could not be checked."""
    if getattr(_unreachable, "seen", False):
        environ[contexts.KEYSTONE_UNAVAILABLE_ENV] = True
    return environ[_NEXT](environ, start_response)


def _protocol_class():
    from keystoneauth1 import exceptions as ksa
    from keystonemiddleware.auth_token import AuthProtocol
    from keystonemiddleware.auth_token import _exceptions as ksm
    down = (ksa.ConnectFailure, ksa.DiscoveryFailure, ksa.RequestTimeout, ksm.ServiceError)

    class Protocol(AuthProtocol):
        def fetch_token(self, token, **kwargs):
            try:
                return super().fetch_token(token, **kwargs)
            except ksm.InvalidToken as e:
                # delay_auth_decision turns "Keystone unreachable" into InvalidToken
                if isinstance(e.__context__, down):
                    _unreachable.seen = True
                raise
    return Protocol


class RecentTokens:
    """Tokens auth_token confirmed moments ago -> its token object, so a
    client's next requests skip the middleware's per-request work (webob
    request and response objects, ~40 header removals and settings, the token
    re-read from its cache and its expiry re-parsed): a third of a cached
    request's server CPU. An entry lives no longer than auth_token's own cache
    would keep the token (token_cache_time, at most MAX_AGE_S) and never past
    the token's expiry, so revocation takes effect as without it. Requests
    with a service token always take auth_token's path (its rules for them)."""

    MAX_AGE_S = 60
    MAX_ENTRIES = 10000

    def __init__(self, token_cache_time: int):
        self.max_age = min(int(token_cache_time), self.MAX_AGE_S)
        self.entries: dict[str, tuple[float, object]] = {}
        self.strip = _identity_environ_keys()

    def admit(self, token: str, environ) -> bool:
        """Fill environ as auth_token would for a confirmed token; False when unknown."""
        entry = self.entries.get(token)
        if entry is None or "HTTP_X_SERVICE_TOKEN" in environ:
            return False
        until, plugin = entry
        if time.time() >= until:
            self.entries.pop(token, None)
            return False
        for key in self.strip:                # what the client sent never counts
            environ.pop(key, None)
        environ["HTTP_X_IDENTITY_STATUS"] = "Confirmed"
        environ["HTTP_X_PROJECT_ID"] = plugin.user.project_id or ""
        environ["keystone.token_auth"] = plugin
        return True

    def note(self, token: str, environ) -> None:
        if self.max_age <= 0 or environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
            return
        plugin = environ.get("keystone.token_auth")
        if (plugin is None or not plugin.has_user_token or plugin.has_service_token
                or plugin.user.expires is None
                or plugin.user.application_credential_access_rules is not None):
            return          # access rules are checked per request (method, path): auth_token's path
        until = min(time.time() + self.max_age, plugin.user.expires.timestamp())
        if len(self.entries) >= self.MAX_ENTRIES:
            self.entries.clear()                # rare: the next requests take the slow path once
        self.entries[token] = (until, plugin)


def _identity_environ_keys() -> tuple[str, ...]:
    """The environ keys of every header auth_token removes from a request."""
    from keystonemiddleware.auth_token import _request
    cls = _request._AuthTokenRequest
    headers = set(cls._all_auth_headers(cls))
    return tuple(sorted("HTTP_" + h.upper().replace("-", "_") for h in headers))


def _v3(path: str, base: str) -> str:
    return path if base.endswith("/v3") else "/v3" + path
