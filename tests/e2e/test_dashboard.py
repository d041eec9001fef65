"""The Grafana dashboard (dashboards/quantum-controller.json) queries only
what a real controller's /metrics has: every metric of every panel, and
every label it groups by or selects on, after a lab hypervisor connected, a
VM port went ACTIVE, the VM got a DHCP lease and the API was used. The JSON
is what dashboards/build.py writes."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_reconciler import Api
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.proc import wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(REPO, "dashboards", "quantum-controller.json")
METRIC = re.compile(r"\b(quantum_[a-z0-9_]+)(\{[^}]*\})?")
BY = re.compile(r"\bby \(([^)]*)\)")
# Prometheus adds instance (and job) when it scrapes; le belongs to every bucket.
SCRAPE_LABELS = {"instance", "job"}


def build_module():
    spec = importlib.util.spec_from_file_location("dashboard_build", os.path.join(REPO, "dashboards", "build.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def expressions() -> list[str]:
    with open(DASHBOARD) as f:
        dash = json.load(f)
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_the_json_is_what_build_py_writes_and_covers_the_issue_s_panels():
    with open(DASHBOARD) as f:
        assert f.read() == build_module().render(), "run python3 dashboards/build.py"
    text = " ".join(expressions())
    for metric in ("quantum_switches_connected", "quantum_flow_mods_sent_total",
                   "quantum_reconcile_duration_seconds_count", "quantum_port_up_seconds_bucket",
                   "quantum_dhcp_replies_total", "quantum_dhcp_events_total",
                   "quantum_api_request_duration_seconds_bucket"):
        assert metric in text


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count", ""), "gauge": ("",)}


def scrape(url: str) -> dict[str, set[str]]:
    """sample name -> the label names its samples carry. A family declared
    without samples yet (no handler error so far) gives its sample names with
    no labels."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        body = r.read().decode()
    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(body):
        for suffix in SUFFIXES.get(fam.type, ("",)):
            out.setdefault(fam.name + suffix, set())
        for s in fam.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


@pytest.mark.lab
def test_every_metric_and_label_the_dashboard_queries_is_served(controller_factory, lab_factory):
    c = controller_factory()
    lab = lab_factory(1, c, tunnel_type="gre")
    api = Api(c.url)
    net = api.network("dash")
    api.subnet(net, "10.60.0.0/24")
    port = api.port(net, name="vm", device_id="vm", device_owner="compute:nova")
    vm = lab.add_vm(lab.hvs[0], port)
    wait_until(lambda: api.get(f"/ports/{port['id']}")["port"]["status"] == "ACTIVE", 60, what="ACTIVE")
    assert wait_until(lambda: vm.dhcp(), 30, what="DHCP lease")
    api.get("/networks")
    samples = wait_until(lambda: "quantum_port_up_seconds_count" in (s := scrape(c.url)) and s, 30,
                         what=f"port-up latency observed\n{c.log_tail(80)}")
    assert any(set(v) >= {"method", "resource"} for k, v in samples.items()
               if k == "quantum_api_request_duration_seconds_bucket")
    missing = []
    for expr in expressions():
        used = [(m.group(1), m.group(2) or "") for m in METRIC.finditer(expr)]
        names = [n for n, _ in used]
        for name, selector in used:
            if name not in samples:
                missing.append(f"{name} (in {expr})")
                continue
            for label in re.findall(r"(\w+)\s*[=!~]", selector):
                if label not in SCRAPE_LABELS and label not in samples[name]:
                    missing.append(f"label {label} of {name} (in {expr})")
        for group in BY.findall(expr):
            for label in (x.strip() for x in group.split(",")):
                if label not in SCRAPE_LABELS and not any(label in samples.get(n, ()) for n in names):
                    missing.append(f"label {label} grouped in {expr}")
    assert not missing, "\n".join(missing)
