"""JSON for the operators' terminal commands (controller/ops_cli.py), on the
console's blueprint, so the same access rule holds (admins only; scripts send
the API's identity headers):

    GET /console/api/flows?kind=port|network|router&id=<id or name>&source=installed|desired
    GET /console/api/trace?port=<id or name>&dst=<ip>&protocol=icmp|tcp|udp|arp&dst_port=N&source=desired|installed
    GET /console/api/drift

The data comes from controller/console/reports.py, as the console's pages.
"""
from __future__ import annotations

from flask import jsonify, request

from controller.console import reports, traceview
from controller.console.views import _inv, _reconciler, bp


def _flow_json(v: dict) -> dict:
    return {k: (reports.owner_json(val) if k == "owner" else val) for k, val in v.items()}


def _error(status: int, message: str):
    return jsonify({"error": message}), status


@bp.route("/api/flows")
def api_flows():
    kind, ref = request.args.get("kind", ""), request.args.get("id", "")
    source = request.args.get("source", "installed")
    if kind not in ("port", "network", "router") or source not in reports.SOURCES:
        return _error(400, "kind must be port, network or router; source installed or desired")
    inv = _inv()
    obj = reports.find(inv, kind, ref)
    if obj is None:
        return _error(404, f"no {kind} {ref!r} (or the name is not unique)")
    rec = _reconciler()
    if source == "installed" and rec is None:
        return _error(503, "the OpenFlow apps are not running in this process")
    rows = reports.flows_serving(inv, rec, reports.serving(inv, kind, obj["id"]), source)
    return jsonify({"kind": kind, "id": obj["id"], "name": obj.get("name") or "", "source": source,
                    "switches": [dict(r, flows=[_flow_json(f) for f in r["flows"]]) for r in rows]})


@bp.route("/api/trace")
def api_trace():
    source = request.args.get("source", "desired")
    if source not in reports.SOURCES:
        return _error(400, "source must be installed or desired")
    inv = _inv()
    port = reports.find(inv, "port", request.args.get("port", ""))
    if port is None:
        return _error(404, f"no port {request.args.get('port', '')!r} (or the name is not unique)")
    dst_port = request.args.get("dst_port", "")
    req = traceview.TraceRequest(port["id"], request.args.get("dst", ""),
                                 request.args.get("protocol", "icmp"),
                                 int(dst_port) if dst_port.isdigit() else None)
    result = reports.trace(inv, _reconciler(), req, source)
    if result.error:
        return _error(400, result.error)
    return jsonify({"port": port["id"], "source": source, "packet": reports.packet_text(result.packet),
                    "notes": result.notes, "events": reports.trace_events(inv, result)})


@bp.route("/api/drift")
def api_drift():
    rec = _reconciler()
    if rec is None:
        return _error(503, "the OpenFlow apps are not running in this process")
    inv = _inv()
    report = reports.drift_report(inv, rec)
    out = []
    for r in report:
        entry = {k: r[k] for k in ("name", "dpid") if k in r}
        if r.get("unmapped"):
            entry["unmapped"] = True
        elif r.get("error"):
            entry["error"] = r["error"]
        else:
            entry.update(missing=[_flow_json(f) for f in r["missing"]],
                         extra=[_flow_json(f) for f in r["extra"]],
                         differing=[[_flow_json(a), _flow_json(b)] for a, b in r["differing"]],
                         foreign=r["drift"].foreign)
        out.append(entry)
    return jsonify({"clean": reports.drift_clean(report), "switches": out})
