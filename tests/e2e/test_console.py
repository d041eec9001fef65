"""The web console in a real headless Chromium (Debian's chromium and
chromedriver, driven by Selenium; nothing downloaded), against a real
controller process, and on the real-OVS lab with VMs:

- the console is admin-only: no identity -> login page, a member -> 403,
  the noauth login form -> in;
- the Nodes page shows every switch connected, and the VM ports;
- a VM port's flows on its switch carry the right owner (linking to the port);
- a trace from one VM to the other's address ends at the destination port;
- the Drift page notices a flow deleted behind the controller's back with
  `ovs-ofctl del-flows --strict`, and a trace through the flows the switches
  really have shows where the packet now dies;
- the DHCP page lists a lease the controller just gave;
- /metrics counts the switches, flows, DHCP replies and packet-ins.

Screenshots are kept in artifacts/console/ (gitignored).
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_reconciler import Api
from tests.lab.fixtures import lab_factory  # noqa: F401
from tests.lab.proc import wait_until

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"

needs_browser = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                                   reason="needs Debian's chromium and chromium-driver")


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1500,1100", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By
    return "\n".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))


def click_and_wait(driver, element) -> None:
    """Click what submits a form or follows a link, and wait for the next page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 60).until(lambda _d: is_stale(old))


def is_stale(element) -> bool:
    """The element's page is gone. Checked mid-navigation, chromedriver can
    answer "Node with given id does not belong to the document" instead of a
    stale-element error (seen once in a suite run); both mean the same."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    try:
        element.is_enabled()
        return False
    except StaleElementReferenceException:
        return True
    except WebDriverException as e:
        if "does not belong to the document" in str(e):
            return True
        raise


def http_status(url: str, headers: dict) -> int:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    try:
        with urllib.request.build_opener(NoRedirect).open(urllib.request.Request(url, headers=headers)) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# --- access -----------------------------------------------------------------------------

@needs_browser
def test_console_is_admin_only_and_a_browser_logs_in_with_the_noauth_form(controller, browser):
    from selenium.webdriver.common.by import By
    url = controller.url + "/console/nodes"
    assert http_status(url, {}) == 302                                   # to the login page
    assert http_status(url, {"X-User-Id": "u", "X-Roles": "member"}) == 403
    assert http_status(url, {"X-User-Id": "u", "X-Roles": "admin"}) == 200

    browser.get(url)
    assert "/console/login" in browser.current_url
    browser.find_element(By.ID, "user_id").send_keys("carol")
    roles = browser.find_element(By.ID, "roles")
    roles.clear()
    roles.send_keys("member")
    click_and_wait(browser, browser.find_element(By.ID, "login"))
    assert "Forbidden" in text(browser, "h1")                          # a member is not let in
    browser.get(controller.url + "/console/logout")
    browser.find_element(By.ID, "user_id").send_keys("alice")          # roles default to admin
    click_and_wait(browser, browser.find_element(By.ID, "login"))
    assert browser.current_url.endswith("/console/nodes")
    assert "Nodes and switches" in text(browser, "h1") and "alice" in text(browser, "header .user")


def test_every_page_renders_for_objects_without_switches(controller):
    """Network, port (unbound) and router pages, trace of an unbound port, and
    the other pages, with no switch connected (plain HTTP, admin headers)."""
    api = Api(controller.url)
    net = api.network("solo")
    sub = api.subnet(net, "10.60.0.0/24")
    port = api.port(net, name="lonely")
    router = api.post("/routers", {"router": {"name": "r1"}})["router"]
    api.put(f"/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    admin = {"X-User-Id": "ops", "X-Roles": "admin"}

    def page(path):
        req = urllib.request.Request(controller.url + "/console" + path, headers=admin)
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
            return r.read().decode()
    assert "solo" in page(f"/network/{net['id']}") and "10.60.0.1" in page(f"/router/{router['id']}")
    assert "lonely" in page(f"/port/{port['id']}") and "not bound" in page(f"/port/{port['id']}")
    assert "not plugged" in page(f"/trace?port={port['id']}&dst=10.60.0.1")
    # The port's security group: its rules and members (and a rule's page is its group's).
    sg = api.get(f"/ports/{port['id']}")["port"]["security_groups"][0]
    text = page(f"/security_group/{sg}")
    assert "ingress IPv4 any from group default" in text and "lonely" in text, text
    rule = api.get(f"/security-groups/{sg}")["security_group"]["security_group_rules"][0]["id"]
    assert "ingress IPv4 any from group default" in page(f"/security_group_rule/{rule}")
    for path in ("/", "/drift", "/topology", "/dhcp", "/trace"):
        assert "quantum-controller" in page(path)


# --- on the lab -------------------------------------------------------------------------------

def del_flow_strict(hv, bridge: str, line: str) -> None:
    """ovs-ofctl del-flows --strict for the flow printed as `line` by dump-flows."""
    spec = re.sub(r"\s+", "", line.split(" actions=")[0])
    spec = ",".join(p for p in spec.split(",") if p.split("=")[0] not in (
        "cookie", "duration", "n_packets", "n_bytes", "idle_age", "hard_age", "reset_counts"))
    hv.ofctl("del-flows", bridge, "--strict", spec)


@pytest.mark.lab
@needs_browser
def test_pages_show_switches_port_flows_trace_and_drift(controller_factory, lab_factory, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    c = controller_factory()
    lab = lab_factory(2, c, tunnel_type="gre")
    hv1, hv2 = lab.hvs
    api = Api(c.url)
    net = api.network("web", **{"provider:network_type": "gre", "provider:segmentation_id": 4242})
    api.subnet(net, "10.50.0.0/24")
    pa, pb = api.port(net, name="vm-a", device_id="vm-a"), api.port(net, name="vm-b", device_id="vm-b")
    a, b = lab.add_vm(hv1, pa), lab.add_vm(hv2, pb)
    a_ip, b_ip = pa["fixed_ips"][0]["ip_address"], pb["fixed_ips"][0]["ip_address"]
    a.set_ip(a_ip + "/24", mtu=net["mtu"])
    b.set_ip(b_ip + "/24", mtu=net["mtu"])
    for p in (pa, pb):
        wait_until(lambda p=p: api.get(f"/ports/{p['id']}")["port"]["status"] == "ACTIVE", 60,
                   what="port ACTIVE")
    wait_until(lambda: a.ping(b_ip, count=1, timeout=1), 30, what="a reaches b")
    console = c.url + "/console"

    # Nodes: both hypervisors, every bridge connected, the VM ports with MAC and IP.
    browser.get(console + "/?user_id=admin&roles=admin")
    nodes = text(browser, "main")
    assert hv1.hostname in nodes and hv2.hostname in nodes
    switch_rows = browser.find_elements(By.CSS_SELECTOR, "tr.switch")
    assert len(switch_rows) >= 4 and all("up" in r.get_attribute("class") for r in switch_rows)
    assert "not connected" not in nodes
    for p, ip in ((pa, a_ip), (pb, b_ip)):
        assert p["mac_address"] in nodes and ip in nodes and "vm-" in nodes
    screenshot(browser, "nodes")

    # Flow tables of hv1's br-int, filtered to VM a's port: every flow is a's, linked to its page.
    hv1_section = next(sec for sec in browser.find_elements(By.CSS_SELECTOR, "section.node")
                       if sec.find_element(By.TAG_NAME, "h2").text.startswith(hv1.hostname + " "))
    br_int = next(r.get_attribute("data-dpid") for r in hv1_section.find_elements(By.CSS_SELECTOR, "tr.switch")
                  if r.find_element(By.TAG_NAME, "td").text == "br-int")
    browser.get(f"{console}/switch/{br_int}?port={pa['id']}")
    stats = text(browser, "#table-stats")
    assert "CLASSIFY" in stats and "L2_LOOKUP" in stats, browser.page_source[:300] + c.log_tail(40)
    owners = browser.find_elements(By.CSS_SELECTOR, "#flows td.owner a")
    assert owners, "no flow of port a shown"
    port_links = [o for o in owners if o.get_attribute("href").endswith(f"/console/port/{pa['id']}")]
    assert port_links and all(o.text.startswith("port") for o in port_links)
    flows = text(browser, "#flows")
    assert f"eth_dst={pa['mac_address']}" in flows and f"in_port={a.ofport()}" in flows
    # live refresh: the counters script runs and stamps the page
    wait_until(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-refreshed"), 30,
               what="live counters refresh")
    screenshot(browser, "switch-flows")

    # The port's own page lists the flows serving it on both hypervisors (br-tun of hv2 sends to it).
    click_and_wait(browser, port_links[0])
    sections = text(browser, "section.switch-flows h3")
    assert f"{hv1.hostname} br-int" in sections and f"{hv2.hostname} br-tun" in sections
    # ...and the network's page, its flows on every br-int and br-tun (the tunnel key 4242 = 0x1092).
    browser.get(f"{console}/network/{net['id']}")
    sections = text(browser, "section.switch-flows h3")
    for hv in (hv1, hv2):
        assert f"{hv.hostname} br-int" in sections and f"{hv.hostname} br-tun" in sections
    assert "tunnel_id=0x1092" in text(browser, "section.switch-flows")

    # Trace from a to b's address: br-int -> br-tun -> hv2 br-tun -> br-int -> b's port.
    browser.get(console + "/trace")
    Select(browser.find_element(By.ID, "trace-port")).select_by_value(pa["id"])
    browser.find_element(By.ID, "trace-dst").send_keys(b_ip)
    Select(browser.find_element(By.ID, "trace-protocol")).select_by_visible_text("tcp")
    click_and_wait(browser, browser.find_element(By.ID, "trace-go"))
    ends = browser.find_elements(By.CSS_SELECTOR, "#outcomes li.outcome")
    assert [e.get_attribute("class").split()[-1] for e in ends] == ["delivered"]
    assert hv2.hostname in ends[0].text and f"port {b.ofport()}" in ends[0].text and b_ip in ends[0].text
    steps = text(browser, "#trace-steps")
    assert "TO_TUNNEL" in steps and "FROM_TUNNEL" in steps and "no flow matched" not in steps
    screenshot(browser, "trace")

    # Drift: none; then a flow deleted behind the controller's back shows up as missing.
    browser.get(console + "/drift")
    assert "No drift" in text(browser, "#drift-summary")
    line = next(ln for ln in hv1.dump_flows("br-int").splitlines()
                if "table=50" in ln and f"dl_dst={pa['mac_address']}" in ln)
    del_flow_strict(hv1, "br-int", line)
    assert f"dl_dst={pa['mac_address']}" not in hv1.dump_flows("br-int")
    browser.get(console + "/drift")
    assert "differ" in text(browser, "#drift-summary")
    section = browser.find_element(By.CSS_SELECTOR, f"section.drift[data-dpid='{br_int}']")
    assert "1 missing" in section.text
    missing = section.find_element(By.CSS_SELECTOR, "div.missing").text
    assert f"eth_dst={pa['mac_address']}" in missing and "L2_LOOKUP" in missing and "port vm-a" in missing
    screenshot(browser, "drift")

    # Why can't b reach a now? Through the desired flows it would; through the
    # flows the switches have, it dies on hv1 (unknown MAC -> back to the tunnel).
    def trace_b_to_a(flows):
        browser.get(f"{console}/trace?port={pb['id']}&dst={a_ip}&protocol=icmp&flows={flows}")
        return browser.find_elements(By.CSS_SELECTOR, "#outcomes li.outcome")
    ends = trace_b_to_a("desired")
    assert [e.get_attribute("class").split()[-1] for e in ends] == ["delivered"]
    ends = trace_b_to_a("installed")
    assert [e.get_attribute("class").split()[-1] for e in ends] == ["dropped"]
    assert hv1.hostname in ends[0].text and "ingress port" in ends[0].text
    screenshot(browser, "trace-installed")

    # Topology and DHCP pages render; the picture has both nodes and the VMs.
    browser.get(console + "/topology")
    svg = text(browser, "svg.topology")
    assert hv1.hostname in svg and hv2.hostname in svg and a_ip in svg and b_ip in svg
    screenshot(browser, "topology")
    # DHCP: a lease the controller just gave shows up with its port.
    lease = b.dhcp()
    assert lease and lease.get("ip") == b_ip
    browser.get(console + "/dhcp")
    leases = text(browser, "table.leases")
    assert pb["mac_address"] in leases and b_ip in leases and "vm-b" in leases
    screenshot(browser, "dhcp")

    # Metrics: switches, flows per table, flow_mods, API requests.
    with urllib.request.urlopen(c.url + "/metrics", timeout=30) as r:
        body = r.read().decode()
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for fam in text_string_to_metric_families(body) for s in fam.samples}
    assert got[("quantum_switches_connected", ())] == len(switch_rows)
    assert ("quantum_flows", (("bridge", "br-int"), ("dpid", br_int), ("node", hv1.hostname),
                              ("table", "50"))) in got
    assert ("quantum_api_requests_total", (("method", "POST"), ("status", "201"))) in got
    assert got[("quantum_flow_mods_sent_all_total", ())] > 0
    assert got[("quantum_dhcp_replies_total", (("type", "ack"),))] >= 1
    assert got[("quantum_packet_ins_total", (("reason", "action"),))] >= 1
