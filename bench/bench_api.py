"""API benchmark: sequential port creates and big port lists on SQLite.

    python bench/bench_api.py [--ports 1000] [--list 10000]

Starts a fresh controller process (SQLite in a temporary state dir), then
through openstacksdk (auth type none):
  1. creates --ports ports one by one on one subnet -> ms per create;
  2. lists them (sdk, and a raw HTTP GET);
  3. tops the network up to --list ports (bulk creates, not timed) and lists
     them all (raw HTTP GET, and through the sdk).
Also printed: the controller's CPU per create (from /proc: less noisy than
wall time on a shared machine) and the sdk's own floor: the same creates
against a canned-answer HTTP server in this process (what no server can save).
Reference (issue 2): real Neutron 29 on these 2-core machines took 95-160 ms
per sequential port create and 0.3-0.7 s to list 200 ports. Targets: <= 10 ms
per create, < 0.5 s to list 10,000 ports. Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NEUTRON_CREATE_MS = (95, 160)
NEUTRON_LIST_200_S = (0.3, 0.7)


def raw_get(port: int, path: str, keep: list | None = None) -> tuple[float, int, int]:
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    elapsed = time.perf_counter() - t
    conn.close()
    ports = json.loads(body)["ports"]
    if keep is not None:
        keep[:] = ports
    return elapsed, len(ports), len(body)


def sdk_objects_s(items: list[dict]) -> float:
    """openstacksdk's own cost for a list: building its Port objects from the
    decoded items, with no server involved."""
    from openstack.network.v2.port import Port
    t = time.perf_counter()
    for d in items:
        Port.existing(**d)
    return time.perf_counter() - t


class _Canned:
    """A keep-alive HTTP server answering every POST with one canned port:
    openstacksdk's own cost per create, with next to no server."""

    def __init__(self, port_body: dict):
        import http.server
        import threading
        body = json.dumps({"port": port_body}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def _send(self, code, data):
                self.wfile.write(f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n"
                                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)

            def do_GET(self):
                url = f"http://{self.headers['Host']}/v2.0/"
                self._send(200, json.dumps({"versions": [{"id": "v2.0", "status": "CURRENT",
                                                          "links": [{"rel": "self", "href": url}]}]}).encode())

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(201, body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def sdk_floor_ms(port_body: dict, n: int) -> float:
    import openstack.connection
    canned = _Canned(port_body)
    try:
        conn = openstack.connection.Connection(auth_type="none", endpoint=canned.url)
        for _ in range(10):
            conn.network.create_port(network_id=port_body["network_id"], project_id="bench")
        t = time.perf_counter()
        for i in range(n):
            conn.network.create_port(network_id=port_body["network_id"], name=f"p{i}", project_id="bench")
        return (time.perf_counter() - t) * 1000 / n
    finally:
        canned.close()


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_problems(path: str) -> tuple[int, int]:
    """(ERROR lines, 'database is locked' lines) in the controller log."""
    errors = locked = 0
    with open(path, errors="replace") as f:
        for line in f:
            errors += " ERROR " in line
            locked += "database is locked" in line
    return errors, locked


def main() -> int:
    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ports", type=int, default=1000)
    ap.add_argument("--list", type=int, default=10000)
    args = ap.parse_args()

    import openstack.connection
    from tests.support.controller import ControllerProcess

    load_start = os.getloadavg()
    state = tempfile.mkdtemp(prefix="bench-api-")
    ctl = ControllerProcess(state).start()
    try:
        conn = openstack.connection.Connection(auth_type="none", endpoint=ctl.url)
        pid = "bench"
        conn.network.update_quota(pid, ports=-1)
        net = conn.network.create_network(name="bench", project_id=pid)
        conn.network.create_subnet(network_id=net.id, cidr="10.128.0.0/17", ip_version=4,
                                   project_id=pid)
        for _ in range(10):                                   # warm up (not timed)
            conn.network.create_port(network_id=net.id, project_id=pid)

        cpu0 = cpu_seconds(ctl.proc.pid)
        t = time.perf_counter()
        for i in range(args.ports):
            last = conn.network.create_port(network_id=net.id, name=f"p{i}", project_id=pid)
        create_ms = (time.perf_counter() - t) * 1000 / args.ports
        server_cpu_ms = (cpu_seconds(ctl.proc.pid) - cpu0) * 1000 / args.ports
        floor_ms = sdk_floor_ms(last.to_dict(computed=False), max(50, args.ports // 5))

        # The same creates as plain HTTP on one kept-alive connection: the
        # server's share, without openstacksdk's client-side work.
        n_raw = max(1, args.ports // 5)
        c = http.client.HTTPConnection("127.0.0.1", ctl.api_port, timeout=300)
        body = json.dumps({"port": {"network_id": net.id, "project_id": pid}})
        t = time.perf_counter()
        for _ in range(n_raw):
            c.request("POST", "/v2.0/ports", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            assert r.status == 201, r.status
        raw_create_ms = (time.perf_counter() - t) * 1000 / n_raw
        c.close()

        count = args.ports + 11 + n_raw
        t = time.perf_counter()
        listed = list(conn.network.ports(network_id=net.id))
        sdk_list_small = time.perf_counter() - t
        raw_small, n_small, _ = raw_get(ctl.api_port, f"/v2.0/ports?network_id={net.id}")
        assert len(listed) == n_small == count, (len(listed), n_small, count)

        body_ports = [{"network_id": net.id, "project_id": pid}] * 500
        while count < args.list:
            batch = body_ports[:min(500, args.list - count)]
            c = http.client.HTTPConnection("127.0.0.1", ctl.api_port, timeout=300)
            c.request("POST", "/v2.0/ports", json.dumps({"ports": batch}),
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            c.close()
            assert r.status == 201, r.status
            count += len(batch)

        raw_runs = [raw_get(ctl.api_port, "/v2.0/ports")[0] for _ in range(3)]
        items: list = []
        _, n_big, size = raw_get(ctl.api_port, "/v2.0/ports", keep=items)
        t = time.perf_counter()
        sdk_big = len(list(conn.network.ports()))
        sdk_list_big = time.perf_counter() - t
        sdk_own = sdk_objects_s(items)
    finally:
        ctl.stop()
    n_errors, n_locked = log_problems(ctl.log_path)
    shutil.rmtree(state, ignore_errors=True)
    raw_big = min(raw_runs)

    lo, hi = NEUTRON_CREATE_MS
    print(f"port create (sdk, sequential, {args.ports}): {create_ms:6.2f} ms/port   "
          f"neutron 95-160 ms -> {lo / create_ms:.0f}x-{hi / create_ms:.0f}x faster   target <= 10 ms")
    print(f"  of which: controller CPU {server_cpu_ms:.2f} ms/create (all its threads); the sdk alone "
          f"against a canned answer {floor_ms:.2f} ms/create")
    print(f"port create (raw HTTP, sequential, {n_raw}): {raw_create_ms:6.2f} ms/port")
    print(f"list {n_small} ports: raw HTTP {raw_small:.3f} s, sdk {sdk_list_small:.3f} s   "
          f"(neutron: 0.3-0.7 s for 200 ports)")
    lo, hi = NEUTRON_LIST_200_S
    print(f"list {n_big} ports ({size / 1e6:.1f} MB): raw HTTP {raw_big:.3f} s "
          f"(3 runs {min(raw_runs):.3f}-{max(raw_runs):.3f} s)   neutron lists 200 in {lo}-{hi} s "
          f"-> {n_big / 200 * lo / raw_big:.0f}x-{n_big / 200 * hi / raw_big:.0f}x the rate   target < 0.5 s")
    print(f"list {n_big} ports through the sdk: {sdk_list_big:.3f} s ({sdk_big} objects), of which "
          f"~{sdk_own:.3f} s is the sdk building its objects (measured alone, no server)")
    print(f"controller log: {n_errors} ERROR lines, {n_locked} 'database is locked'   "
          f"load average (1 min) {load_start[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end "
          f"({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
