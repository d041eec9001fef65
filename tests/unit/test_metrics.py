"""/metrics through prometheus_client (controller/metrics.py): the families,
the API request hook, the figures read at scrape time."""
from types import SimpleNamespace

from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from controller import metrics
from controller.metrics import Family, Histogram, render


def samples(text: str) -> dict:
    """(sample name, sorted labels) -> value, as a Prometheus server reads the text."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_render_families_with_help_type_and_escaped_labels():
    fams = [Family("q_switches", "gauge", "Switches\nconnected.").add(3),
            Family("q_flows", "gauge", "Flows.").add(12, node='hv"1', table="50")
            .add(0.25, node="a\\b\nc", table="0"),
            Family("q_sent_total", "counter", "Sent.").add(7)]
    text = render(fams)
    assert "# HELP q_switches Switches\\nconnected.\n# TYPE q_switches gauge\n" in text
    assert "# TYPE q_sent_total counter\n" in text
    assert samples(text) == {("q_switches", ()): 3, ("q_flows", (("node", 'hv"1'), ("table", "50"))): 12,
                             ("q_flows", (("node", "a\\b\nc"), ("table", "0"))): 0.25,
                             ("q_sent_total", ()): 7}


def test_histogram_buckets_are_cumulative_with_sum_and_count():
    h = Histogram(buckets=(0.1, 1.0))
    for v in (0.05, 0.5, 0.5, 3.0):
        h.observe(v, method="GET")
    got = samples(render([h.family("lat", "Latency.")]))
    assert got[("lat_bucket", (("le", "0.1"), ("method", "GET")))] == 1
    assert got[("lat_bucket", (("le", "1"), ("method", "GET")))] == 3      # le as before: 1, not 1.0
    assert got[("lat_bucket", (("le", "+Inf"), ("method", "GET")))] == 4
    assert got[("lat_sum", (("method", "GET"),))] == 4.05 and got[("lat_count", (("method", "GET"),))] == 4


def test_api_hook_counts_requests_by_status_and_times_them():
    app = Flask("t")
    app.add_url_rule("/ok", "ok", lambda: "fine")
    am = metrics.instrument(app)
    c = app.test_client()
    c.get("/ok"), c.get("/ok"), c.get("/missing"), c.post("/ok")
    assert am.requests == {("GET", 200): 2, ("GET", 404): 1, ("POST", 405): 1}
    got = samples(render(am.families()))
    assert got[("quantum_api_requests_total", (("method", "GET"), ("status", "200")))] == 2
    # Flask-served paths (console, /metrics) have no API resource: an empty label.
    assert got[("quantum_api_request_duration_seconds_count", (("method", "GET"), ("resource", "")))] == 3


def test_api_latency_label_is_the_collection_or_other():
    from controller.api.app import resource_label
    of = resource_label(["networks", "ports", "quotas"])
    assert of("/v2.0/networks") == "networks" and of("/v2.0/networks.json") == "networks"
    assert of("/v2.0/ports/abc/tags") == "ports" and of("/v2.0/quotas/p1") == "quotas"
    assert of("/v2.0/%0aforged") == "other" and of("/v2.0/") == "other"


def test_reconciler_and_dhcp_figures():
    sw = SimpleNamespace(dpid=0xab, node_id="n1", bridge="br-int", foreign_flows=1, flow_mods_sent=7,
                         errors=0, last_reconcile_s=0.5,
                         installed={("br-int", 0, 100, ()): 1, ("br-int", 0, 0, ()): 1,
                                    ("br-int", 50, 1, ()): 1})
    rec = SimpleNamespace(switch_list=lambda: [sw], rounds=4, round_seconds_total=2.0,
                          flow_mods_sent=7, last_round_s=0.1)
    got = samples(render(metrics.reconciler_families(rec, {"n1": "hv1"}, query_switches=False)
                         + metrics.packet_in_families(SimpleNamespace(packet_ins={"action": 9},
                                                                      router_dropped=2))))
    lbl = (("bridge", "br-int"), ("dpid", "00000000000000ab"), ("node", "hv1"))
    assert got[("quantum_switches_connected", ())] == 1
    assert got[("quantum_flows", lbl + (("table", "0"),))] == 2
    assert got[("quantum_flows", lbl + (("table", "50"),))] == 1
    assert got[("quantum_flow_mods_sent_total", lbl)] == 7
    assert got[("quantum_reconcile_duration_seconds_sum", ())] == 2
    assert got[("quantum_reconcile_duration_seconds_count", ())] == 4
    assert got[("quantum_packet_ins_total", (("reason", "action"),))] == 9
    assert got[("quantum_router_packet_ins_dropped_total", ())] == 2
    dhcp = SimpleNamespace(replies={"OFFER": 2, "ACK": 3}, counters={"rate_limited": 5, "note": "x"})
    text = render(metrics.dhcp_families(dhcp))
    got = samples(text)
    assert got[("quantum_dhcp_replies_total", (("type", "ACK"),))] == 3
    assert got[("quantum_dhcp_events_total", (("event", "rate_limited"),))] == 5 and "note" not in text
    assert got[("quantum_dhcp_rate_limited_total", ())] == 5
