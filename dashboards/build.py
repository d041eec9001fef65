"""Writes dashboards/quantum-controller.json, the Grafana dashboard over the
controller's /metrics (docs/CONSOLE.md). Edit the panels here and run

    python3 dashboards/build.py

tests/e2e/test_dashboard.py checks that the JSON is this script's output and
that every metric and label it queries exists in a real controller's /metrics.
"""
from __future__ import annotations

import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quantum-controller.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "[$__rate_interval]"


def sel(extra: str = "") -> str:
    return "{" + 'instance=~"$instance"' + ("," + extra if extra else "") + "}"


Q = sel()
DROPPED = sel('event=~"dropped.*"')
API = sel('resource!=""')

# (title, [(expr, legend)], unit, kind, (x, y, w, h), description)
PANELS = [
    ("Switches connected", [(f"sum(quantum_switches_connected{Q})", "switches")], "short", "stat",
     (0, 0, 6, 4), "OpenFlow switches connected to the controller(s)."),
    ("Handler errors (1h)", [(f"sum(increase(quantum_handler_errors_total{Q}[1h]))", "errors")], "short",
     "stat", (6, 0, 6, 4), "Exceptions caught in OpenFlow handlers (the controller carried on)."),
    ("Uptime", [(f"max(quantum_uptime_seconds{Q})", "uptime")], "s", "stat", (12, 0, 6, 4), ""),
    ("Flows installed", [(f"sum(quantum_flows{Q})", "flows")], "short", "stat", (18, 0, 6, 4),
     "Flows of ours on every switch (the reconciler's view)."),
    ("flow_mods sent per second, by switch",
     [(f"sum by (node, bridge) (rate(quantum_flow_mods_sent_total{Q}{RATE}))", "{{node}} {{bridge}}"),
      (f"sum(rate(quantum_flow_mods_sent_all_total{Q}{RATE}))", "all switches")],
     "ops", "timeseries", (0, 4, 12, 8), "An unchanged world sends none: a steady rate means churn."),
    ("Reconcile rounds per second and mean round time",
     [(f"sum(rate(quantum_reconcile_duration_seconds_count{Q}{RATE}))", "rounds/s"),
      (f"sum(rate(quantum_reconcile_duration_seconds_sum{Q}{RATE})) / "
       f"sum(rate(quantum_reconcile_duration_seconds_count{Q}{RATE}))", "mean round (s)")],
     "short", "timeseries", (12, 4, 12, 8), "Rounds of the reconciler: load, compile, push, confirm."),
    ("Port-up latency (VIF bound -> ACTIVE)",
     [(f"histogram_quantile({q}, sum by (le) (rate(quantum_port_up_seconds_bucket{Q}{RATE})))",
       f"p{round(q * 100)}") for q in (0.5, 0.9, 0.99)],
     "s", "timeseries", (0, 12, 12, 8),
     "From the OVSDB monitor binding a plugged VIF to the port ACTIVE (flows confirmed, status written)."),
    ("OpenFlow errors and foreign flows, by switch",
     [(f"sum by (node, bridge) (rate(quantum_switch_errors_total{Q}{RATE}))", "errors {{node}} {{bridge}}"),
      (f"sum by (node, bridge) (quantum_foreign_flows{Q})", "foreign {{node}} {{bridge}}")],
     "short", "timeseries", (12, 12, 12, 8), ""),
    ("DHCP answers per second, by type",
     [(f"sum by (type) (rate(quantum_dhcp_replies_total{Q}{RATE}))", "{{type}}")],
     "ops", "timeseries", (0, 20, 12, 8), "OFFER, ACK and NAK sent by the controller."),
    ("DHCP drops per second",
     [(f"sum by (event) (rate(quantum_dhcp_events_total{DROPPED}{RATE}))", "{{event}}"),
      (f"sum(rate(quantum_dhcp_rate_limited_total{Q}{RATE}))", "controller rate limit"),
      (f"sum by (node) (rate(quantum_rate_limited_packets_total{Q}{RATE}))", "switch meters {{node}}")],
     "pps", "timeseries", (12, 20, 12, 8),
     "Malformed or unanswerable requests, the controller's per-port token bucket, the switches' "
     "packet-in meters."),
    ("API latency p99 by resource",
     [(f"histogram_quantile(0.99, sum by (le, resource) "
       f"(rate(quantum_api_request_duration_seconds_bucket{API}{RATE})))", "{{resource}}")],
     "s", "timeseries", (0, 28, 12, 8), "Quantum v2.0 API requests, by collection (networks, ports, ...)."),
    ("API requests per second, by method and status",
     [(f"sum by (method, status) (rate(quantum_api_requests_total{Q}{RATE}))", "{{method}} {{status}}")],
     "reqps", "timeseries", (12, 28, 12, 8), ""),
    ("Packet-ins per second, by reason",
     [(f"sum by (reason) (rate(quantum_packet_ins_total{Q}{RATE}))", "{{reason}}")],
     "pps", "timeseries", (0, 36, 24, 8), "DHCP and router packet-ins reaching the controller."),
]


def panel(pid, title, targets, unit, kind, pos, desc) -> dict:
    x, y, w, h = pos
    options = ({"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries"
               else {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"})
    return {"id": pid, "type": kind, "title": title, "description": desc, "datasource": DS,
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            # A counter family with no series yet (no handler error so far) reads as 0.
            "fieldConfig": {"defaults": {"unit": unit, "noValue": "0"}, "overrides": []},
            "options": options,
            "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": lf}
                        for i, (e, lf) in enumerate(targets)]}


def dashboard() -> dict:
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "title": "quantum-controller", "uid": "quantum-controller", "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "tags": ["quantum", "openflow"],
        "description": "quantum-controller's /metrics (docs/CONSOLE.md): switches, flow_mods, reconcile "
                       "rounds, port-up latency, DHCP answers and drops, API latency by resource.",
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0},
            {"name": "instance", "label": "controller", "type": "query", "datasource": DS,
             "query": {"query": "label_values(quantum_uptime_seconds, instance)", "refId": "instances"},
             "definition": "label_values(quantum_uptime_seconds, instance)",
             "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "refresh": 2, "hide": 0}]},
        "annotations": {"list": []},
        "panels": [panel(i + 1, *p) for i, p in enumerate(PANELS)],
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    with open(OUT, "w") as f:
        f.write(render())
    print(f"wrote {OUT}")
