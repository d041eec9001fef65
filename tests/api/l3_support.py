"""Helpers for the L3 and security-group API tests: topology builders over
plain HTTP, the `openstack` CLI and an openstacksdk connection (both without
auth, i.e. as neutron's noauth admin `fake_project_id`)."""
from __future__ import annotations

import itertools
import json
import subprocess

from tests.api.test_networks import create_net
from tests.api.test_subnets_ports import create_port, create_subnet
from tests.support.tools import venv_bin

__all__ = ["create_net", "create_port", "create_subnet", "ext_network", "private_net",
           "router", "add_interface", "osc", "sdk", "ports_of", "create_sg_or_fail"]

# Each test takes its own /24s so that tests sharing a controller never overlap.
_octets = itertools.count(1)


def next_cidr(prefix: str = "10") -> str:
    n = next(_octets)
    return f"{prefix}.{n // 250}.{n % 250}.0/24"


def ext_network(admin, cidr: str | None = None, **subnet_attrs):
    """An external network (admin-owned) with one subnet without DHCP."""
    net = create_net(admin, **{"router:external": True})
    sub = create_subnet(admin, net, cidr or next_cidr("172"), enable_dhcp=False, **subnet_attrs)
    return net, sub


def private_net(client, cidr: str | None = None, **subnet_attrs):
    net = create_net(client)
    return net, create_subnet(client, net, cidr or next_cidr(), **subnet_attrs)


def router(client, **attrs):
    r = client.post("/v2.0/routers", {"router": attrs})
    assert r.status == 201, r
    return r.body["router"]


def add_interface(client, router_id, **body):
    r = client.put(f"/v2.0/routers/{router_id}/add_router_interface", body)
    assert r.status == 200, r
    return r.body


def ports_of(admin, **filters):
    q = "&".join(f"{k}={v}" for k, v in filters.items())
    return admin.get(f"/v2.0/ports?{q}").body["ports"]


def osc(url: str, *args: str):
    """Run the openstack CLI against the controller; JSON output when -f json."""
    cmd = [venv_bin("openstack"), "--os-auth-type", "none", "--os-endpoint", url, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(args)}: {r.stderr}"
    return json.loads(r.stdout) if "json" in args else r.stdout


def sdk(url: str):
    import openstack
    return openstack.connection.Connection(auth_type="none", auth={"endpoint": url},
                                           network_endpoint_override=url)


def create_sg_or_fail(client, name: str, **attrs):
    r = client.post("/v2.0/security-groups", {"security_group": {"name": name, **attrs}})
    assert r.status == 201, r
    return r.body["security_group"]
