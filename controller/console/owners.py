"""Cookie -> owner: which Quantum object (or node) put a flow there.

A cookie holds the owner's kind and the first 14 hex digits of its UUID
(controller/flows/cookies.py). `OwnerIndex` is built from the ids and names
of the objects the database knows, and turns a cookie back into an `Owner`
with a console page to link to. Pure: the console fills it from the DB, the
tests by hand.
"""
from __future__ import annotations

from dataclasses import dataclass

from controller.flows import cookies

# Which table a cookie kind's key points into, and the console page of that
# kind of object. A DHCP flow's key is its network's DHCP port.
KIND_TARGET = {
    "infra": "node",
    "network": "network",
    "port": "port",
    "dhcp": "port",
    "router": "router",
    "floatingip": "floatingip",
    "security_group": "security_group",
    "security_group_rule": "security_group_rule",
    "metadata": "port",
}
PAGES = {"node", "network", "port", "router", "security_group", "security_group_rule"}  # with a console page


@dataclass(frozen=True)
class Owner:
    kind: str               # cookie kind ("port", "dhcp", ...); "foreign" for cookies not ours
    target: str | None      # kind of object the key names ("port" for kind "dhcp")
    id: str | None          # full id when found
    name: str = ""          # a readable label
    cookie: int = 0

    @property
    def label(self) -> str:
        if self.kind == "foreign":
            return f"not ours (cookie {self.cookie:#x})"
        if self.id is None:
            return f"{self.kind} {cookies.decode(self.cookie)[1]}… (gone)"
        return f"{self.kind} {self.name or self.id[:8]}"

    @property
    def page(self) -> str | None:
        """Path below /console of the object's page, when it has one."""
        if self.id and self.target in PAGES:
            return f"{self.target}/{self.id}"
        return None


class OwnerIndex:
    """objects: {target kind: {id: name}}, e.g. {"port": {"8c77...": "vm1 eth0"}}."""

    def __init__(self, objects: dict[str, dict[str, str]]):
        self.objects = objects
        self._by_prefix: dict[tuple[str, str], str] = {}
        for target, items in objects.items():
            for oid in items:
                self._by_prefix.setdefault((target, prefix_of(oid)), oid)
        self._cache: dict[int, Owner] = {}

    def resolve(self, cookie: int) -> Owner:
        owner = self._cache.get(cookie)
        if owner is None:
            owner = self._cache[cookie] = self._resolve(cookie)
        return owner

    def _resolve(self, cookie: int) -> Owner:
        kind, prefix = cookies.decode(cookie)
        if kind is None:
            return Owner("foreign", None, None, cookie=cookie)
        target = KIND_TARGET.get(kind, kind)
        oid = self._by_prefix.get((target, prefix))
        name = self.objects.get(target, {}).get(oid, "") if oid else ""
        return Owner(kind, target, oid, name, cookie)

    def cookies_of(self, target: str, oid: str) -> set[int]:
        """Every cookie that names this object (for "flows that serve it")."""
        return {cookies.cookie(kind, oid) for kind, tgt in KIND_TARGET.items()
                if tgt == target and kind in cookies.OWNER_KINDS}


def prefix_of(oid: str) -> str:
    """The part of an id a cookie keeps, in cookies.decode()'s form."""
    return cookies.decode(cookies.cookie("port", oid))[1]
