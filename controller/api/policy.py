"""Policy: Neutron's default rules in oslo.policy's rule language, evaluated
without oslo.

Rule language: `role:<r>`, `rule:<name>`, `<cred>:<value or %(target key)s>`
(e.g. `project_id:%(project_id)s`), `field:<collection>:<attr>=<value>` (or
`=~<regex>`), `@` (always), `!` (never), combined with `and`, `or`, `not` and
parentheses.

Targets are the resource dicts; child resources (subnets, ports) carry their
network's attributes as `network:<attr>` (e.g. `network:project_id`), which is
what `field:networks:...` checks read for them.

`DEFAULT.policy_file` (JSON, or YAML when PyYAML is present) overrides or adds
rules by name. New resources add their defaults with `register_defaults()`.
"""
from __future__ import annotations

import json
import logging
import re
from typing import Callable

from controller.api import errors

LOG = logging.getLogger(__name__)

_ADMIN_OR_SERVICE = "rule:admin_or_service"
_ADMIN_OR_NET_OWNER_MEMBER = "rule:admin_only or rule:net_owner_member or rule:service_api"

DEFAULT_RULES: dict[str, str] = {
    # building blocks (neutron-lib policy/rules.py, neutron conf/policies/base.py)
    "context_is_admin": "role:admin",
    "admin_only": "rule:context_is_admin",
    "service_api": "role:service",
    "admin_or_service": "rule:admin_only or rule:service_api",
    "admin_or_owner": "rule:context_is_admin or project_id:%(project_id)s",
    "default": "rule:admin_or_owner",
    "project_member": "role:member and project_id:%(project_id)s",
    "project_reader": "role:reader and project_id:%(project_id)s",
    "project_manager": "role:manager and project_id:%(project_id)s",
    "admin_or_project_member": "rule:admin_only or rule:project_member",
    "admin_or_project_reader": "rule:admin_only or rule:project_reader",
    "admin_or_project_manager": "rule:admin_only or rule:project_manager",
    "net_owner_member": "role:member and project_id:%(network:project_id)s",
    "net_owner_reader": "role:reader and project_id:%(network:project_id)s",
    "net_owner_manager": "role:manager and project_id:%(network:project_id)s",
    "shared": "field:networks:shared=True",
    "external": "field:networks:router:external=True",
    "network_device": "field:port:device_owner=~^network:",
    "compute_device": "field:port:device_owner=~^compute:",
    "baremetal_device": "field:port:device_owner=~^baremetal:",
    "manila_device": "field:port:device_owner=~^manila:",
    # networks
    "create_network": "rule:admin_or_project_member",
    "create_network:shared": "rule:admin_only",
    "create_network:router:external": "rule:admin_only",
    "create_network:provider:network_type": "rule:admin_only",
    "create_network:provider:physical_network": "rule:admin_only",
    "create_network:provider:segmentation_id": "rule:admin_only",
    "create_network:port_security_enabled": "rule:admin_or_project_member",
    "get_network": "rule:admin_or_project_reader or rule:service_api or rule:shared or rule:external",
    "get_network:provider:network_type": "rule:admin_only",
    "get_network:provider:physical_network": "rule:admin_only",
    "get_network:provider:segmentation_id": "rule:admin_only",
    "update_network": "rule:admin_or_project_member",
    "update_network:shared": "rule:admin_only",
    "update_network:router:external": "rule:admin_only",
    "update_network:provider:network_type": "rule:admin_only",
    "update_network:provider:physical_network": "rule:admin_only",
    "update_network:provider:segmentation_id": "rule:admin_only",
    "update_network:port_security_enabled": "rule:admin_or_project_member",
    "delete_network": "rule:admin_or_project_member",
    # subnets
    "create_subnet": "rule:admin_only or rule:net_owner_member",
    "get_subnet": ("rule:admin_or_project_reader or rule:net_owner_reader or rule:shared "
                   "or rule:external or rule:service_api"),
    "update_subnet": "rule:admin_or_project_member or rule:net_owner_member",
    "delete_subnet": "rule:admin_or_project_member or rule:net_owner_member",
    # ports (neutron 29.0.0 defaults)
    "create_port": f"{_ADMIN_OR_SERVICE} or rule:net_owner_member or rule:shared",
    "create_port:device_owner": f"not rule:network_device or {_ADMIN_OR_SERVICE} or rule:net_owner_member",
    "create_port:mac_address": f"{_ADMIN_OR_SERVICE} or rule:net_owner_member",
    "create_port:fixed_ips": f"{_ADMIN_OR_SERVICE} or rule:net_owner_member or rule:shared",
    "create_port:fixed_ips:ip_address": f"{_ADMIN_OR_SERVICE} or rule:net_owner_member",
    "create_port:fixed_ips:subnet_id": f"{_ADMIN_OR_SERVICE} or rule:net_owner_member or rule:shared",
    "create_port:port_security_enabled": f"{_ADMIN_OR_SERVICE} or rule:net_owner_member",
    "create_port:device_id": "rule:admin_or_project_member or rule:service_api",
    "create_port:tags": "rule:admin_or_project_member or rule:service_api",
    # Address pairs widen what a port may send (anti-spoofing): only the
    # network's owner may set them, never a tenant on someone's shared network.
    "create_port:allowed_address_pairs": _ADMIN_OR_NET_OWNER_MEMBER,
    "create_port:allowed_address_pairs:mac_address": _ADMIN_OR_NET_OWNER_MEMBER,
    "create_port:allowed_address_pairs:ip_address": _ADMIN_OR_NET_OWNER_MEMBER,
    "get_port": f"{_ADMIN_OR_SERVICE} or rule:net_owner_reader or rule:project_reader",
    "get_port:binding:host_id": _ADMIN_OR_SERVICE,
    "get_port:binding:vif_type": _ADMIN_OR_SERVICE,
    "update_port": f"{_ADMIN_OR_SERVICE} or rule:project_member",
    "update_port:device_owner": f"not rule:network_device or {_ADMIN_OR_SERVICE} or rule:net_owner_member",
    "update_port:mac_address": f"{_ADMIN_OR_SERVICE} or rule:net_owner_manager",
    "update_port:fixed_ips": f"{_ADMIN_OR_SERVICE} or rule:net_owner_member",
    "update_port:fixed_ips:ip_address": f"{_ADMIN_OR_SERVICE} or rule:net_owner_member",
    "update_port:fixed_ips:subnet_id": f"{_ADMIN_OR_SERVICE} or rule:net_owner_member or rule:shared",
    "update_port:port_security_enabled": f"{_ADMIN_OR_SERVICE} or rule:net_owner_member",
    "update_port:device_id": "rule:admin_or_project_member or rule:service_api",
    "update_port:allowed_address_pairs": _ADMIN_OR_NET_OWNER_MEMBER,
    "update_port:allowed_address_pairs:mac_address": _ADMIN_OR_NET_OWNER_MEMBER,
    "update_port:allowed_address_pairs:ip_address": _ADMIN_OR_NET_OWNER_MEMBER,
    "delete_port": (f"{_ADMIN_OR_SERVICE} or (not rule:compute_device and not rule:baremetal_device "
                    "and not rule:manila_device and (rule:net_owner_member or rule:project_member))"),
    # quotas (the controller lets anyone read their own project's quota)
    "get_quota": "rule:admin_or_project_manager",
    "update_quota": "rule:admin_only",
    "delete_quota": "rule:admin_only",
}


def register_defaults(rules: dict[str, str]) -> None:
    """For resource modules: add default rules (a policy file still overrides)."""
    DEFAULT_RULES.update(rules)


# --- the rule language -------------------------------------------------------------

Check = Callable[[dict, dict, "Enforcer"], bool]


class Compiled:
    def __init__(self, fn: Check, needs_target: bool):
        self.fn = fn
        self.needs_target = needs_target


def _tokens(text: str) -> list[str]:
    return text.replace("(", " ( ").replace(")", " ) ").split() if text.strip() else ["@"]


def compile_rule(text: str) -> Compiled:
    # Parenthesised %(...)s substitutions must not be split: protect them.
    protected = re.sub(r"%\(([^)]*)\)s", lambda m: "%{" + m.group(1) + "}s", text)
    toks = _tokens(protected)
    pos = 0
    needs_target = False

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take():
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    def parse_or():
        left = parse_and()
        while peek() == "or":
            take()
            right = parse_and()
            left = (lambda a, b: lambda c, t, e: a(c, t, e) or b(c, t, e))(left, right)
        return left

    def parse_and():
        left = parse_not()
        while peek() == "and":
            take()
            right = parse_not()
            left = (lambda a, b: lambda c, t, e: a(c, t, e) and b(c, t, e))(left, right)
        return left

    def parse_not():
        if peek() == "not":
            take()
            inner = parse_not()
            return lambda c, t, e: not inner(c, t, e)
        return parse_atom()

    def parse_atom():
        nonlocal needs_target
        tok = take() if peek() is not None else "!"
        if tok == "(":
            inner = parse_or()
            if peek() == ")":
                take()
            return inner
        check, uses = _atom(tok.replace("%{", "%(").replace("}s", ")s"))
        needs_target = needs_target or uses
        return check

    fn = parse_or()
    if pos != len(toks):
        raise ValueError(f"cannot parse policy rule {text!r}")
    return Compiled(fn, needs_target)


def _atom(tok: str) -> tuple[Check, bool]:
    if tok == "@":
        return (lambda c, t, e: True), False
    if tok == "!":
        return (lambda c, t, e: False), False
    kind, _, match = tok.partition(":")
    if kind == "rule":
        # A referenced rule may itself look at the target; assume it might.
        return (lambda c, t, e: e.check_rule_creds(match, c, t)), True
    if kind == "role":
        want = match.lower()
        return (lambda c, t, e: want in c["roles_lower"]), False
    if kind == "field":
        collection, _, rest = match.partition(":")
        if "=~" in rest:
            attr, _, pattern = rest.partition("=~")
            rx = re.compile(pattern)
            test = lambda v: v is not None and bool(rx.search(str(v)))  # noqa: E731
        else:
            attr, _, want_s = rest.partition("=")
            test = lambda v: str(v) == want_s  # noqa: E731
        own = collection.rstrip("s")

        def field_check(c, t, e):
            # A network's own attribute, or the parent network's copy in a child.
            if t.get("_resource") == own:
                return test(t.get(attr))
            return test(t.get(f"{own}:{attr}"))
        return field_check, True
    # generic: <creds key>:<literal or %(target)s>
    if "%(" in match:
        def generic(c, t, e):
            try:
                value = match % t
            except (KeyError, TypeError, ValueError):
                return False
            return c.get(kind) is not None and str(c.get(kind)) == value
        return generic, True
    return (lambda c, t, e: str(c.get(kind)) == match), False


class Enforcer:
    def __init__(self, policy_file: str = ""):
        rules = dict(DEFAULT_RULES)
        if policy_file:
            rules.update(_load_file(policy_file))
        self.texts = rules
        self.rules = {name: compile_rule(text) for name, text in rules.items()}
        self._needs_target_memo: dict[str, bool] = {}    # rules never change after loading

    def has(self, name: str) -> bool:
        return name in self.rules

    @staticmethod
    def _creds(ctx) -> dict:
        c = ctx.creds()
        c["roles_lower"] = {r.lower() for r in ctx.roles}
        return c

    def check_rule_creds(self, name: str, creds: dict, target: dict) -> bool:
        rule = self.rules.get(name)
        if rule is None:
            return False
        return rule.fn(creds, target, self)

    def check_rule(self, name: str, ctx, target: dict) -> bool:
        return self.check_rule_creds(name, self._creds(ctx), target)

    def check(self, ctx, action: str, target: dict) -> bool:
        """True when `action` is allowed; an unknown action uses `default`."""
        rule = self.rules.get(action) or self.rules["default"]
        return rule.fn(self._creds(ctx), target, self)

    def enforce(self, ctx, action: str, target: dict) -> None:
        if not self.check(ctx, action, target):
            raise errors.PolicyNotAuthorized(action=action)

    def checker(self, ctx, action: str) -> Callable[[dict], bool]:
        """A fast per-request predicate for checking many targets (list filtering)."""
        name = action if action in self.rules else "default"
        rule = self.rules[name]
        creds = self._creds(ctx)
        if not self._needs_target(name):
            result = rule.fn(creds, {}, self)
            return lambda target: result
        return lambda target: rule.fn(creds, target, self)


    def needs_target(self, action: str) -> bool:
        """False when the rule's outcome depends on the caller only (then one
        check serves every item of a list)."""
        return self._needs_target(action if action in self.rules else "default")

    def allows_all(self, ctx, action: str) -> bool:
        """True when `action` passes whatever the target (e.g. admins on get_*)."""
        name = action if action in self.rules else "default"
        text = self.texts[name]
        if self._needs_target(name):
            # A top-level 'or' chain whose first, target-free part passes is enough.
            first = text.split(" or ")[0].strip()
            if "(" in text or not first.startswith("rule:") or " " in first:
                return False
            ref = first[len("rule:"):]
            return ref in self.rules and not self._needs_target(ref) and self.check_rule(ref, ctx, {})
        return self.rules[name].fn(self._creds(ctx), {}, self)

    def _needs_target(self, name: str, seen: frozenset = frozenset()) -> bool:
        if not seen and name in self._needs_target_memo:
            return self._needs_target_memo[name]     # asked for every attribute of every answer
        text = self.texts.get(name, "")
        if "%(" in text or "field:" in text:
            result = True
        else:
            result = any(self._needs_target(ref, seen | {name})
                         for ref in re.findall(r"rule:([\w:.-]+)", text) if ref not in seen)
        if not seen:
            self._needs_target_memo[name] = result
        return result


def _load_file(path: str) -> dict[str, str]:
    with open(path) as f:
        text = f.read()
    try:
        data = json.loads(text)
    except ValueError:
        import yaml   # PyYAML comes with openstacksdk; only needed for YAML policy files
        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a policy file maps rule names to rules")
    LOG.info("policy: %d rules from %s", len(data), path)
    return {str(k): str(v) for k, v in data.items()}
