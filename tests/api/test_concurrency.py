"""50 parallel port creates on one subnet never allocate an address twice,
on SQLite and on PostgreSQL."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.api.conftest import ADMIN_ROLES, Http


def _parallel_ports(url: str, n: int = 50, cidr: str = "10.50.0.0/26"):
    admin = Http(url, project="conc", roles=ADMIN_ROLES)
    net = admin.post("/v2.0/networks", {"network": {"name": "conc"}}).body["network"]
    sub = admin.post("/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": cidr,
                                                  "ip_version": 4}}).body["subnet"]

    def one(i):
        return Http(url, project="conc", roles=ADMIN_ROLES).post(
            "/v2.0/ports", {"port": {"network_id": net["id"], "name": f"p{i}"}})

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n)))
    return admin, net, sub, results


def _check(admin, net, sub, results, n=50):
    assert [r.status for r in results] == [201] * n, [r for r in results if r.status != 201][:3]
    ips = [r.body["port"]["fixed_ips"][0]["ip_address"] for r in results]
    macs = [r.body["port"]["mac_address"] for r in results]
    assert len(set(ips)) == n and len(set(macs)) == n
    listed = admin.get(f"/v2.0/ports?network_id={net['id']}").body["ports"]
    all_ips = [f["ip_address"] for p in listed for f in p["fixed_ips"]]
    assert len(listed) == n + 1 and len(all_ips) == len(set(all_ips))        # + the DHCP port
    assert "10.50.0.2" in all_ips and not set(ips) & {"10.50.0.1", "10.50.0.2"}


def test_parallel_port_creates_sqlite(controller):
    _check(*_parallel_ports(controller.url))
    assert "Traceback" not in controller.log_text()


@pytest.mark.postgres
def test_parallel_port_creates_postgresql(controller_factory, postgres):
    c = controller_factory(db_url=postgres.new_database())
    _check(*_parallel_ports(c.url))
    assert "Traceback" not in c.log_text()
