"""quantum-controller as a system service: the unit files install-units writes
(checked by systemd-analyze verify), the readiness notification and journal
log format a real controller process uses under systemd, and SIGHUP
re-reading the log level and the policy file of a running controller."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from tests.lab.proc import wait_until
from tests.support.tools import venv_bin

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def test_install_units_writes_units_systemd_accepts(tmp_path):
    dest = tmp_path / "system"
    r = subprocess.run([venv_bin("quantum-controller"), "install-units", "--dest", str(dest),
                        "--config-file", "/etc/quantum/quantum.conf", "--user", "root"],
                       capture_output=True, text=True, check=True)
    names = sorted(os.listdir(dest))
    assert names == ["quantum-controller.service", "quantum-metadata-proxy.service"], r.stdout
    ctl = (dest / "quantum-controller.service").read_text()
    assert f"ExecStart={venv_bin('quantum-controller')} --config-file /etc/quantum/quantum.conf" in ctl
    assert "ExecReload=/bin/kill -HUP $MAINPID" in ctl and "Type=notify" in ctl
    proxy = (dest / "quantum-metadata-proxy.service").read_text()
    assert f"ExecStart={venv_bin('quantum-metadata-proxy')} --config-file" in proxy
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian package systemd) is needed to check the units"
    v = subprocess.run([analyze, "verify", *(str(dest / n) for n in names)],
                       capture_output=True, text=True)
    assert v.returncode == 0 and not v.stderr.strip(), v.stderr


def test_install_units_refuses_a_relative_config_path(tmp_path):
    r = subprocess.run([venv_bin("quantum-controller"), "install-units", "--dest", str(tmp_path),
                        "--config-file", "quantum.conf"], capture_output=True, text=True)
    assert r.returncode == 1 and "absolute" in r.stderr
    assert os.listdir(tmp_path) == []


def test_under_systemd_it_notifies_ready_and_logs_in_the_journal_format(controller_factory, tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(sock_path)
    notify.settimeout(30)
    c = controller_factory(start=False, env={"NOTIFY_SOCKET": sock_path})
    os.makedirs(c.state_dir, exist_ok=True)
    # systemd's JOURNAL_STREAM names the device:inode of the stream it gave the
    # service; the test's log file stands in for the journal's socket.
    open(c.log_path, "ab").close()
    st = os.stat(c.log_path)
    c.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    c.start()
    try:
        ready = notify.recv(4096).decode()
    finally:
        notify.close()
    assert ready.startswith("READY=1\n") and "STATUS=API on" in ready
    lines = [ln for ln in c.log_text().splitlines() if ln.strip()]
    assert any(ln.startswith("<6>INFO controller: quantum-controller ready") for ln in lines), lines
    assert not any(TIMESTAMP.search(ln) for ln in lines), lines[:5]
    assert all(re.match(r"<[0-7]>", ln) for ln in lines), lines[:5]


def test_without_the_journal_lines_keep_their_timestamp(controller):
    lines = [ln for ln in controller.log_text().splitlines() if "quantum-controller ready" in ln]
    assert lines and TIMESTAMP.match(lines[0]), lines


def _post_network(url: str, roles: str) -> int:
    req = urllib.request.Request(url + "/v2.0/networks", method="POST",
                                 data=json.dumps({"network": {"name": "n"}}).encode(),
                                 headers={"Content-Type": "application/json", "X-Project-Id": "p1",
                                          "X-User-Id": "u1", "X-Roles": roles})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_sighup_rereads_log_level_and_policy_file(controller_factory, tmp_path):
    admin_only = tmp_path / "admin-only.json"
    admin_only.write_text(json.dumps({"create_network": "role:admin"}))
    conf = tmp_path / "quantum.conf"
    conf.write_text(f"[DEFAULT]\ndebug = false\npolicy_file = {admin_only}\n")
    c = controller_factory(args=["--config-file", str(conf)])
    assert _post_network(c.url, "member") == 403
    urllib.request.urlopen(c.url + "/v2.0/networks", timeout=10).close()
    assert "GET /v2.0/networks" not in c.log_text()          # reads are logged at DEBUG only

    conf.write_text("[DEFAULT]\ndebug = true\npolicy_file = \n[dhcp]\nlease_duration = 600\n")
    c.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "policy rules reloaded" in c.log_text(), 30, what="reload logged")
    assert c.proc.poll() is None, c.log_tail()
    assert _post_network(c.url, "member") == 201
    urllib.request.urlopen(c.url + "/v2.0/networks", timeout=10).close()
    wait_until(lambda: "GET /v2.0/networks -> 200" in c.log_text(), 10, what="DEBUG access log")
    # What cannot change live is said so, and not applied.
    assert "dhcp.lease_duration changed; it takes effect at the next restart" in c.log_text()

    # A policy file that does not parse keeps the rules in force.
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    conf.write_text(f"[DEFAULT]\npolicy_file = {broken}\n")
    c.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "previous rules kept" in c.log_text(), 30, what="refused policy logged")
    assert _post_network(c.url, "member") == 201
    assert c.proc.poll() is None


def test_metadata_proxy_service_notifies_ready_and_rereads_its_log_level(tmp_path):
    """quantum-metadata-proxy (the standalone proxy's unit runs it): READY=1
    once listening, SIGHUP re-reads the config file's log level."""
    from tests.support.controller import free_port
    conf = tmp_path / "quantum.conf"
    conf.write_text(f"[DEFAULT]\nstate_dir = {tmp_path}\n")
    sock_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(sock_path)
    notify.settimeout(60)
    log_path = tmp_path / "proxy.log"
    with open(log_path, "wb") as log:
        p = subprocess.Popen([venv_bin("quantum-metadata-proxy"), "--config-file", str(conf),
                              "--metadata-listen-host", "127.0.0.1", "--proxy-port", str(free_port())],
                             stdout=log, stderr=subprocess.STDOUT,
                             env={**os.environ, "NOTIFY_SOCKET": sock_path})
    try:
        assert notify.recv(4096).decode().startswith("READY=1")
        wait_until(lambda: "listening on 127.0.0.1" in log_path.read_text(), 30, what="listening")
        conf.write_text(f"[DEFAULT]\nstate_dir = {tmp_path}\ndebug = true\n")
        p.send_signal(signal.SIGHUP)
        assert notify.recv(4096).decode() == "RELOADING=1"
        assert notify.recv(4096).decode() == "READY=1"
        wait_until(lambda: "log level now DEBUG" in log_path.read_text(), 30, what="reload logged")
        assert p.poll() is None
    finally:
        notify.close()
        p.terminate()
        p.wait(20)
