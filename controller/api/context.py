"""Who is calling: the request context.

noauth mode behaves like neutron's noauth pipeline with the keystonecontext
filter (API-CONFORMANCE 1.4):

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

    @property
    def tenant_id(self):
        return self.project_id

    def creds(self) -> dict:
        return {"project_id": self.project_id, "tenant_id": self.project_id,
                "user_id": self.user_id, "roles": self.roles, "is_admin": self.is_admin}

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
