"""Prometheus metrics at /metrics, written by prometheus_client.

Most figures already exist in the parts that own them (the reconciler's
switch states and counters, the DHCP app's counters, guard.handler_errors);
a custom collector (`Collector`) reads them at scrape time, so nothing here
runs on the hot path except the API hook (`instrument`), which counts
requests by method and status and observes their latency.

    registry = metrics.registry(runtime, api_metrics)   # once
    text = metrics.exposition(registry)                 # every scrape
"""
from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, Metric, generate_latest

# The text format prometheus_client writes (the classic one: not the newer
# version its CONTENT_TYPE_LATEST may name).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# --- families and the collector ---------------------------------------------------------

class Family(Metric):
    """A metric family built at scrape time: Family(name, type, help).add(value, suffix, **labels).
    `name` is the exposed name, "_total" included for counters."""

    def __init__(self, name: str, type_: str, help_: str):
        # prometheus_client names a counter family without "_total" and adds it back on output.
        base = name[:-len("_total")] if type_ == "counter" and name.endswith("_total") else name
        super().__init__(base, help_, type_)
        self.exposed = name

    def add(self, value, suffix: str = "", **labels) -> "Family":
        self.add_sample(self.exposed + suffix, {k: str(v) for k, v in labels.items()}, float(value))
        return self


class Collector:
    """prometheus_client's custom collector: `collect(runtime, api_metrics)` at every scrape."""

    def __init__(self, rt, api_metrics=None, query_switches: bool = True):
        self.rt, self.api_metrics, self.query_switches = rt, api_metrics, query_switches

    def collect(self):
        return collect(self.rt, self.api_metrics, self.query_switches)


class _Fixed:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


def registry(rt, api_metrics=None) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Collector(rt, api_metrics))
    return reg


def exposition(reg: CollectorRegistry) -> str:
    return generate_latest(reg).decode()


def render(families: list[Family]) -> str:
    """Families already collected -> the text format."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Fixed(families))
    return exposition(reg)


def _le(bound: float) -> str:
    """A bucket bound as the le label value: 1 for 1.0, as before prometheus_client."""
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


class Histogram:
    """Cumulative buckets, sum and count; thread-safe."""

    def __init__(self, buckets=LATENCY_BUCKETS):
        self.buckets = tuple(buckets)
        self._lock = threading.Lock()
        self.counts: dict[tuple, list[int]] = {}     # labels -> per-bucket counts (+Inf last)
        self.sums: dict[tuple, float] = {}

    def observe(self, value: float, **labels) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            counts = self.counts.setdefault(key, [0] * (len(self.buckets) + 1))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self.sums[key] = self.sums.get(key, 0.0) + value

    def family(self, name: str, help_: str) -> Family:
        fam = Family(name, "histogram", help_)
        with self._lock:
            items = [(k, list(c), self.sums[k]) for k, c in self.counts.items()]
        for key, counts, total in sorted(items):
            labels = dict(key)
            for bound, n in zip(self.buckets, counts):
                fam.add(n, "_bucket", **labels, le=_le(bound))
            fam.add(counts[-1], "_bucket", **labels, le="+Inf")
            fam.add(total, "_sum", **labels)
            fam.add(counts[-1], "_count", **labels)
        return fam


# --- the API hook ---------------------------------------------------------------------

class ApiMetrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}     # (method, status) -> count
        self.latency = Histogram()

    def record(self, method: str, status: int, seconds: float, resource: str = "") -> None:
        """resource: the API collection (networks, ports, ...) or "" for the console's pages."""
        with self._lock:
            self.requests[(method, status)] = self.requests.get((method, status), 0) + 1
        self.latency.observe(seconds, method=method, resource=resource)

    def families(self) -> list[Family]:
        req = Family("quantum_api_requests_total", "counter", "REST API requests by method and status.")
        with self._lock:
            items = sorted(self.requests.items())
        for (method, status), n in items:
            req.add(n, method=method, status=str(status))
        return [req, self.latency.family("quantum_api_request_duration_seconds",
                                         "REST API request latency in seconds, by method and "
                                         "resource (collection; other: unknown paths).")]


def instrument(app) -> ApiMetrics:
    """Count every request of a Flask app and time it (before/after hooks)."""
    from flask import g, request
    am = ApiMetrics()
    app.extensions["quantum_metrics"] = am

    @app.before_request
    def _start_timer():
        g.metrics_t0 = time.perf_counter()

    @app.after_request
    def _count(response):
        t0 = g.pop("metrics_t0", None)
        if t0 is not None:
            am.record(request.method, response.status_code, time.perf_counter() - t0)
        return response

    return am


# --- what the controller knows ------------------------------------------------------------

def collect(rt, api_metrics: ApiMetrics | None = None, query_switches: bool = True) -> list[Family]:
    from controller import channels
    from controller.apps import guard
    fams: list[Family] = []
    rec = find_app(rt, "reconciler")
    if rec is not None:
        fams += reconciler_families(rec, _hostnames(rt), query_switches)
    dispatcher = find_app(rt, "packet_in")
    if dispatcher is not None:
        fams += packet_in_families(dispatcher)
    dhcp = find_app(rt, "dhcp")
    if dhcp is not None:
        fams += dhcp_families(dhcp)
    fams += channel_families(channels.FAILURES)
    ha = find_app(rt, "haroles")
    if ha is not None:
        fams += ha_families(ha)
    errs = Family("quantum_handler_errors_total", "counter",
                  "Exceptions caught in OpenFlow handlers (the controller carried on).")
    for name, n in sorted(dict(guard.handler_errors).items()):
        errs.add(n, handler=name)
    fams.append(errs)
    if api_metrics is not None:
        fams += api_metrics.families()
    from controller.apps import port_timing
    fams.append(port_timing.family())
    fams.append(Family("quantum_uptime_seconds", "gauge", "Seconds since the controller started.")
                .add(time.time() - rt.started_at))
    return fams


def channel_families(log) -> list[Family]:
    """Failed OVSDB connections and switch handshakes (controller/channels.py)."""
    total = Family("quantum_channel_failures_total", "counter",
                   "Failed channel attempts: OVSDB connections to nodes and switch (TLS or "
                   "OpenFlow) handshakes, by channel and reason.")
    for (kind, reason), n in sorted(log.totals_snapshot().items()):
        total.add(n, channel=kind, reason=reason)
    down = Family("quantum_ovsdb_channel_down", "gauge",
                  "1 for each node whose OVSDB the controller cannot reach now (its ports "
                  "cannot be bound), with the last reason.")
    for e in log.entries("ovsdb"):
        if e.failing:
            down.add(1, node=e.node, reason=e.reason)
    return [total, down]


def find_app(rt, word: str):
    """The os-ken app whose name contains `word` (runtime.apps is filled by the launcher)."""
    for name, app in list(rt.apps.items()):
        if word in name.lower() or word in type(app).__module__:
            return app
    return None


def _hostnames(rt) -> dict[str, str]:
    from sqlalchemy import select
    from controller.db import models as m
    try:
        with rt.db.read() as s:
            return dict(s.execute(select(m.Node.id, m.Node.hostname)).all())
    except Exception:
        return {}


def reconciler_families(rec, hostnames: dict, query_switches: bool = True) -> list[Family]:
    switches = rec.switch_list()
    connected = Family("quantum_switches_connected", "gauge", "OpenFlow switches connected.")
    connected.add(len(switches))
    flows = Family("quantum_flows", "gauge",
                   "Flows of ours installed, per switch and table (the reconciler's view).")
    foreign = Family("quantum_foreign_flows", "gauge", "Flows with a cookie that is not ours, per switch.")
    mods = Family("quantum_flow_mods_sent_total", "counter", "flow_mods sent, per switch.")
    errors = Family("quantum_switch_errors_total", "counter", "OpenFlow errors received, per switch.")
    last = Family("quantum_switch_reconcile_last_seconds", "gauge",
                  "Duration of the last reconcile of a switch, in seconds.")
    for sw in sorted(switches, key=lambda s: s.dpid):
        lbl = {"dpid": f"{sw.dpid:016x}", "node": hostnames.get(sw.node_id, sw.node_id or ""),
               "bridge": sw.bridge or ""}
        per_table: dict[int, int] = {}
        for key in list(dict(sw.installed or {})):
            per_table[key[1]] = per_table.get(key[1], 0) + 1
        for table, n in sorted(per_table.items()):
            flows.add(n, **lbl, table=str(table))
        foreign.add(sw.foreign_flows, **lbl)
        mods.add(sw.flow_mods_sent, **lbl)
        errors.add(sw.errors, **lbl)
        last.add(sw.last_reconcile_s, **lbl)
    rounds = Family("quantum_reconcile_duration_seconds", "summary",
                    "Reconcile rounds (compute, diff, send, barrier) and their total duration.")
    rounds.add(getattr(rec, "round_seconds_total", 0.0), "_sum").add(rec.rounds, "_count")
    fams = [connected, flows, foreign, mods,
            Family("quantum_flow_mods_sent_all_total", "counter", "flow_mods sent to all switches.")
            .add(rec.flow_mods_sent),
            errors, rounds, last,
            Family("quantum_reconcile_last_round_seconds", "gauge", "Duration of the last round.")
            .add(rec.last_round_s)]
    if query_switches:
        fams.append(meter_drops(rec, hostnames))
    return fams


def packet_in_families(dispatcher) -> list[Family]:
    pins = Family("quantum_packet_ins_total", "counter", "Packet-ins received, by OpenFlow reason.")
    for reason, n in sorted(dict(dispatcher.packet_ins).items()):
        pins.add(n, reason=reason)
    dropped = Family("quantum_router_packet_ins_dropped_total", "counter",
                     "Router packet-ins (ARP replies, TTL expiry) dropped because their queue was full.")
    return [pins, dropped.add(dispatcher.router_dropped)]


def meter_drops(rec, hostnames: dict) -> Family:
    """Packets dropped by meter bands (the per-port DHCP packet-in rate limit)."""
    from os_ken.ofproto import ofproto_v1_3 as ofp
    fam = Family("quantum_rate_limited_packets_total", "counter",
                 "Packets dropped by OpenFlow meters (packet-in rate limits), per switch and meter.")
    by_dpid = {sw.dpid: sw for sw in rec.switch_list()}
    replies = rec.query(lambda dp: dp.ofproto_parser.OFPMeterStatsRequest(dp, 0, ofp.OFPM_ALL),
                        timeout=2.0)
    for dpid, stats in sorted(replies.items()):
        sw = by_dpid.get(dpid)
        for st in stats or ():
            dropped = sum(b.packet_band_count for b in st.band_stats)
            fam.add(dropped, dpid=f"{dpid:016x}", node=hostnames.get(sw.node_id, "") if sw else "",
                    bridge=(sw.bridge or "") if sw else "", meter=str(st.meter_id))
    return fam


def dhcp_families(app) -> list[Family]:
    """The DHCP app's counters: replies by message type, and the rest
    (dropped, malformed, rate-limited, ...) by name."""
    replies = Family("quantum_dhcp_replies_total", "counter", "DHCP replies sent, by message type.")
    for typ, n in sorted(dict(getattr(app, "replies", {}) or {}).items()):
        replies.add(n, type=str(typ))
    other = Family("quantum_dhcp_events_total", "counter",
                   "DHCP packet-in handler events (requests, drops, rate-limited, ...) by name.")
    for name, n in sorted(dict(getattr(app, "counters", {}) or {}).items()):
        if isinstance(n, (int, float)):
            other.add(n, event=str(name))
    limited = Family("quantum_dhcp_rate_limited_total", "counter",
                     "DHCP packet-ins dropped by the controller's per-port token bucket.")
    limited.add(dict(getattr(app, "counters", {}) or {}).get("rate_limited", 0))
    return [replies, other, limited]


def ha_families(ha) -> list[Family]:
    """Mastership (controller/ha): this controller's roles and their changes."""
    st = ha.status()
    role = Family("quantum_switch_role", "gauge",
                  "1 for the OpenFlow role this controller holds on each connected switch "
                  "(master, slave, or equal before any role request was answered).")
    for sw in st["switches"]:
        role.add(1, dpid=sw["dpid"], role=sw["role"], master=sw["master"] or "")
    return [
        Family("quantum_ha_controller_info", "gauge", "This controller's id in the cluster.")
        .add(1, controller_id=st["controller_id"]),
        Family("quantum_ha_live_controllers", "gauge", "Controllers with a live heartbeat.")
        .add(len(st["controllers"])),
        Family("quantum_nodes_mastered", "gauge", "Nodes whose mastership lease this controller holds.")
        .add(st["nodes_mastered"]),
        Family("quantum_mastership_changes_total", "counter",
               "Node masterships this controller gained or lost.").add(st["mastership_changes"]),
        Family("quantum_role_requests_total", "counter", "OpenFlow role requests sent.")
        .add(st["role_requests"]),
        Family("quantum_role_refusals_total", "counter",
               "Role requests a switch refused (a newer generation id exists).").add(st["stale_refusals"]),
        role,
    ]
