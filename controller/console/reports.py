"""What the console's pages and the operators' terminal commands show, as
plain data: the flows serving a port, network or router on each switch (read
from the switches or compiled), drift, and a packet trace with the owner of
every step. No Flask here: controller/console/views.py renders these as
pages, controller/console/ops_api.py as JSON for `quantum-controller flows |
trace | drift` (controller/ops_cli.py).

`rec` is the reconciler app (None when the OpenFlow apps do not run), `inv` an
inventory.Inventory.
"""
from __future__ import annotations

from controller.console import serves, switches, traceview
from controller.flows import cookies
from controller.flows.compiler import compile_node
from controller.flows.flow import Flow, format_actions, format_match
from controller.flows.trace import Outcome, table_name

SOURCES = ("installed", "desired")


# --- one flow, as shown ----------------------------------------------------------------

def actions_text(f: Flow) -> str:
    """ovs-ofctl-like actions, with the goto table's name."""
    plain = format_actions(tuple(a for a in f.actions if a[0] != "goto"))
    gotos = [f"goto_table:{a[1]}({table_name(f.bridge, a[1])})" for a in f.actions if a[0] == "goto"]
    if not gotos:
        return plain
    return ",".join(([] if plain == "drop" else [plain]) + gotos)


def packet_text(pkt: dict) -> str:
    """A traced packet's fields, numbers in hex where ovs-ofctl prints them so."""
    hexed = ("eth_type", "vlan_vid", "metadata", "tunnel_id")
    return " ".join(f"{k}={v:#x}" if k in hexed and isinstance(v, int) else f"{k}={v}"
                    for k, v in pkt.items())


def flow_view(row, inv, flow: Flow | None = None) -> dict:
    """row: a switches.FlowRow (counters) or None with `flow` given."""
    f = flow or row.flow
    return {"fid": switches.flow_id(f), "table": f.table, "table_name": table_name(f.bridge, f.table),
            "priority": f.priority, "match": format_match(f.match) or "(any)",
            "actions": actions_text(f), "owner": inv.owners.resolve(f.cookie),
            "packets": row.packets if row else None, "bytes": row.bytes if row else None,
            "duration": f"{row.duration_s:.0f}s" if row else None, "bridge": f.bridge}


def switch_label(inv, dpid: int) -> tuple[dict | None, str]:
    node, bridge = inv.node_by_dpid(dpid)
    name = f"{node['hostname']} {bridge}" if node else f"unregistered {dpid:016x}"
    return node, name


# --- which flows serve an object ---------------------------------------------------------

def port_marks(inv, p, node_id, bridge):
    where = inv.world.ports.get(p["id"])
    return serves.port_marks(p, inv.owners, node_id, bridge, where.node_id if where else None)


def network_marks(inv, net, node_id, bridge):
    port_cookies = set()
    for p in inv.ports.values():
        if p["network_id"] == net["id"]:
            port_cookies |= inv.owners.cookies_of("port", p["id"])
    return serves.network_marks(net, port_cookies, inv.world, node_id, bridge)


def serving(inv, kind: str, oid: str):
    """keep(flow, node_id, bridge) -> whether the flow serves that port,
    network or router (marks computed once per switch)."""
    marks: dict = {}
    if kind == "port":
        p = inv.ports[oid]

        def keep(f, node_id, bridge):
            if (node_id, bridge) not in marks:
                marks[(node_id, bridge)] = port_marks(inv, p, node_id, bridge)
            return serves.serves_port(f, marks[(node_id, bridge)])
    elif kind == "network":
        net = inv.networks[oid]

        def keep(f, node_id, bridge):
            if (node_id, bridge) not in marks:
                marks[(node_id, bridge)] = network_marks(inv, net, node_id, bridge)
            return serves.serves_network(f, marks[(node_id, bridge)])
    elif kind == "router":
        own = inv.owners.cookies_of("router", oid)
        iface_marks = [serves.port_marks(p, inv.owners, None, None, None)
                       for p in inv.ports.values() if p["device_id"] == oid]

        def keep(f, node_id, bridge):
            return f.cookie in own or any(serves.serves_port(f, m) for m in iface_marks)
    elif kind == "security_group":
        g = inv.world.security_groups[oid]
        own = inv.owners.cookies_of("security_group", oid) | {
            cookies.cookie("security_group_rule", r.id) for r in g.rules}

        def keep(f, node_id, bridge):
            return f.cookie in own
    else:
        raise ValueError(f"no flows are selected by {kind!r}")
    return keep


def find(inv, kind: str, ref: str) -> dict | None:
    """A port, network or router by id, id prefix or unique name."""
    objs = {"port": inv.ports, "network": inv.networks, "router": inv.routers}[kind]
    if ref in objs:
        return objs[ref]
    hits = [o for o in objs.values() if o.get("name") == ref] or \
        [o for oid, o in objs.items() if len(ref) >= 4 and oid.startswith(ref)]
    return hits[0] if len(hits) == 1 else None


def flows_serving(inv, rec, keep, source: str = "installed") -> list[dict]:
    """[{name, dpid, node, bridge, flows | error}] for every switch with flows
    that keep(flow, node_id, bridge): read from the switches, or compiled
    (`source="desired"`, every registered node, connected or not)."""
    out = []
    if source == "desired":
        for node_id in sorted(inv.world.nodes):
            node = inv.nodes.get(node_id)
            if node is None:
                continue
            by_bridge: dict[str, list[Flow]] = {}
            for f in compile_node(inv.world, inv.world.nodes[node_id]).flows:
                if keep(f, node_id, f.bridge):
                    by_bridge.setdefault(f.bridge, []).append(f)
            for bridge, flows in sorted(by_bridge.items()):
                out.append({"name": f"{node['hostname']} {bridge}", "node": node["hostname"],
                            "bridge": bridge, "dpid": int(node["bridges"].get(bridge, 0)),
                            "flows": [flow_view(None, inv, f) for f in sorted(flows)]})
        return out
    if rec is None:
        return []
    for dpid, rows in sorted(switches.dump_flows(rec).items()):
        node, name = switch_label(inv, dpid)
        _n, bridge = inv.node_by_dpid(dpid)
        entry = {"name": name, "dpid": dpid, "node": node["hostname"] if node else None, "bridge": bridge}
        if rows is None:
            out.append(dict(entry, flows=[], error="no answer"))
            continue
        mine = [flow_view(r, inv) for r in rows if keep(r.flow, node["id"] if node else None, bridge)]
        if mine:
            out.append(dict(entry, flows=mine))
    return out


# --- drift ---------------------------------------------------------------------------------

def drift_report(inv, rec) -> list[dict]:
    """Per connected switch: unmapped (no node owns it), no answer, or the
    Drift with its flows as shown."""
    sws = rec.switch_list()
    desired = switches.desired_by_switch(inv, sws)
    dumps = switches.dump_flows(rec, set(desired))
    report = []
    for sw in sorted(sws, key=lambda s: s.dpid):
        _node, name = switch_label(inv, sw.dpid)
        if sw.dpid not in desired:
            report.append({"name": name, "dpid": sw.dpid, "unmapped": True})
            continue
        rows = dumps.get(sw.dpid)
        if rows is None:
            report.append({"name": name, "dpid": sw.dpid, "error": "no answer"})
            continue
        d = switches.drift(desired[sw.dpid], [r.flow for r in rows])
        report.append({"name": name, "dpid": sw.dpid, "drift": d,
                       "missing": [flow_view(None, inv, f) for f in d.missing],
                       "extra": [flow_view(None, inv, f) for f in d.extra],
                       "differing": [(flow_view(None, inv, a), flow_view(None, inv, b))
                                     for a, b in d.differing]})
    report.sort(key=lambda r: r["name"])
    return report


def drift_clean(report: list[dict]) -> bool:
    return all(r.get("drift") and r["drift"].clean for r in report if not r.get("unmapped"))


# --- trace ---------------------------------------------------------------------------------

def installed_flows(inv, rec):
    """node_id -> the flows its switches have now (all of them, ours or not)."""
    def flows_of(node_id):
        dpids = {int(d) for d in inv.nodes.get(node_id, {}).get("bridges", {}).values()}
        if rec is None or not dpids:
            return []
        return [r.flow for rows in switches.dump_flows(rec, dpids).values() for r in rows or ()]
    return flows_of


def port_at(inv):
    """(node_id, ofport) -> the Quantum port plugged there."""
    at = {(p.node_id, p.ofport): p.id for p in inv.world.ports.values() if p.node_id}

    def lookup(node_id, ofport):
        pid = at.get((node_id, ofport))
        return inv.ports.get(pid) if pid else None
    return lookup


def trace(inv, rec, req: traceview.TraceRequest, source: str = "desired") -> traceview.TraceResult:
    flows_of = installed_flows(inv, rec) if source == "installed" else None
    return traceview.run(inv.world, req, flows_of)


def trace_events(inv, result: traceview.TraceResult) -> list[dict]:
    """The walk as data: each table lookup with the flow and its owner, and
    where each copy of the packet ends."""
    hostname = lambda nid: inv.nodes.get(nid, {}).get("hostname", nid)  # noqa: E731
    at = port_at(inv)
    out = []
    for e in result.trace.events if result.trace else ():
        if isinstance(e, Outcome):
            vm = at(e.node_id, e.port) if e.kind == "delivered" else None
            out.append({"type": "outcome", "depth": e.depth, "kind": e.kind, "node": hostname(e.node_id),
                        "bridge": e.bridge, "port": e.port if isinstance(e.port, (int, str)) else None,
                        "to": inv.port_label(vm) if vm else None, "to_id": vm["id"] if vm else None,
                        "reason": e.reason})
            continue
        owner = inv.owners.resolve(e.flow.cookie) if e.flow else None
        out.append({"type": "step", "depth": e.depth, "node": hostname(e.node_id), "bridge": e.bridge,
                    "table": e.table, "table_name": e.table_name,
                    "priority": e.flow.priority if e.flow else None,
                    "match": (format_match(e.flow.match) or "(any)") if e.flow else None,
                    "actions": actions_text(e.flow) if e.flow else None,
                    "owner": owner_json(owner) if owner else None, "note": e.note})
    return out


def owner_json(owner) -> dict:
    return {"label": owner.label, "kind": owner.kind, "id": owner.id, "object": owner.target}
