"""The console's pages (a Flask blueprint mounted at /console).

Every page reads the database once (inventory.load) and, where it shows
switches, asks the reconciler (the only component holding OpenFlow
connections) for flows and statistics. See controller/console/__init__.py.
"""
from __future__ import annotations

import time
from urllib.parse import urlencode

from flask import (Blueprint, abort, current_app, jsonify, redirect, render_template, request,
                   url_for)

from controller import channels, metrics
from controller.console import auth, inventory, reports, serves, switches, topology, traceview
from controller.console.reports import actions_text, flow_view, packet_text
from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.flow import Flow, format_match
from controller.flows.trace import table_name

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")
LOGIN_PARAMS = ("user_id", "project_id", "roles")


# --- access ----------------------------------------------------------------------------

@bp.before_request
def _admin_only():
    if request.endpoint in ("console.login", "console.logout", "console.static"):
        return None
    if "user_id" in request.args and _rt().cfg.get("DEFAULT.auth_strategy") == "noauth":
        auth.login(*(request.args.get(k, "") for k in LOGIN_PARAMS))
        rest = {k: v for k, v in request.args.items() if k not in LOGIN_PARAMS}
        return redirect(request.path + ("?" + urlencode(rest) if rest else ""))
    ctx = auth.identity_from_request(_policy())
    scripted = request.path.startswith("/console/api/")     # the terminal commands: JSON, no login page
    if ctx is None:
        if scripted:
            return jsonify({"error": "authentication required: an admin's X-Auth-Token (OS_TOKEN) "
                                     "or, with noauth, X-User-Id and X-Roles"}), 401
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    if not ctx.is_admin:
        if scripted:
            return jsonify({"error": f"for administrators; user {ctx.user_id} has roles "
                                     f"{', '.join(ctx.roles) or 'none'}"}), 403
        return render_template("message.html", title="Forbidden",
                               message=f"The console is for administrators; user {ctx.user_id} "
                                       f"has roles {', '.join(ctx.roles) or 'none'}."), 403
    request.console_user = ctx
    return None


@bp.route("/login", methods=["GET", "POST"])
def login():
    noauth = _rt().cfg.get("DEFAULT.auth_strategy") == "noauth"
    nxt = request.values.get("next") or url_for("console.nodes")
    if not nxt.startswith("/console"):
        nxt = url_for("console.nodes")
    error = None
    if request.method == "POST":
        if not noauth:
            error = auth.keystone_login(_policy(), request.form.get("username", ""),
                                        request.form.get("password", ""),
                                        request.form.get("project", ""))
            if error is None:
                return redirect(nxt)
        elif auth.login(*(request.form.get(k, "") for k in LOGIN_PARAMS)):
            return redirect(nxt)
        else:
            error = "A user id is required."
    return render_template("login.html", next=nxt, error=error, noauth=noauth), 400 if error else 200


@bp.route("/logout")
def logout():
    auth.logout()
    return redirect(url_for("console.login"))


# --- helpers -------------------------------------------------------------------------------

def _rt():
    return current_app.extensions["quantum_console_runtime"]


def _policy():
    return current_app.extensions["quantum_api"].policy


def _reconciler():
    return metrics.find_app(_rt(), "reconciler")


def _inv():
    return inventory.load(_rt().db)


def since(ts: float | None) -> str:
    if not ts:
        return ""
    ago = int(time.time() - ts)
    span = f"{ago}s" if ago < 120 else f"{ago // 60}m" if ago < 7200 else f"{ago // 3600}h"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ts))} ({span} ago)"


def address(addr) -> str:
    """os-ken's peer address ('127.0.0.1', 36858) -> 127.0.0.1:36858"""
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr or "")


def _switch_label(inv, sw) -> tuple[dict | None, str]:
    return reports.switch_label(inv, sw.dpid)


@bp.context_processor
def _helpers():
    return {"page_url": lambda page: f"{request.script_root}/console/{page}", "address": address}


@bp.app_template_filter("dpid")
def _dpid_filter(v) -> str:
    return f"{int(v):016x}"


# --- pages ------------------------------------------------------------------------------------

@bp.route("/")
@bp.route("/nodes")
def nodes():
    inv, rec = _inv(), _reconciler()
    sws = {sw.dpid: sw for sw in rec.switch_list()} if rec else {}
    roles = switches.roles(rec) if rec and sws else {}
    ha_app = metrics.find_app(_rt(), "haroles")
    ha = ha_app.status() if ha_app else None
    rows = []
    ovsdb_failures = {e.key: dict(vars(e), since=since(e.first_at), last=since(e.last_at))
                      for e in channels.FAILURES.entries("ovsdb")}
    for n in inv.nodes.values():
        bridges = []
        for br, dpid in sorted(n["bridges"].items()):
            sw = sws.pop(int(dpid), None)
            bridges.append({"name": br, "dpid": int(dpid), "connected": sw is not None,
                            "since": since(sw.connected_since) if sw else "",
                            "address": address(sw.address) if sw else "", "role": roles.get(int(dpid), ""),
                            "flows": len(sw.installed or {}) if sw else 0})
        int_dp = next((s.dp for s in (rec.switch_list() if rec else [])
                       if s.dpid == int(n["bridges"].get("br-int", -1))), None)
        ovs_names = {no: p.name.decode() if isinstance(p.name, bytes) else p.name
                     for no, p in (getattr(int_dp, "ports", None) or {}).items()}
        ports = [dict(p, network=inv.networks.get(p["network_id"], {}).get("name", ""),
                      ovs_name=ovs_names.get(p["ofport"], "")) for p in inv.ports_on(n["hostname"])]
        rows.append({"node": n, "bridges": bridges, "ports": ports,
                     "mastership": (ha or {}).get("nodes", {}).get(n["id"]),
                     "ovsdb_failure": ovsdb_failures.get(n["id"])})
    strays = [{"dpid": d, "since": since(sw.connected_since), "address": address(sw.address),
               "role": roles.get(d, "")} for d, sw in sorted(sws.items())]
    refused = [dict(vars(e), since=since(e.first_at), last=since(e.last_at))
               for e in channels.FAILURES.entries("openflow")]
    return render_template("nodes.html", rows=rows, strays=strays, running=rec is not None,
                           refused_switches=refused, ha=ha)


@bp.route("/node/<node_id>")
def node(node_id):
    return redirect(url_for("console.nodes") + f"#node-{node_id}")


@bp.route("/switch/<dpid>")
def switch(dpid):
    dpid_i = _parse_dpid(dpid)
    inv, rec = _inv(), _reconciler()
    if rec is None:
        abort(503)
    sw = next((s for s in rec.switch_list() if s.dpid == dpid_i), None)
    node, bridge = inv.node_by_dpid(dpid_i)
    if sw is None:
        return render_template("message.html", title=f"Switch {dpid_i:016x}",
                               message="This switch is not connected."), 404
    rows = switches.dump_flows(rec, {dpid_i}).get(dpid_i)
    tstats = switches.table_stats(rec, dpid_i) or {}
    if rows is None:
        return render_template("message.html", title=f"Switch {dpid_i:016x}",
                               message="The switch did not answer the flow dump in time."), 504
    filt = {k: request.args.get(k, "").strip() for k in ("table", "owner", "network", "port", "addr")}
    node_id = node["id"] if node else None
    marks = {"network": reports.network_marks(inv, inv.networks[filt["network"]], node_id, bridge)
             if filt["network"] in inv.networks else None,
             "port": reports.port_marks(inv, inv.ports[filt["port"]], node_id, bridge)
             if filt["port"] in inv.ports else None}
    shown = [r for r in rows if _keep(r.flow, filt, inv, marks)]
    tables = sorted({r.flow.table for r in rows} | {tid for tid, s in tstats.items() if s["active"]})
    table_rows = [{"id": tid, "name": table_name(bridge or "", tid),
                   "flows": sum(1 for r in rows if r.flow.table == tid),
                   **tstats.get(tid, {"active": "", "lookup": "", "matched": ""})} for tid in tables]
    node_networks = [inv.networks[n.id] for n in inv.world.networks_on(node["id"])] if node else []
    return render_template("switch.html", dpid=dpid_i, node=node, bridge=bridge, sw=sw,
                           since=since(sw.connected_since), tables=table_rows,
                           flows=[flow_view(r, inv) for r in shown], total=len(rows), filt=filt,
                           networks=node_networks or list(inv.networks.values()),
                           ports=sorted(inv.ports.values(), key=inv.port_label), inv=inv)


@bp.route("/switch/<dpid>/counters.json")
def switch_counters(dpid):
    dpid_i = _parse_dpid(dpid)
    rec = _reconciler()
    rows = switches.dump_flows(rec, {dpid_i}).get(dpid_i) if rec else None
    if rows is None:
        return jsonify({"error": "no answer"}), 504
    return jsonify({"flows": {r.fid: [r.packets, r.bytes, f"{r.duration_s:.0f}s"] for r in rows},
                    "tables": switches.table_stats(rec, dpid_i) or {}})


def _parse_dpid(dpid: str) -> int:
    try:
        return int(dpid, 16)
    except ValueError:
        abort(404)


def _keep(f: Flow, filt: dict, inv, marks: dict) -> bool:
    if filt["table"] and str(f.table) != filt["table"]:
        return False
    if filt["owner"]:
        o, want = inv.owners.resolve(f.cookie), filt["owner"].lower()
        if want not in (o.kind, (o.id or "")[:len(want)]) and want not in o.label.lower():
            return False
    if filt["addr"] and not serves.mentions(f, filt["addr"]):
        return False
    if marks["network"] and not serves.serves_network(f, marks["network"]):
        return False
    if marks["port"] and not serves.serves_port(f, marks["port"]):
        return False
    return True


# --- resource pages ---------------------------------------------------------------------------

def _flows_serving(inv, keep) -> list[dict]:
    """[{switch label, dpid, flows}] for every switch with flows that keep(flow, node_id, bridge)."""
    return reports.flows_serving(inv, _reconciler(), keep)


@bp.route("/network/<net_id>")
def network(net_id):
    inv = _inv()
    net = inv.networks.get(net_id) or abort(404)
    keep = reports.serving(inv, "network", net_id)
    ports = [p for p in inv.ports.values() if p["network_id"] == net_id]
    subnets = [s for s in inv.world.subnets.values() if s.network_id == net_id]
    vlans = {inv.nodes[n]["hostname"]: v for (n, nid), v in inv.world.local_vlans.items()
             if nid == net_id and n in inv.nodes}
    return render_template("resource.html", kind="network", obj=net, title=net["name"] or net_id,
                           ports=sorted(ports, key=inv.port_label), subnets=subnets, vlans=vlans,
                           switches=_flows_serving(inv, keep), inv=inv)


@bp.route("/port/<port_id>")
def port(port_id):
    inv = _inv()
    p = inv.ports.get(port_id) or abort(404)
    keep = reports.serving(inv, "port", port_id)
    return render_template("resource.html", kind="port", obj=p, title=p["name"] or port_id,
                           network=inv.networks.get(p["network_id"]), switches=_flows_serving(inv, keep),
                           inv=inv)


@bp.route("/router/<router_id>")
def router(router_id):
    inv = _inv()
    r = inv.routers.get(router_id) or abort(404)
    ifaces = [p for p in inv.ports.values() if p["device_id"] == router_id]
    keep = reports.serving(inv, "router", router_id)
    return render_template("resource.html", kind="router", obj=r, title=r["name"] or router_id,
                           ports=ifaces, switches=_flows_serving(inv, keep), inv=inv)


@bp.route("/security_group/<sg_id>")
def security_group(sg_id):
    """The group's rules, its member ports and the flows its rules put on the switches."""
    inv = _inv()
    g = inv.world.security_groups.get(sg_id) or abort(404)
    members = [inv.ports[p.id] for p in inv.world.ports.values() if sg_id in p.security_groups
               and p.id in inv.ports]
    rules = [inv.owners.resolve(cookies.cookie("security_group_rule", r.id)).name for r in g.rules]
    obj = {"id": g.id, "name": g.name, "project_id": g.project_id}
    return render_template("resource.html", kind="security group", obj=obj, title=g.name or sg_id,
                           rules=rules, ports=sorted(members, key=inv.port_label),
                           switches=_flows_serving(inv, reports.serving(inv, "security_group", sg_id)),
                           inv=inv)


@bp.route("/security_group_rule/<rule_id>")
def security_group_rule(rule_id):
    """A rule's flows are shown on its group's page."""
    inv = _inv()
    for g in inv.world.security_groups.values():
        if any(r.id == rule_id for r in g.rules):
            return redirect(url_for("console.security_group", sg_id=g.id))
    abort(404)


# --- drift, trace, topology, DHCP -------------------------------------------------------------

@bp.route("/drift")
def drift():
    inv, rec = _inv(), _reconciler()
    if rec is None:
        abort(503)
    report = reports.drift_report(inv, rec)
    return render_template("drift.html", report=report, clean=reports.drift_clean(report))


@bp.route("/trace")
def trace():
    inv = _inv()
    bound = sorted((p for p in inv.ports.values() if inv.world.ports.get(p["id"])
                    and inv.world.ports[p["id"]].node_id), key=inv.port_label)
    form = {"port": request.args.get("port", ""), "dst": request.args.get("dst", ""),
            "protocol": request.args.get("protocol", "icmp"), "dst_port": request.args.get("dst_port", ""),
            "flows": request.args.get("flows", "desired")}
    result = None
    if form["port"] and form["dst"]:
        dport = int(form["dst_port"]) if form["dst_port"].isdigit() else None
        result = reports.trace(inv, _reconciler(), traceview.TraceRequest(
            form["port"], form["dst"], form["protocol"], dport), form["flows"])
    return render_template("trace.html", form=form, ports=bound, result=result, inv=inv,
                           hostname=lambda nid: inv.nodes.get(nid, {}).get("hostname", nid),
                           port_at=reports.port_at(inv), actions_text=actions_text, packet_text=packet_text,
                           format_match=format_match, addresses=sorted(
                               {ip for p in inv.ports.values() for ip in p["ips"]}))


@bp.route("/topology")
def topology_page():
    inv, rec = _inv(), _reconciler()
    connected = {sw.dpid for sw in rec.switch_list()} if rec else set()
    return render_template("topology.html", picture=topology.svg(inv, connected))


@bp.route("/dhcp")
def dhcp():
    inv = _inv()
    app = metrics.find_app(_rt(), "dhcp")
    leases = getattr(app, "recent_leases", None) if app else None
    leases = leases() if callable(leases) else leases
    rows = [x if isinstance(x, dict) else dict(vars(x)) for x in list(leases or [])]
    cols = [c for c in ("time", "type", "mac", "ip", "port_id", "network_id", "hostname", "lease")
            if any(c in r for r in rows)]
    cols += sorted({k for r in rows for k in r} - set(cols))
    counters = {**dict(getattr(app, "replies", {}) or {}), **dict(getattr(app, "counters", {}) or {})} \
        if app else {}
    return render_template("dhcp.html", running=app is not None, rows=rows[::-1], cols=cols,
                           counters=counters, inv=inv, since=since)


__all__ = ["bp", "t"]
