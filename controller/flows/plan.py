"""The planner: what must change on a switch, and which nodes a change can touch.

Pure functions of flows and snapshots (no OpenFlow, no database, no clock):

    plan_switch(bridge, desired, desired_meters, installed, meters, complete, keys)
                                   -> SwitchPlan (adds, mods, dels, meters)
    apply_plan(plan, installed, meters) -> what the switch holds once it is confirmed
    affected_nodes(old_world, new_world, changes) -> the nodes to recompile

controller/apps/scheduler.py calls them every round; controller/apps/
switch_session.py turns a SwitchPlan into flow_mods. Rules (docs/ARCHITECTURE.md,
"Contracts"): only flows whose cookie is ours are in `installed`, so only ours
are ever deleted; an incomplete compile (a compiler failed) deletes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from controller.flows.flow import Flow, Meter
from controller.flows.security_groups import nodes_of_group, nodes_watching


@dataclass
class SwitchPlan:
    """One switch's difference between desired and installed."""
    adds: list[Flow] = field(default_factory=list)
    mods: list[Flow] = field(default_factory=list)      # same key and cookie, other actions
    dels: list[Flow] = field(default_factory=list)
    meter_adds: list[Meter] = field(default_factory=list)
    meter_mods: list[Meter] = field(default_factory=list)
    meter_dels: list[Meter] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not (self.adds or self.mods or self.dels or self.meter_adds or self.meter_mods
                    or self.meter_dels)


def diff(installed: dict, desired: list[Flow], allow_delete: bool = True):
    """-> (adds, modifies, deletes). A changed cookie needs an add (OpenFlow
    1.3 modify keeps the old cookie); changed actions alone a modify_strict."""
    want = {f.key: f for f in desired}
    adds, mods = [], []
    for k, f in want.items():
        have = installed.get(k)
        if have is None or have.cookie != f.cookie:
            adds.append(f)
        elif have.actions != f.actions or have.idle_timeout != f.idle_timeout:
            mods.append(f)
    dels = [f for k, f in installed.items() if k not in want] if allow_delete else []
    return adds, mods, dels


def plan_switch(bridge: str, desired: dict, desired_meters: dict, installed: dict | None,
                meters: dict | None, complete: bool, keys: set | None = None) -> SwitchPlan:
    """The difference for the switch that is `bridge` of its node.

    desired: key -> Flow of the whole node (NodeCompiler.desired);
    desired_meters: (bridge, meter_id) -> Meter of the node;
    installed / meters: what the switch holds (ours only), None when unknown;
    complete: every compiler succeeded (else nothing is deleted);
    keys: only these flow keys changed since the generation the switch
    matched (compare just them: O(change)), or None to compare all of the
    bridge's flows."""
    installed = installed or {}
    p = SwitchPlan()
    if keys is None:
        flows = [f for f in desired.values() if f.bridge == bridge]
        p.adds, p.mods, p.dels = diff(installed, flows, complete)
    else:
        for k in keys:
            if k[0] != bridge:
                continue
            want, have = desired.get(k), installed.get(k)
            if want is None:
                if have is not None:
                    p.dels.append(have)
            elif have is None or have.cookie != want.cookie:
                p.adds.append(want)
            elif have.actions != want.actions or have.idle_timeout != want.idle_timeout:
                p.mods.append(want)
    have_m = meters or {}
    want_m = {i: x for (b, i), x in desired_meters.items() if b == bridge}
    p.meter_adds = [x for i, x in want_m.items() if i not in have_m]
    p.meter_mods = [x for i, x in want_m.items() if i in have_m and have_m[i] != x]
    p.meter_dels = [x for i, x in have_m.items() if i not in want_m] if complete else []
    return p


def apply_plan(plan: SwitchPlan, installed: dict | None, meters: dict | None) -> tuple[dict, dict]:
    """-> (installed, meters) once the switch confirmed `plan`. `installed` is
    updated in place (O(change): it can hold 10,000 flows); `meters` is
    copied when it changes (the console may be reading it)."""
    inst = installed if installed is not None else {}
    for f in plan.dels:
        inst.pop(f.key, None)
    for f in plan.adds + plan.mods:
        inst[f.key] = f
    if plan.meter_adds or plan.meter_mods or plan.meter_dels:
        meters = dict(meters or {})
        for x in plan.meter_dels:
            meters.pop(x.meter_id, None)
        for x in plan.meter_adds + plan.meter_mods:
            meters[x.meter_id] = x
    elif meters is None:
        meters = {}
    return inst, meters


def affected_nodes(old, new, changes) -> set[str]:
    """The nodes whose flows a batch of changes (controller.events.Change)
    between two Worlds can touch: where the port is (was) plugged and every
    node with a port on its network (br-tun unicast, ARP answers); for a
    security group, where its members are plugged and the nodes whose rules
    name it. Node changes and kinds we do not know touch every node."""
    out: set[str] = set()
    for c in changes:
        if c.kind == "port":
            for w in (old, new):
                p = w.ports.get(c.id)
                if p is not None:
                    if p.node_id:
                        out.add(p.node_id)
                    out |= w.nodes_of_network(p.network_id)
                    # routers deliver into the network wherever it has a local VLAN
                    out |= {n for (n, nid) in w.local_vlans if nid == p.network_id}
                    # ports whose rules name its groups as remote (membership)
                    out |= nodes_watching(w, p.security_groups)
        elif c.kind in ("network", "subnet"):
            for w in (old, new):
                net_id = c.id
                if c.kind == "subnet":
                    sub = w.subnets.get(c.id)
                    if sub is None:
                        continue
                    net_id = sub.network_id
                out |= w.nodes_of_network(net_id)
                out |= {n for (n, nid) in w.local_vlans if nid == net_id}
        elif c.kind == "security_group":
            # a group or one of its rules: its members' nodes and the nodes
            # whose rules name it as remote
            for w in (old, new):
                out |= nodes_of_group(w, c.id) | nodes_watching(w, [c.id])
        else:
            return set(old.nodes) | set(new.nodes)
    return out
