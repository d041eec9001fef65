"""Who may use the console: admins, authenticated the way the API does it.

auth_strategy = keystone:
* API clients (curl, scripts) send a Keystone token in X-Auth-Token.
* A browser logs in at /console/login with a user name and password (and the
  project to scope to, `admin` by default): the controller asks Keystone for
  a token and keeps it in a signed session cookie that expires with the token.
  Every page validates the token again through auth_token (its cache makes
  that cheap), so a token revoked or expired ends the session. Identity
  headers (X-Roles...) are ignored; there is no form that takes roles.

auth_strategy = noauth (development):
* API clients send the noauth identity headers X-User-Id, X-Project-Id,
  X-Roles, exactly as for the REST API.
* A browser logs in once: the form at /console/login, or the same fields as
  query parameters on any console URL (`/console/?user_id=alice&roles=admin`),
  put that identity in a signed session cookie.

The signing key is made at start-up, so a controller restart asks for a new
login. Unlike the API (where no identity header at all means neutron's "fake
project, admin" in noauth mode), the console never guesses: no identity ->
the login page; an identity that is not admin (policy rule context_is_admin)
-> 403.
"""
from __future__ import annotations

import time
from datetime import timedelta

from flask import current_app, request, session

from controller.api import context as contexts
from controller.api import errors

SESSION_KEY = "console_identity"
TOKEN_KEY = "console_token"
IDENTITY_HEADERS = ("X-User-Id", "X-Project-Id", "X-Tenant-Id", "X-Roles")
SESSION_MAX = timedelta(hours=12)     # the longest a Keystone session cookie lives


def keystone():
    """The controller's Keystone validator, or None in noauth mode."""
    return current_app.extensions.get("quantum_keystone")


def identity_from_request(policy) -> contexts.Context | None:
    """The caller's identity, or None when it gave none (or an invalid one)."""
    ks = keystone()
    if ks is not None:
        return _keystone_identity(ks, policy)
    if any(h in request.headers for h in IDENTITY_HEADERS):
        try:
            return contexts.from_headers(request.headers, policy)
        except errors.NeutronError:
            return None
    ident = session.get(SESSION_KEY)
    if not ident:
        return None
    ctx = contexts.Context(project_id=ident.get("project_id") or None, user_id=ident["user_id"],
                           roles=list(ident.get("roles", [])))
    ctx.is_admin = policy.check_rule("context_is_admin", ctx, {})
    return ctx


def _keystone_identity(ks, policy) -> contexts.Context | None:
    token = request.headers.get("X-Auth-Token")
    if token:
        return ks.context_for_token(token, policy)
    held = session.get(TOKEN_KEY)
    if not held or held.get("expires", 0) <= time.time():
        session.pop(TOKEN_KEY, None)
        return None
    ctx = ks.context_for_token(held["token"], policy)
    if ctx is None:                   # revoked or expired: log in again
        session.pop(TOKEN_KEY, None)
        return None
    ctx.user_name = held.get("user")
    return ctx


def keystone_login(policy, username: str, password: str, project: str) -> str | None:
    """Log in with Keystone; None when done, else the reason for the form."""
    ks = keystone()
    username, project = (username or "").strip(), (project or "").strip() or "admin"
    if not username or not password:
        return "User name and password are required."
    try:
        token = ks.password_token(username, password, project)
    except OSError:
        return "Keystone cannot be reached; see the controller's log."
    if token is None:
        return "Keystone refused this user name, password and project."
    ctx = ks.context_for_token(token, policy)
    if ctx is None:
        return "Keystone's token could not be validated; see the controller's log."
    if not ctx.is_admin:
        return f"The console is for administrators; {username} has roles {', '.join(ctx.roles) or 'none'}."
    expires = _token_expiry(ks, token)
    session.permanent = True          # the cookie expires after SESSION_MAX, its token sooner
    session[TOKEN_KEY] = {"token": token, "user": username, "expires": expires}
    return None


def _token_expiry(ks, token: str) -> float:
    """When the token expires (epoch seconds), at most SESSION_MAX from now."""
    cap = time.time() + SESSION_MAX.total_seconds()
    try:
        from keystoneauth1 import access
        data = ks.protocol.fetch_token(token)     # from the cache the validation filled
        return min(access.create(body=data, auth_token=token).expires.timestamp(), cap)
    except Exception:
        return min(time.time() + 3600, cap)


def login(user_id: str, project_id: str, roles: str) -> bool:
    """Store a noauth identity in the session; False when there is no user."""
    user_id = (user_id or "").strip()
    if not user_id:
        return False
    session[SESSION_KEY] = {"user_id": user_id, "project_id": (project_id or "").strip(),
                            "roles": [r.strip() for r in (roles or "").split(",") if r.strip()]}
    return True


def logout() -> None:
    session.pop(SESSION_KEY, None)
    session.pop(TOKEN_KEY, None)
