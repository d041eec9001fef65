"""A switch that fails its OpenFlow handshake is logged, shown on the
console's nodes page and counted in /metrics (a real controller process,
raw sockets as the switch); a port probe is none of these."""
import re
import socket
import struct
import time
import urllib.request

OFP10_HELLO = struct.pack("!BBHI", 1, 0, 8, 1)     # OpenFlow 1.0 only: no common version


def text(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def failures(c) -> float:
    m = re.search(r'^quantum_channel_failures_total\{channel="openflow",reason="openflow"\} (\S+)$',
                  text(c.url + "/metrics"), re.M)
    return float(m.group(1)) if m else 0


def test_a_failed_openflow_handshake_is_logged_shown_and_counted(controller):
    socket.create_connection(("127.0.0.1", controller.ofp_port)).close()      # a probe
    with socket.create_connection(("127.0.0.1", controller.ofp_port), timeout=10) as s:
        s.sendall(OFP10_HELLO)
        while s.recv(4096):                     # os-ken answers, then closes
            pass
    deadline = time.time() + 10
    while failures(controller) < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert failures(controller) == 1           # the probe did not count
    assert re.search(r"WARNING .*OpenFlow switch of unknown node at 127\.0\.0\.1: closed before "
                     r"the OpenFlow handshake completed", controller.log_text())
    page = text(controller.url + "/console/nodes", {"X-User-Id": "ops", "X-Roles": "admin"})
    assert "Switches refused at the handshake" in page and "closed before the OpenFlow" in page


def test_a_tls_switch_at_a_plain_controller_is_told_apart(controller):
    """A ClientHello (an ssl: target) where the controller has no [ssl]."""
    with socket.create_connection(("127.0.0.1", controller.ofp_port), timeout=10) as s:
        s.sendall(bytes.fromhex("160301002e") + bytes(46))
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
    deadline = time.time() + 10
    while "speaks TLS" not in controller.log_text() and time.time() < deadline:
        time.sleep(0.05)
    assert "the switch speaks TLS (an ssl: target) but the controller has no [ssl] files" in \
        controller.log_text()
