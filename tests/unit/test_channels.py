"""Channel failures (controller/channels.py), the switch acceptor's TLS
(controller/apps/switch_channel.py) over real loopback sockets with
certificates made by openssl, and the OVSDB failure reasons."""
from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading

import pytest

from controller import channels, config, tls
from controller.apps import ovsdb_monitor, switch_channel
from controller.channels import ChannelLog
from tests.lab.pki import Pki


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_failing_channel_is_logged_once_per_reason_and_reminded(caplog):
    clock = Clock()
    log = ChannelLog(clock)
    caplog.set_level(logging.INFO, logger="controller.channels")
    kw = dict(node="hv1", peer="tcp:192.0.2.1:6640")
    log.failed("ovsdb", "n1", reason="refused", detail="connection refused", **kw)
    clock.now += 2
    log.failed("ovsdb", "n1", reason="refused", detail="connection refused", **kw)
    assert warnings(caplog) == ["OVSDB of node hv1 at tcp:192.0.2.1:6640: connection refused"]
    clock.now += channels.REMIND_SECONDS
    log.failed("ovsdb", "n1", reason="refused", detail="connection refused", **kw)
    assert "still failing: 3 attempts" in warnings(caplog)[-1]
    log.failed("ovsdb", "n1", reason="timeout", detail="timed out connecting", **kw)
    assert warnings(caplog)[-1].endswith("timed out connecting") and len(warnings(caplog)) == 3
    [entry] = log.entries("ovsdb")
    assert (entry.count, entry.reason, entry.failing) == (4, "timeout", True)
    assert log.totals_snapshot() == {("ovsdb", "refused"): 3, ("ovsdb", "timeout"): 1}

    log.succeeded("ovsdb", "n1")
    log.succeeded("ovsdb", "n1")
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["OVSDB of node hv1 at tcp:192.0.2.1:6640: works again after 4 failed attempt(s)"]
    assert not log.entries("ovsdb")[0].failing
    # A new failure after recovery starts a new count and is logged again.
    log.failed("ovsdb", "n1", reason="refused", detail="connection refused", **kw)
    assert log.entries("ovsdb")[0].count == 1 and len(warnings(caplog)) == 4
    log.forget("ovsdb", "n1")
    assert log.entries() == []


def test_the_log_keeps_a_bounded_number_of_channels():
    log = ChannelLog(Clock())
    for i in range(channels.MAX_ENTRIES + 10):
        log.failed("openflow", f"10.0.0.{i} tls", node="", peer=f"10.0.0.{i}", reason="tls", detail="x")
    assert len(log.entries()) == channels.MAX_ENTRIES
    assert log.totals_snapshot() == {("openflow", "tls"): channels.MAX_ENTRIES + 10}


def test_ovsdb_failure_reasons():
    assert ovsdb_monitor.channel_failure("CONNECTING", errno.ECONNREFUSED, None)[0] == "refused"
    assert ovsdb_monitor.channel_failure("CONNECTING", 0, None) == (
        "timeout", "timed out connecting (no answer from that address)")
    assert ovsdb_monitor.channel_failure("CONNECTING", errno.EHOSTUNREACH, None)[0] == "unreachable"
    assert ovsdb_monitor.channel_failure("CONNECTING", errno.EPROTO, "TLS: x") == ("tls", "TLS: x")
    assert ovsdb_monitor.channel_failure("ACTIVE", -1, None) == ("dropped", "connection closed by the node")
    assert ovsdb_monitor.channel_failure("ACTIVE", errno.EPIPE, None)[0] == "dropped"
    assert ovsdb_monitor.channel_failure("IDLE", 0, None)[0] == "timeout"


def test_nodes_are_named_by_an_address_only_they_have():
    rows = [("hv1", "ssl:192.0.2.11:6640", "10.20.0.11"), ("hv2", "tcp:[2001:db8::2]:6640", "10.20.0.12"),
            ("hv3", "tcp:127.0.0.1:1", None), ("hv4", "unix:/run/db.sock", "127.0.0.1")]
    assert switch_channel.nodes_by_address(rows) == {
        "192.0.2.11": "hv1", "10.20.0.11": "hv1", "2001:db8::2": "hv2", "10.20.0.12": "hv2"}


def test_tls_files_go_together_and_must_be_usable(tmp_path):
    assert tls.files_from(config.from_dict()) is None
    with pytest.raises(config.ConfigError, match="all three or none"):
        tls.files_from(config.from_dict({"ssl.private_key": "/k.pem"}))
    files = tls.files_from(config.from_dict({"ssl.private_key": "/k.pem", "ssl.certificate": "/c.pem",
                                             "ssl.ca_cert": "/ca.pem"}))
    with pytest.raises(config.ConfigError, match="cannot use"):
        tls.server_context(files)


def test_the_controller_refuses_to_start_with_unusable_tls_files(tmp_path, capsys):
    from controller import main
    rc = main.main(["--state-dir", str(tmp_path), "--ssl-private-key", str(tmp_path / "none.pem"),
                    "--ssl-certificate", str(tmp_path / "none.pem"), "--ssl-ca-cert", "/nonexistent"])
    assert rc == 2 and "[ssl]: cannot use" in capsys.readouterr().err


# --- TLS over real sockets -----------------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ours, other = Pki(str(d / "ours"), "ours"), Pki(str(d / "other"), "other")
    return {"controller": ours.issue("controller"), "switch": ours.issue("hv1"),
            "rogue": other.issue("hv1")}


def client_context(files, trust=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(trust or files.ca_cert)
    ctx.load_cert_chain(files.certificate, files.private_key)
    return ctx


class Accepting:
    """A listening socket whose connections go through a SwitchAcceptor's
    _open (the part before os-ken's Datapath); results by arrival."""

    def __init__(self, acceptor):
        self.acceptor = acceptor
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.results: list = []
        self.done = threading.Event()
        threading.Thread(target=self._one, daemon=True).start()

    def _one(self):
        sock, addr = self.server.accept()
        try:
            self.results.append(self.acceptor._open(sock, addr))
        finally:
            self.done.set()

    def result(self):
        assert self.done.wait(15)
        return self.results[0]


@pytest.fixture
def failures(monkeypatch):
    log = ChannelLog()
    monkeypatch.setattr(channels, "FAILURES", log)
    return log


def tls_acceptor(certs, timeout=5.0):
    ctx = tls.server_context(tls.TlsFiles(certs["controller"].private_key,
                                          certs["controller"].certificate,
                                          certs["controller"].ca_cert))
    return switch_channel.SwitchAcceptor(ctx, timeout)


def connect_with_another_cas_certificate(certs):
    """A switch whose certificate another CA signed connects -> what the acceptor made of it."""
    acc = Accepting(tls_acceptor(certs))
    client = client_context(certs["rogue"], trust=certs["controller"].ca_cert)
    with socket.create_connection(("127.0.0.1", acc.port)) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with client.wrap_socket(raw) as s:
                s.sendall(b"x")
                s.recv(1)                   # TLS 1.3: the refusal arrives after the handshake
    return acc.result()


def connect_with_plain_tcp(certs):
    """A switch sends an OpenFlow 1.3 HELLO without TLS -> what the acceptor made of it."""
    acc = Accepting(tls_acceptor(certs))
    with socket.create_connection(("127.0.0.1", acc.port)) as raw:
        raw.sendall(bytes.fromhex("0400000800000001"))
        return acc.result()


def test_a_switch_with_a_certificate_of_another_ca_is_refused(certs, failures):
    assert connect_with_another_cas_certificate(certs) is None
    [f] = failures.entries("openflow")
    assert f.reason == "tls" and "the switch's certificate was refused" in f.detail
    assert "unable to get local issuer certificate" in f.detail


def test_plain_tcp_to_the_tls_listener_is_refused(certs, failures):
    assert connect_with_plain_tcp(certs) is None
    [f] = failures.entries("openflow")
    assert f.reason == "tls" and f.detail == "TLS: the switch does not speak TLS (plain TCP?)"


def test_a_switch_that_distrusts_the_controller_is_recorded(certs, failures, tmp_path):
    stranger = Pki(str(tmp_path / "stranger"), "stranger")
    acc = Accepting(tls_acceptor(certs))
    client = client_context(certs["switch"], trust=stranger.ca_cert)
    with socket.create_connection(("127.0.0.1", acc.port)) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            client.wrap_socket(raw)
    assert acc.result() is None
    [f] = failures.entries("openflow")
    assert "refused the controller's certificate" in f.detail


def test_a_port_probe_is_not_a_failure_and_silence_times_out(certs, failures):
    acc = Accepting(tls_acceptor(certs))
    socket.create_connection(("127.0.0.1", acc.port)).close()
    assert acc.result() is None and failures.entries() == []
    acc = Accepting(tls_acceptor(certs, timeout=0.2))
    with socket.create_connection(("127.0.0.1", acc.port)):
        assert acc.result() is None
    [f] = failures.entries("openflow")
    assert f.reason == "timeout" and "sent nothing" in f.detail


def test_tls_connection_serves_two_threads_at_once(certs, failures):
    """os-ken's Datapath receives in one thread and sends in another on the
    same socket: both directions at once, every byte intact."""
    acc = Accepting(tls_acceptor(certs))
    raw = socket.create_connection(("127.0.0.1", acc.port))
    client = client_context(certs["switch"]).wrap_socket(raw)
    client.sendall(b"hello")
    server = acc.result()
    assert isinstance(server, switch_channel.SerializedTLSSocket)
    server.settimeout(5)
    assert server.recv(5) == b"hello"
    chunk, rounds = bytes(range(256)) * 64, 200          # 16 KiB, 3.2 MiB each way

    def client_echo():
        got = 0
        while got < len(chunk) * rounds:
            data = client.recv(65536)
            if not data:
                break
            got += len(data)
            client.sendall(data)

    echo = threading.Thread(target=client_echo, daemon=True)
    echo.start()
    received = bytearray()

    def receive():
        while len(received) < len(chunk) * rounds:
            received.extend(server.recv(65536))

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    for _ in range(rounds):
        server.sendall(chunk)
    reader.join(30)
    echo.join(30)
    assert bytes(received) == chunk * rounds
    server.shutdown(socket.SHUT_WR)
    server.close()
    client.close()
    assert failures.entries() == []


def test_metrics_count_failures_by_channel_and_reason_and_show_nodes_down():
    from controller import metrics
    log = ChannelLog(Clock())
    kw = dict(node="hv1", peer="ssl:192.0.2.1:6640")
    log.failed("ovsdb", "n1", reason="tls", detail="TLS: x", **kw)
    log.failed("ovsdb", "n1", reason="tls", detail="TLS: x", **kw)
    log.failed("ovsdb", "n2", reason="refused", detail="refused", node="hv2", peer="tcp:192.0.2.2:6640")
    log.succeeded("ovsdb", "n2")
    log.failed("openflow", "192.0.2.9 tls", node="", peer="192.0.2.9", reason="tls", detail="TLS: y")
    text = metrics.render(metrics.channel_families(log))
    assert 'quantum_channel_failures_total{channel="ovsdb",reason="tls"} 2' in text
    assert 'quantum_channel_failures_total{channel="ovsdb",reason="refused"} 1' in text
    assert 'quantum_channel_failures_total{channel="openflow",reason="tls"} 1' in text
    assert 'quantum_ovsdb_channel_down{node="hv1",reason="tls"} 1' in text
    assert 'node="hv2"' not in text                  # recovered


def test_two_switches_failing_differently_from_one_address_are_two_rows(certs, failures):
    """Behind one address (a NAT, the lab's relays), a switch with a foreign
    certificate and one speaking plain TCP stay two rows, whatever the order."""
    assert connect_with_plain_tcp(certs) is None
    assert connect_with_another_cas_certificate(certs) is None
    details = [f.detail for f in failures.entries("openflow")]
    assert len(details) == 2
    assert any("does not speak TLS" in d for d in details)
    assert any("certificate was refused" in d for d in details)
