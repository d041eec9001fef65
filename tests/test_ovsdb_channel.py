"""A node whose registered OVSDB address never answers (a firewall that
drops, a listener on an address the controller cannot reach): the attempt
times out, and the log, the console's nodes page and /metrics say so
(a real controller process; the address is a loopback listener whose accept
queue is full, so the kernel drops further connection attempts unanswered)."""
import re
import socket
import time
import urllib.request

from tests.e2e.test_reconciler import Api


class NoAnswer:
    """127.0.0.1:<port> where a connect gets no answer: listen(0), queue filled."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(0)
        self.port = self.server.getsockname()[1]
        self.fill = socket.create_connection(("127.0.0.1", self.port), timeout=2)

    def close(self):
        self.fill.close()
        self.server.close()


def text(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def test_an_ovsdb_address_that_never_answers_is_reported_as_timed_out(controller):
    hole = NoAnswer()
    try:
        Api(controller.url).post("/nodes", {"node": {
            "hostname": "hv-silent", "role": "compute", "tunnel_ip": "127.0.0.5", "tunnel_type": "gre",
            "ovsdb": f"tcp:127.0.0.1:{hole.port}", "bridge_mappings": {}, "bridges": {"br-int": 77}}})
        want = re.compile(r'^quantum_ovsdb_channel_down\{node="hv-silent",reason="timeout"\} 1(\.0)?$', re.M)
        deadline = time.time() + 30
        while not want.search(text(controller.url + "/metrics")) and time.time() < deadline:
            time.sleep(0.1)
        assert want.search(text(controller.url + "/metrics"))
        assert re.search(r'^quantum_channel_failures_total\{channel="ovsdb",reason="timeout"\} [1-9]',
                         text(controller.url + "/metrics"), re.M)
        assert re.search(rf"WARNING .*OVSDB of node hv-silent at tcp:127\.0\.0\.1:{hole.port}: "
                         r"timed out connecting", controller.log_text())
        page = text(controller.url + "/console/nodes", {"X-User-Id": "ops", "X-Roles": "admin"})
        section = page.split("<h2>hv-silent ")[1].split("</section>")[0]
        assert "unreachable: timed out connecting" in section
    finally:
        hole.close()
