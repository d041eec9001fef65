"""The metadata proxy (controller/proxy) over real sockets on loopback: a
real HTTP server stands in for Nova's metadata API and records what it gets.

The source range is 127.0.0.0/24 here, so a client bound to 127.0.0.5 is
"the port with metadata index 5" exactly as 100.64.0.5 is on a node.
"""
from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import logging
import socket
import threading
import time

import pytest

from controller import config
from controller.db import models as m
from controller.db.session import Database
from controller.proxy import metadata as proxy_mod
from controller.proxy.metadata import MetadataProxy
from controller.proxy.nova import sign
from tests.lab.proc import wait_until

SECRET = "s3cr3t"
INSTANCE_A = "11111111-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
INSTANCE_B = "22222222-bbbb-4bbb-8bbb-bbbbbbbbbbbb"


class FakeNova:
    """Nova's metadata API as far as the proxy can tell: answers
    /latest/meta-data/instance-id with the X-Instance-ID it was sent,
    /status/<n> with status n, /slow after `delay` seconds; records headers."""

    def __init__(self, delay: float = 0.0):
        self.requests: list[dict] = []
        nova = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                nova.requests.append({"method": self.command, "path": self.path,
                                      "headers": dict(self.headers.items())})
                if self.path.startswith("/slow"):
                    time.sleep(delay)
                status, body = 200, (self.headers.get("X-Instance-ID") or "").encode()
                if self.path.startswith("/status/"):
                    status, body = int(self.path.split("?")[0].rsplit("/", 1)[1]), b"nova says no\n"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("X-Nova-Header", "kept")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    try:
                        self.wfile.write(body)
                    except OSError:
                        pass          # the proxy gave up on a slow answer

            do_HEAD = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def db(tmp_path):
    d = Database(f"sqlite:///{tmp_path}/q.db")
    d.upgrade()
    with d.write() as s:
        # Two tenants, the same fixed IP: only the metadata index tells them apart.
        for proj, net_id, port_id, dev, index in (("p-red", "n-red", "port-a", INSTANCE_A, 5),
                                                  ("p-blue", "n-blue", "port-b", INSTANCE_B, 6)):
            s.add(m.Network(id=net_id, project_id=proj, network_type="gre", segmentation_id=index))
            s.add(m.Subnet(id="s-" + net_id, project_id=proj, network_id=net_id, ip_version=4,
                           cidr="10.0.0.0/24"))
            s.flush()
            s.add(m.Port(id=port_id, project_id=proj, network_id=net_id,
                         mac_address="fa:16:3e:00:00:0%d" % index, device_id=dev,
                         device_owner="compute:nova"))
            s.flush()
            s.add(m.IPAllocation(subnet_id="s-" + net_id, ip_address="10.0.0.5", port_id=port_id,
                                 network_id=net_id))
            s.add(m.MetadataAddress(port_id=port_id, address_index=index))
        s.add(m.Port(id="port-nodev", project_id="p-red", network_id="n-red",
                     mac_address="fa:16:3e:00:00:99", device_id=""))
        s.flush()
        s.add(m.MetadataAddress(port_id="port-nodev", address_index=7))
    yield d
    d.dispose()


@pytest.fixture
def nova():
    n = FakeNova(delay=5.0)
    yield n
    n.stop()


def start_proxy(db, nova_url, timeout=2):
    cfg = config.from_dict({"metadata.nova_metadata_url": nova_url,
                            "metadata.metadata_proxy_shared_secret": SECRET,
                            "metadata.timeout": timeout,
                            "metadata.source_range": "127.0.0.0/24"})
    return MetadataProxy(cfg, db, "127.0.0.1", 0).start()


@pytest.fixture
def proxy(db, nova):
    p = start_proxy(db, nova.url)
    yield p
    p.stop()


def raw(proxy, data: bytes, source="127.0.0.5", timeout=20.0) -> bytes:
    """Send raw bytes from `source` and read the whole answer."""
    with socket.socket() as s:
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect(("127.0.0.1", proxy.port))
        s.sendall(data)
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                return b"".join(chunks)
            chunks.append(c)


def get(proxy, path="/latest/meta-data/instance-id", source="127.0.0.5", method="GET",
        headers=()):
    head = f"{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return parse(raw(proxy, head.encode(), source))


def parse(resp: bytes):
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def test_each_port_gets_its_own_instance_even_with_the_same_fixed_ip(proxy, nova):
    status, headers, body = get(proxy, source="127.0.0.5",
                                headers=[("X-Instance-ID", INSTANCE_B)])   # spoofing is ignored
    assert (status, body) == (200, INSTANCE_A.encode())
    assert headers["x-nova-header"] == "kept" and headers["connection"] == "close"
    status, _h, body = get(proxy, source="127.0.0.6")
    assert (status, body) == (200, INSTANCE_B.encode())
    a, b = nova.requests
    assert a["path"] == b["path"] == "/latest/meta-data/instance-id"
    assert a["headers"]["X-Instance-ID"] == INSTANCE_A and a["headers"]["X-Tenant-ID"] == "p-red"
    assert b["headers"]["X-Instance-ID"] == INSTANCE_B and b["headers"]["X-Tenant-ID"] == "p-blue"
    assert a["headers"]["X-Forwarded-For"] == b["headers"]["X-Forwarded-For"] == "10.0.0.5"
    for r in (a, b):
        expected = hmac.new(SECRET.encode(), r["headers"]["X-Instance-ID"].encode(),
                            hashlib.sha256).hexdigest()
        assert hmac.compare_digest(r["headers"]["X-Instance-ID-Signature"], expected)


def test_signature_is_hmac_sha256_of_the_instance_id():
    assert sign("abc", "key") == hmac.new(b"key", b"abc", hashlib.sha256).hexdigest()
    assert sign("abc", "key") != sign("abc", "other key")


def test_novas_status_headers_and_body_go_back_and_head_has_no_body(proxy, nova):
    status, headers, body = get(proxy, "/status/404?x=1")
    assert (status, body, headers["x-nova-header"]) == (404, b"nova says no\n", "kept")
    assert nova.requests[-1]["path"] == "/status/404?x=1"
    status, headers, body = get(proxy, method="HEAD")
    assert status == 200 and body == b"" and nova.requests[-1]["method"] == "HEAD"


@pytest.mark.parametrize("source, why", [("127.0.0.9", "no port has metadata address"),
                                         ("127.0.0.7", "has no device_id")])
def test_unknown_source_is_404_and_logged(proxy, nova, caplog, source, why):
    caplog.set_level(logging.WARNING, logger="controller.proxy")
    status, _h, body = get(proxy, source=source)
    assert status == 404 and b"unknown instance" in body
    assert not nova.requests
    assert any(why in r.getMessage() and source in r.getMessage() for r in caplog.records)


def test_source_outside_the_range_is_404(db, nova, caplog):
    cfg = config.from_dict({"metadata.nova_metadata_url": nova.url,
                            "metadata.source_range": "100.64.0.0/10"})
    p = MetadataProxy(cfg, db, "127.0.0.1", 0).start()
    try:
        caplog.set_level(logging.WARNING, logger="controller.proxy")
        assert get(p, source="127.0.0.5")[0] == 404
        assert any("outside 100.64.0.0/10" in r.getMessage() for r in caplog.records)
    finally:
        p.stop()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "CONNECT"])
def test_only_get_and_head(proxy, nova, method):
    status, headers, _b = get(proxy, method=method)
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert not nova.requests


def test_bodies_are_refused_without_being_read(proxy, nova):
    data = (b"GET / HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 300000)
    assert parse(raw(proxy, data))[0] == 400
    data = b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert parse(raw(proxy, data))[0] == 400
    assert not nova.requests


def test_oversized_requests_are_bounded(proxy, nova):
    assert parse(raw(proxy, b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n"))[0] == 414
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(100))
    assert parse(raw(proxy, b"GET / HTTP/1.1\r\n" + many + b"\r\n"))[0] == 431
    big = b"X-Big: " + b"v" * 20000 + b"\r\n"
    assert parse(raw(proxy, b"GET / HTTP/1.1\r\n" + big + b"\r\n"))[0] == 431
    # A header line without an end never makes the proxy read more than its bound.
    assert parse(raw(proxy, b"GET / HTTP/1.1\r\nX: " + b"v" * 200000))[0] == 431
    for junk in (b"HELLO\r\n\r\n", b"GET http://evil/ HTTP/1.1\r\n\r\n", b"GET / SPDY/3\r\n\r\n"):
        assert parse(raw(proxy, junk))[0] == 400
    assert not nova.requests


def test_nova_down_is_502(db, caplog):
    with socket.socket() as s:            # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    p = start_proxy(db, dead)
    try:
        caplog.set_level(logging.ERROR, logger="controller.proxy")
        status, _h, body = get(p)
        assert status == 502 and b"unavailable" in body
        assert any("unreachable" in r.getMessage() and INSTANCE_A in r.getMessage()
                   for r in caplog.records)
    finally:
        p.stop()


def test_slow_nova_is_504_after_the_timeout(db, nova, caplog):
    p = start_proxy(db, nova.url, timeout=1)
    try:
        caplog.set_level(logging.ERROR, logger="controller.proxy")
        status, _h, _b = get(p, "/slow")          # Nova takes 5 s, the proxy waits 1 s
        assert status == 504
        assert any("no answer" in r.getMessage() for r in caplog.records)
    finally:
        p.stop()


def test_a_silent_client_is_dropped(proxy, monkeypatch):
    monkeypatch.setattr(proxy_mod._Handler, "timeout", 0.3)
    with socket.socket() as s:
        s.settimeout(20)
        s.connect(("127.0.0.1", proxy.port))
        s.sendall(b"GET / HTTP/1.1\r\n")      # ... and nothing more
        assert s.recv(100) == b""              # the proxy hung up on us


def test_more_clients_than_slots_get_503(db, nova):
    cfg = config.from_dict({"metadata.nova_metadata_url": nova.url,
                            "metadata.source_range": "127.0.0.0/24"})
    p = MetadataProxy(cfg, db, "127.0.0.1", 0, max_concurrent=2).start()
    held = []
    try:
        for _ in range(2):                    # two clients that never finish their request
            s = socket.create_connection(("127.0.0.1", p.port), timeout=20)
            s.sendall(b"GET / HTTP/1.1\r\n")
            held.append(s)
        wait_until(lambda: p.slots._value == 0, 10, what="both slots taken")
        assert get(p)[0] == 503
    finally:
        for s in held:
            s.close()
        p.stop()


def test_config_file_options_reach_the_standalone_proxy(tmp_path):
    ini = tmp_path / "q.conf"
    ini.write_text("[metadata]\nproxy_address = 192.0.2.10\nproxy_port = 8775\n"
                   "metadata_proxy_shared_secret = x\nsource_range = 100.64.0.0/16\n")
    cfg = config.load(["--config-file", str(ini), "--metadata-listen-host", "127.0.0.1"])
    assert (cfg.get("metadata.proxy_address"), cfg.get("metadata.proxy_port")) == ("192.0.2.10", 8775)
    assert cfg.get("metadata.listen_host") == "127.0.0.1"
    assert json.dumps(cfg.as_dict())      # plain values
