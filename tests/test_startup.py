"""The one-command start: a real process, embedded SQLite by default,
PostgreSQL by URL, clean exit on SIGTERM and SIGINT."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, json.loads(r.read())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_starts_on_sqlite_and_stops_cleanly(controller_factory, sig):
    c = controller_factory()
    status, body = get(c.url + "/")
    assert status == 200
    assert body["versions"][0]["id"] == "v2.0"
    assert body["versions"][0]["links"][0]["href"] == c.url + "/v2.0/"
    assert os.path.exists(os.path.join(c.state_dir, "quantum.db"))
    assert c.stop(sig) == 0
    log = c.log_text()
    assert "shutting down" in log and "stopped" in log
    assert "Traceback" not in log


def test_accepts_and_logs_an_openflow_switch(controller):
    """A raw OpenFlow 1.3 HELLO + FEATURES exchange is accepted and logged."""
    import struct
    import time
    s = socket.create_connection(("127.0.0.1", controller.ofp_port), timeout=5)
    s.sendall(struct.pack("!BBHI", 4, 0, 8, 1))           # OFPT_HELLO
    deadline = time.time() + 5
    buf = b""
    dpid = 0x00000000000000ab
    while time.time() < deadline:
        buf += s.recv(4096)
        while len(buf) >= 8:
            ver, typ, length, xid = struct.unpack("!BBHI", buf[:8])
            msg, buf = buf[:length], buf[length:]
            if typ == 5:   # FEATURES_REQUEST -> FEATURES_REPLY
                s.sendall(struct.pack("!BBHIQIBB2xII", 4, 6, 32, xid, dpid, 256, 254, 0, 0, 0))
            elif typ == 2:  # ECHO_REQUEST
                s.sendall(struct.pack("!BBHI", 4, 3, 8, xid) + msg[8:])
        if "dpid=00000000000000ab" in controller.log_text():
            break
    s.close()
    assert "switch connected: dpid=00000000000000ab" in controller.log_text()


def test_openflow_listener_queues_a_burst_of_connects(controller_factory):
    """The listen backlog is ours (os-ken's is 50), as the kernel reports it,
    and 200 switches connecting in the same instant all get a HELLO."""
    c = controller_factory(args=["--listen-backlog", "300"])
    out = subprocess.run(["ss", "-ltnH", f"sport = :{c.ofp_port}"], capture_output=True, text=True).stdout
    assert out.split()[2] == str(min(300, int(open("/proc/sys/net/core/somaxconn").read())))
    socks = [socket.socket() for _ in range(200)]
    try:
        for s in socks:
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", c.ofp_port))
        for s in socks:
            s.settimeout(10)
            assert s.recv(8)[1:2] == b"\x00"        # OFPT_HELLO
    finally:
        for s in socks:
            s.close()


@pytest.mark.postgres
def test_starts_on_postgresql(controller_factory, postgres):
    c = controller_factory(db_url=postgres.new_database())
    status, _ = get(c.url + "/")
    assert status == 200
    assert c.stop() == 0


def test_help_documents_every_option():
    out = subprocess.run([sys.executable, "-m", "controller.main", "--help"],
                         capture_output=True, text=True, check=True).stdout
    from controller.config import OPTS, _flag
    for o in OPTS:
        assert _flag(o) in out


def test_bad_config_file_is_a_clear_error(tmp_path):
    p = tmp_path / "q.conf"
    p.write_text("[DEFAULT]\nbind_port = notaport\n")
    r = subprocess.run([sys.executable, "-m", "controller.main", "--config-file", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "bind_port" in r.stderr and "Traceback" not in r.stderr


def test_echo_requests_keep_answering_switches_and_drop_silent_ones(controller_factory):
    """One thread probes every connection: a peer that answers the echo
    requests stays connected, one that never answers is disconnected."""
    import struct
    import time
    c = controller_factory(args=["--echo-interval", "1"])
    silent = socket.create_connection(("127.0.0.1", c.ofp_port), timeout=20)
    alive = socket.create_connection(("127.0.0.1", c.ofp_port), timeout=0.1)
    echoes, buf = 0, b""
    deadline = time.time() + 20
    closed = False
    while time.time() < deadline and not closed:
        try:
            buf += alive.recv(4096)
        except socket.timeout:
            pass
        while len(buf) >= 8:
            _v, typ, length, xid = struct.unpack("!BBHI", buf[:8])
            msg, buf = buf[:length], buf[length:]
            if typ == 2:                                  # ECHO_REQUEST -> ECHO_REPLY
                echoes += 1
                alive.sendall(struct.pack("!BBHI", 4, 3, 8 + len(msg[8:]), xid) + msg[8:])
        silent.setblocking(False)
        try:
            while True:
                data = silent.recv(4096)
                if not data:
                    closed = True
                    break
        except BlockingIOError:
            pass
    assert closed, "the silent peer was not disconnected"
    assert echoes >= 3
    alive.settimeout(2)
    alive.sendall(struct.pack("!BBHI", 4, 2, 8, 99))      # our own ECHO_REQUEST is still answered
    reply = alive.recv(4096)
    while reply and struct.unpack("!BBHI", reply[:8])[1] != 3:
        reply = reply[struct.unpack("!BBHI", reply[:8])[2]:] or alive.recv(4096)
    assert reply, "the answering peer was disconnected"
    silent.close()
    alive.close()


def test_api_port_taken_is_an_error_exit_not_a_hang(controller_factory):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        c = controller_factory(start=False, api_port=busy.getsockname()[1])
        with pytest.raises(RuntimeError, match="exited with 1"):
            c.start(timeout=60)
    assert "cannot serve the API" in c.log_text()


def test_ready_line_says_where_start_up_time_went(controller):
    line = next(ln for ln in controller.log_text().splitlines() if "quantum-controller ready" in ln)
    for phase in ("imports", "config", "database", "openflow", "api"):
        assert f"{phase} " in line.split("after process start", 1)[1], line


def test_switches_connect_while_the_controller_starts_and_are_served(controller_factory):
    """The OpenFlow socket listens before the apps are loaded: a switch's
    connection made then is accepted by the kernel and later served by
    os-ken (its HELLO arrives), instead of being refused into a backoff."""
    import threading
    c = controller_factory(start=False)
    starter = threading.Thread(target=c.start, daemon=True)
    starter.start()
    s = None
    while starter.is_alive():
        s = socket.socket()
        if s.connect_ex(("127.0.0.1", c.ofp_port)) == 0:
            break
        s.close()
        s = None
        time.sleep(0.005)
    assert s is not None, c.log_tail()
    with s:
        assert "loading app" not in c.log_text()     # os-ken was not even loaded yet
        s.settimeout(60)
        header = s.recv(8)
        assert len(header) == 8 and header[1] == 0, header   # OFPT_HELLO
    starter.join(60)


def test_openflow_port_taken_is_an_error_exit(controller_factory):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        c = controller_factory(start=False, ofp_port=busy.getsockname()[1])
        with pytest.raises(RuntimeError, match="exited with 1"):
            c.start(timeout=60)
    assert "cannot listen for OpenFlow" in c.log_text()
