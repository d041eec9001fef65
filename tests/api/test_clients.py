"""Real clients, unchanged: openstacksdk and the `openstack` CLI with
auth type none (they GET / and follow the version href)."""
import json
import re
import subprocess

import openstack.connection
import openstack.exceptions
import pytest

from tests.api.conftest import MEMBER_ROLES, new_project
from tests.support.tools import venv_bin


def sdk(url, project=None, roles=MEMBER_ROLES):
    conn = openstack.connection.Connection(auth_type="none", endpoint=url, network_endpoint_override=None)
    if project:
        headers = {"X-Project-Id": project, "X-User-Id": "sdk-user", "X-Roles": roles}
        conn.network.session.additional_headers = headers
    return conn


def test_openstacksdk_end_to_end(api_controller):
    project = new_project()
    conn = sdk(api_controller.url, project)
    net = conn.network.create_network(name="sdk-net")
    assert net.project_id == project and net.mtu == 1458 and net.revision_number == 0
    sub = conn.network.create_subnet(network_id=net.id, cidr="10.60.0.0/24", ip_version=4, name="sdk-sub")
    assert sub.gateway_ip == "10.60.0.1"
    port = conn.network.create_port(network_id=net.id, name="sdk-port")
    assert port.status == "DOWN" and port.fixed_ips[0]["subnet_id"] == sub.id
    assert conn.network.find_network("sdk-net").id == net.id          # name lookup: 404 then ?name=
    assert conn.network.get_port(port.id).name == "sdk-port"
    port = conn.network.update_port(port, name="renamed", if_revision=port.revision_number)
    assert port.name == "renamed" and port.revision_number == 1
    with pytest.raises(openstack.exceptions.HttpException) as e:
        conn.network.update_port(port, name="stale", if_revision=99)
    assert e.value.status_code == 412
    with pytest.raises(openstack.exceptions.ConflictException):
        conn.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": port.fixed_ips[0]["ip_address"]}])
    with pytest.raises(openstack.exceptions.ResourceNotFound):
        conn.network.get_network("11111111-2222-3333-4444-555555555555")
    with pytest.raises(openstack.exceptions.BadRequestException) as e:
        conn.network.create_network(name="x" * 300)
    assert "exceeds maximum length" in str(e.value)
    names = [p.name for p in conn.network.ports(network_id=net.id, limit=1)]   # follows _links
    assert sorted(names) == ["", "renamed"]
    conn.network.set_tags(net, ["t1", "t2"])
    assert sorted(conn.network.get_network(net.id).tags) == ["t1", "t2"]
    assert [n.id for n in conn.network.networks(tags="t1")] == [net.id]
    assert "provider" in {e.alias for e in conn.network.extensions()}
    q = conn.network.get_quota(project)
    assert q.networks == 100 and q.ports == 500
    conn.network.delete_port(port.id)
    conn.network.delete_network(net.id)
    assert conn.network.find_network(net.id) is None


def cli(url, *args, project=None):
    cmd = [venv_bin("openstack"), "--os-auth-type", "none", "--os-endpoint", url, *args, "-f", "json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return r.returncode, (json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None), r.stderr


def test_openstack_cli(api_controller):
    url = api_controller.url
    rc, net, err = cli(url, "network", "create", "cli-net", "--provider-network-type", "vxlan")
    assert rc == 0, err
    assert net["name"] == "cli-net" and net["provider:network_type"] == "vxlan" and net["mtu"] == 1450
    rc, sub, err = cli(url, "subnet", "create", "cli-sub", "--network", "cli-net",
                       "--subnet-range", "10.70.0.0/24", "--dns-nameserver", "8.8.8.8")
    assert rc == 0, err
    assert sub["gateway_ip"] == "10.70.0.1" and sub["dns_nameservers"] == ["8.8.8.8"]
    rc, port, err = cli(url, "port", "create", "cli-port", "--network", "cli-net",
                        "--fixed-ip", "subnet=cli-sub,ip-address=10.70.0.20")
    assert rc == 0, err
    assert port["fixed_ips"][0]["ip_address"] == "10.70.0.20"
    rc, ports, err = cli(url, "port", "list", "--network", "cli-net")
    assert rc == 0, err
    assert len(ports) == 2        # ours and the DHCP port
    rc, shown, err = cli(url, "network", "show", "cli-net")
    assert rc == 0 and shown["id"] == net["id"], err
    rc, _, err = cli(url, "port", "create", "dup", "--network", "cli-net",
                     "--fixed-ip", "subnet=cli-sub,ip-address=10.70.0.20")
    assert rc != 0 and "already allocated" in err
    for args in (["port", "delete", "cli-port"], ["network", "delete", "cli-net"]):
        r = subprocess.run([venv_bin("openstack"), "--os-auth-type", "none", "--os-endpoint", url, *args],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    rc, _, err = cli(url, "network", "show", "cli-net")
    assert rc != 0
    log = api_controller.log_text()
    assert "Traceback" not in log
    # the access log names every write and every refusal
    assert re.search(r"POST /v2\.0/ports -> 201 in [\d.]+ ms", log)
    assert re.search(r"POST /v2\.0/ports -> 409 in [\d.]+ ms", log)
    assert re.search(r"DELETE /v2\.0/networks/[0-9a-f-]+ -> 204 in", log)
