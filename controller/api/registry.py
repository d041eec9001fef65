"""What the API serves: resources, extensions and special collections.

To add a resource (e.g. routers for issue 3):

1. write `controller/api/resources/<name>.py` defining
   * `RESOURCE` (or a list `RESOURCES`): a `controller.api.resource.Resource`
     with its attribute table and a `Handler` subclass;
   * `EXTENSIONS`: the `Extension`s it implements (advertised at
     /v2.0/extensions, so list exactly what works);
   * optionally `POLICY`: default rules, {"create_router": "rule:..."};
   * optionally `QUOTAS`: {"router": "quotas.quota_router"} (quota name ->
     config option holding its default);
   * optionally `setup(resources_by_name)`: called once all modules are loaded,
     to extend another resource (`Resource.extend()`, `Resource.hooks`);
2. add the module to `RESOURCE_MODULES` below.

Member actions (`PUT /routers/<id>/add_router_interface`) are a dict
`actions = {"add_router_interface": fn}` on the handler;
`fn(api, tx, ctx, id, body) -> dict` is returned unwrapped with 200.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

RESOURCE_MODULES = [
    "controller.api.resources.networks",
    "controller.api.resources.subnets",
    "controller.api.resources.ports",
    "controller.api.resources.nodes",
    "controller.api.resources.security_groups",
    "controller.api.resources.routers",
    "controller.api.resources.floatingips",
]


@dataclass(frozen=True)
class Extension:
    alias: str
    name: str
    description: str
    updated: str = "2013-02-03T10:00:00-00:00"

    def as_dict(self) -> dict:
        return {"alias": self.alias, "name": self.name, "description": self.description,
                "updated": self.updated, "links": []}


# Features of the framework itself (every resource gets them).
FRAMEWORK_EXTENSIONS = [
    Extension("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."),
    Extension("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    Extension("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    Extension("standard-attr-description", "standard-attr-description",
              "Extension to add descriptions to standard attributes"),
    Extension("standard-attr-revisions", "Resource revision numbers",
              "This extension will display the revision number of neutron resources."),
    Extension("standard-attr-timestamp", "Resource timestamps",
              "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."),
    Extension("standard-attr-tag", "Tag support for resources with standard attribute: subnet, trunk, network_segment_range, router, network, policy, subnetpool, port, security_group, floatingip",
              "Enables to set tag on resources with standard attribute."),
    Extension("filter-validation", "Filter parameters validation",
              "Provides validation on filter parameters."),
    Extension("empty-string-filtering", "Empty String Filtering Extension",
              "Allow filtering by attributes with empty string value"),
    Extension("revision-if-match", "If-Match constraints based on revision_number",
              "Extension indicating that If-Match based on revision_number is supported."),
    Extension("quotas", "Quota management support", "Expose functions for quotas management per project"),
    Extension("quota-check-limit-default", "Quota engine limit check (default)",
              "Quota updates are checked against the current usage unless forced."),
]

RESOURCES: list = []
EXTENSIONS: list[Extension] = []
QUOTAS: dict[str, str] = {}         # quota resource -> config key of its default
SPECIAL: dict = {}                  # first URL segment -> fn(api, ctx, req, rest_parts)
_loaded = False


def load() -> None:
    """Import the resource modules once and collect what they declare."""
    global _loaded
    if _loaded:
        return
    from controller.api import extensions, policy, quotas
    EXTENSIONS.extend(FRAMEWORK_EXTENSIONS)
    modules = [importlib.import_module(m) for m in RESOURCE_MODULES]
    for m in modules:
        RESOURCES.extend(getattr(m, "RESOURCES", None) or [m.RESOURCE])
        EXTENSIONS.extend(getattr(m, "EXTENSIONS", []))
        policy.register_defaults(getattr(m, "POLICY", {}))
        QUOTAS.update(getattr(m, "QUOTAS", {}))
    by_name = {r.name: r for r in RESOURCES}
    for m in modules:
        if hasattr(m, "setup"):
            m.setup(by_name)
    SPECIAL["extensions"] = extensions.handle
    SPECIAL["quotas"] = quotas.handle
    _loaded = True
