"""Run a real quantum-controller process for tests: its own state dir, free
loopback ports, logs kept for the failure report."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


_GIVEN: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now, never one this process handed
    out before: two calls in a row can get the same port from the kernel
    (a controller's API and OpenFlow ports once did, and the API could not bind)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


class ControllerProcess:
    def __init__(self, state_dir: str, db_url: str = "", args: list[str] | None = None,
                 api_port: int | None = None, ofp_port: int | None = None,
                 env: dict | None = None):
        self.state_dir = state_dir
        self.db_url = db_url
        self.api_port = api_port or free_port()
        self.ofp_port = ofp_port or free_port()
        self.extra_args = list(args or [])
        self.env = env          # added to this process's environment
        self.log_path = os.path.join(state_dir, "controller.log")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "controller.main", "--state-dir", self.state_dir,
               "--bind-host", "127.0.0.1", "--bind-port", str(self.api_port),
               "--ofp-listen-host", "127.0.0.1", "--ofp-listen-port", str(self.ofp_port)]
        if self.db_url:
            cmd += ["--database-connection", self.db_url]
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> "ControllerProcess":
        os.makedirs(self.state_dir, exist_ok=True)
        log = open(self.log_path, "ab")
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as r:
                    if r.status == 200 and self._ofp_listening():
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"controller did not come up in {timeout}s:\n{self.log_tail()}")

    def _ofp_listening(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", self.ofp_port)) == 0

    def stop(self, sig=signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.stop(signal.SIGKILL)

    def log_tail(self, n: int = 60) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""
