"""Who may use the console: admins, authenticated the way the API does it.

* API clients (curl, tests) send the noauth identity headers X-User-Id,
  X-Project-Id, X-Roles, exactly as for the REST API.
* A browser logs in once (noauth mode only): the form at /console/login, or
  the same fields as query parameters on any console URL
  (`/console/?user_id=alice&roles=admin`), put that identity in a signed
  session cookie. The signing key is made at start-up, so a controller
  restart asks for a new login.

Unlike the API (where no identity header at all means neutron's "fake
project, admin"), the console never guesses: no identity -> the login page;
an identity that is not admin (policy rule context_is_admin) -> 403.
"""
from __future__ import annotations

from flask import request, session

from controller.api import context as contexts
from controller.api import errors

SESSION_KEY = "console_identity"
IDENTITY_HEADERS = ("X-User-Id", "X-Project-Id", "X-Tenant-Id", "X-Roles")


def identity_from_request(policy) -> contexts.Context | None:
    """The caller's identity, or None when it gave none."""
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
