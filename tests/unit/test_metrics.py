"""Prometheus text format and the API request hook (controller/metrics.py)."""
from types import SimpleNamespace

from flask import Flask

from controller import metrics
from controller.metrics import Family, Histogram, render


def test_render_families_with_help_type_and_escaped_labels():
    fams = [Family("q_switches", "gauge", "Switches\nconnected.").add(3),
            Family("q_flows", "gauge", "Flows.").add(12, node='hv"1', table="50")
            .add(0.25, node="a\\b\nc", table="0")]
    assert render(fams) == (
        "# HELP q_switches Switches\\nconnected.\n"
        "# TYPE q_switches gauge\n"
        "q_switches 3\n"
        "# HELP q_flows Flows.\n"
        "# TYPE q_flows gauge\n"
        'q_flows{node="hv\\"1",table="50"} 12\n'
        'q_flows{node="a\\\\b\\nc",table="0"} 0.25\n')


def test_histogram_buckets_are_cumulative_with_sum_and_count():
    h = Histogram(buckets=(0.1, 1.0))
    for v in (0.05, 0.5, 0.5, 3.0):
        h.observe(v, method="GET")
    text = render([h.family("lat", "Latency.")])
    assert 'lat_bucket{method="GET",le="0.1"} 1\n' in text
    assert 'lat_bucket{method="GET",le="1"} 3\n' in text
    assert 'lat_bucket{method="GET",le="+Inf"} 4\n' in text
    assert 'lat_sum{method="GET"} 4.05\n' in text and 'lat_count{method="GET"} 4\n' in text


def test_api_hook_counts_requests_by_status_and_times_them():
    app = Flask("t")
    app.add_url_rule("/ok", "ok", lambda: "fine")
    am = metrics.instrument(app)
    c = app.test_client()
    c.get("/ok"), c.get("/ok"), c.get("/missing"), c.post("/ok")
    assert am.requests == {("GET", 200): 2, ("GET", 404): 1, ("POST", 405): 1}
    text = render(am.families())
    assert 'quantum_api_requests_total{method="GET",status="200"} 2' in text
    assert 'quantum_api_request_duration_seconds_count{method="GET"} 3' in text


def test_reconciler_and_dhcp_figures():
    sw = SimpleNamespace(dpid=0xab, node_id="n1", bridge="br-int", foreign_flows=1, flow_mods_sent=7,
                         errors=0, last_reconcile_s=0.5,
                         installed={("br-int", 0, 100, ()): 1, ("br-int", 0, 0, ()): 1,
                                    ("br-int", 50, 1, ()): 1})
    rec = SimpleNamespace(switch_list=lambda: [sw], rounds=4, round_seconds_total=2.0,
                          flow_mods_sent=7, last_round_s=0.1)
    text = render(metrics.reconciler_families(rec, {"n1": "hv1"}, query_switches=False)
                  + metrics.packet_in_families(SimpleNamespace(packet_ins={"action": 9}, router_dropped=2)))
    assert "quantum_switches_connected 1\n" in text
    assert 'quantum_flows{dpid="00000000000000ab",node="hv1",bridge="br-int",table="0"} 2' in text
    assert 'quantum_flows{dpid="00000000000000ab",node="hv1",bridge="br-int",table="50"} 1' in text
    assert "quantum_reconcile_duration_seconds_sum 2\nquantum_reconcile_duration_seconds_count 4" in text
    assert 'quantum_packet_ins_total{reason="action"} 9' in text
    assert "quantum_router_packet_ins_dropped_total 2\n" in text
    dhcp = SimpleNamespace(replies={"OFFER": 2, "ACK": 3}, counters={"rate_limited": 5, "note": "x"})
    text = render(metrics.dhcp_families(dhcp))
    assert 'quantum_dhcp_replies_total{type="ACK"} 3' in text
    assert 'quantum_dhcp_events_total{event="rate_limited"} 5' in text and "note" not in text
    assert "quantum_dhcp_rate_limited_total 5\n" in text
