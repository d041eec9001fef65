"""Who is calling: the request context.

keystone mode (`from_token`): keystonemiddleware's auth_token has validated
the X-Auth-Token (controller/api/keystone.py); the context comes from the
validated token alone (project, user, roles, system scope, admin project),
never from request headers: a client's own X-Roles or X-Project-Id cannot
change who it is. No valid token -> 401.

noauth mode behaves like neutron's noauth pipeline with the keystonecontext
filter (docs/API.md "Who is calling"):

* no identity header at all -> project `fake_project_id`, elevated to admin
  (neutron's NoauthFakeProjectId), so `openstack --os-auth-type none` works;
* otherwise X-User-Id is required (401 without it), the project comes from
  X-Project-Id (or X-Tenant-Id / X-Tenant), roles from X-Roles (comma
  separated), and `is_admin` from the policy rule `context_is_admin`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from controller.api import errors

FAKE_PROJECT_ID = "fake_project_id"
_IDENTITY_HEADERS = ("X-Project-Id", "X-Tenant-Id", "X-Tenant", "X-User-Id", "X-Roles")


@dataclass
class Context:
    project_id: str | None
    user_id: str | None = None
    roles: list[str] = field(default_factory=list)
    is_admin: bool = False
    system_scope: str | None = None      # "all" for a system-scoped Keystone token
    is_admin_project: bool = True        # Keystone's admin project flag (oslo.context default)

    @property
    def tenant_id(self):
        return self.project_id

    def creds(self) -> dict:
        return {"project_id": self.project_id, "tenant_id": self.project_id,
                "user_id": self.user_id, "roles": self.roles, "is_admin": self.is_admin,
                "system_scope": self.system_scope, "is_admin_project": self.is_admin_project}

    @classmethod
    def admin(cls) -> "Context":
        return cls(project_id=None, roles=["admin"], is_admin=True)


def from_headers(headers, policy) -> Context:
    if not any(h in headers for h in _IDENTITY_HEADERS):
        return Context(project_id=FAKE_PROJECT_ID, user_id=None,
                       roles=["admin", "member", "reader"], is_admin=True)
    user_id = headers.get("X-User-Id")
    if not user_id:
        raise errors.HTTPUnauthorized("Unauthorized: X-User-Id is required")
    project_id = (headers.get("X-Project-Id") or headers.get("X-Tenant-Id")
                  or headers.get("X-Tenant") or None)
    roles = [r.strip() for r in headers.get("X-Roles", "").split(",") if r.strip()]
    ctx = Context(project_id=project_id, user_id=user_id, roles=roles)
    ctx.is_admin = policy.check_rule("context_is_admin", ctx, {})
    return ctx


UNAUTHENTICATED = "The request you have made requires authentication."
KEYSTONE_UNAVAILABLE = "The Keystone service is temporarily unavailable."
KEYSTONE_UNAVAILABLE_ENV = "quantum.keystone_unavailable"   # set by api/keystone.py


def from_token(environ, policy) -> Context:
    """The context of a request that went through auth_token (delay_auth_decision
    mode: it marks the request and lets the API answer)."""
    plugin = environ.get("keystone.token_auth")
    if (environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed" or plugin is None
            or not plugin.has_user_token):
        if environ.get(KEYSTONE_UNAVAILABLE_ENV):
            raise errors.ServiceUnavailable(KEYSTONE_UNAVAILABLE)
        raise errors.HTTPUnauthorized(UNAUTHENTICATED)
    token = plugin.user
    ctx = Context(project_id=token.project_id, user_id=token.user_id,
                  roles=list(token.role_names or []),
                  system_scope="all" if token.system_scoped else None,
                  is_admin_project=bool(token.is_admin_project))
    ctx.is_admin = policy.check_rule("context_is_admin", ctx, {})
    return ctx
