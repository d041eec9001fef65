"""Keystone against noauth: sequential port creates through openstacksdk, same run.

    python bench/bench_keystone.py [--ports 100] [--blocks 6] [--misses 10]

Starts a real Keystone (tests/support/keystone.py: SQLite, fernet tokens) and
two controller processes on SQLite: one with auth_strategy = noauth, one with
auth_strategy = keystone (keystonemiddleware's auth_token, in-memory token
cache). Then, in --blocks blocks alternating the two (the order flips every
block, so the machine's load falls on both alike), --ports port creates one
by one through openstacksdk, as an admin on both (the same policy work): with
`auth_type none` against noauth, with the admin's password-authenticated
session (one token, reused as real clients do) against Keystone. Printed: per-create p50/p90/mean of each, the ratio keystone/noauth
(target <= 1.3: validation must be cached), each controller's CPU per create
and the client's (openstacksdk with keystoneauth's session does more per call),
and what a cache miss costs (a request with a token the controller has not
seen yet: one round trip to Keystone). Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TARGET_RATIO = 1.3


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def raw_get_ms(port: int, token: str) -> float:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t = time.perf_counter()
    c.request("GET", "/v2.0/networks?name=none", headers={"X-Auth-Token": token})
    r = c.getresponse()
    r.read()
    elapsed = (time.perf_counter() - t) * 1000
    c.close()
    assert r.status == 200, r.status
    return elapsed


def main() -> int:
    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ports", type=int, default=100, help="port creates per block and mode")
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--misses", type=int, default=10, help="requests with never-seen tokens")
    args = ap.parse_args()

    import openstack
    import openstack.connection
    from tests.support.controller import ControllerProcess
    from tests.support.keystone import ADMIN_PASSWORD, KeystoneServer, controller_ini, seed

    load_start = os.getloadavg()
    state = tempfile.mkdtemp(prefix="bench-keystone-")
    ks = KeystoneServer().start()
    ctls = []
    try:
        seeded = seed(ks)
        noauth = ControllerProcess(os.path.join(state, "noauth")).start()
        ctls.append(noauth)
        keystone = ControllerProcess(os.path.join(state, "keystone"), args=[
            "--config-file", controller_ini(os.path.join(state, "q.conf"), ks)]).start()
        ctls.append(keystone)
        ks.network_endpoint(keystone.url)

        # Both callers are admins (noauth without headers is neutron's "fake
        # project, admin"), so the policy work per create is the same.
        admin = openstack.connect(auth_url=ks.url, username="admin", password=ADMIN_PASSWORD,
                                  project_name="admin", user_domain_name="Default",
                                  project_domain_name="Default", region_name="RegionOne",
                                  interface="public", identity_api_version="3")
        conns = {"noauth": openstack.connection.Connection(auth_type="none", endpoint=noauth.url),
                 "keystone": admin}
        admin.network.update_quota(seeded.projects["admin"]["id"], ports=-1)
        conns["noauth"].network.update_quota("fake_project_id", ports=-1)
        pids = {"noauth": noauth.proc.pid, "keystone": keystone.proc.pid}
        nets, kw = {}, {"noauth": {}, "keystone": {}}     # each in the caller's own project
        for mode, conn in conns.items():
            nets[mode] = conn.network.create_network(name="bench", **kw[mode])
            conn.network.create_subnet(network_id=nets[mode].id, cidr="10.128.0.0/17", ip_version=4,
                                       **kw[mode])
            for _ in range(20):                                    # warm up (not timed)
                conn.network.create_port(network_id=nets[mode].id, **kw[mode])

        samples = {m: [] for m in conns}
        cpu = {m: 0.0 for m in conns}
        client_cpu = {m: 0.0 for m in conns}        # openstacksdk's own (keystoneauth's session too)
        for block in range(args.blocks):
            order = list(conns) if block % 2 == 0 else list(conns)[::-1]
            for mode in order:
                conn, net = conns[mode], nets[mode]
                c0, own0 = cpu_seconds(pids[mode]), time.process_time()
                for i in range(args.ports):
                    t = time.perf_counter()
                    conn.network.create_port(network_id=net.id, name=f"b{block}p{i}", **kw[mode])
                    samples[mode].append((time.perf_counter() - t) * 1000)
                cpu[mode] += cpu_seconds(pids[mode]) - c0
                client_cpu[mode] += time.process_time() - own0

        # A token the controller has not validated yet costs a trip to Keystone.
        cached_token = conns["keystone"].session.get_token()
        hits = [raw_get_ms(keystone.api_port, cached_token) for _ in range(args.misses)]
        misses = [raw_get_ms(keystone.api_port, seeded.token("admin")) for _ in range(args.misses)]
    finally:
        for c in ctls:
            c.stop()
        ks.stop()

    n = args.ports * args.blocks
    print(f"port create through openstacksdk, sequential, {args.blocks} alternating blocks of "
          f"{args.ports} per mode ({n} each):")
    for mode, s in samples.items():
        print(f"  {mode:8s}  p50 {pct(s, 50):6.2f} ms  p90 {pct(s, 90):6.2f} ms  "
              f"mean {statistics.mean(s):6.2f} ms   CPU per create: controller {cpu[mode] * 1000 / n:5.2f} ms, "
              f"client {client_cpu[mode] * 1000 / n:5.2f} ms")
    r50 = pct(samples["keystone"], 50) / pct(samples["noauth"], 50)
    rmean = statistics.mean(samples["keystone"]) / statistics.mean(samples["noauth"])
    verdict = "within" if max(r50, rmean) <= TARGET_RATIO else "OVER"
    print(f"  ratio keystone/noauth: p50 {r50:.2f}, mean {rmean:.2f}   target <= {TARGET_RATIO} ({verdict})")
    print(f"GET with a cached token p50 {pct(hits, 50):.2f} ms; with a token never seen "
          f"(validated by Keystone) p50 {pct(misses, 50):.2f} ms ({args.misses} each)")
    print(f"load average (1 min) {load_start[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end "
          f"({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
