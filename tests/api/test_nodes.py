"""The admin-only nodes resource node-bootstrap registers with."""
import uuid


def node_body(hostname, **kw):
    # The controller dials a registered node's OVSDB: only loopback (nothing listens on
    # port 1) or a socket that does not exist, never an address off this machine.
    body = {"hostname": hostname, "role": "compute", "tunnel_ip": "192.0.2.5", "tunnel_type": "gre",
            "ovsdb": "tcp:127.0.0.1:1", "bridge_mappings": {"physnet1": "br-eth1"},
            "bridges": {"br-int": 1, "br-tun": 2}}
    body.update(kw)
    return {"node": body}


def test_nodes_upsert_by_hostname_show_list_delete(admin):
    host = "hv-" + uuid.uuid4().hex[:8]
    r = admin.post("/v2.0/nodes", node_body(host))
    assert r.status == 201, r
    node = r.body["node"]
    assert node["hostname"] == host and node["bridges"] == {"br-int": 1, "br-tun": 2}
    assert node["bridge_mappings"] == {"physnet1": "br-eth1"}
    r = admin.post("/v2.0/nodes", node_body(host, role="gateway,compute", tunnel_ip="192.0.2.6",
                                            tunnel_type="vxlan", ovsdb="unix:/nonexistent/quantum-test/db.sock"))
    assert r.status == 200, r
    again = r.body["node"]
    assert again["id"] == node["id"]
    assert again["role"] == "compute,gateway" and again["tunnel_ip"] == "192.0.2.6"
    assert again["ovsdb"] == "unix:/nonexistent/quantum-test/db.sock"
    assert admin.get(f"/v2.0/nodes/{node['id']}").body["node"]["tunnel_type"] == "vxlan"
    assert node["id"] in [n["id"] for n in admin.get("/v2.0/nodes").body["nodes"]]
    assert [n["id"] for n in admin.get(f"/v2.0/nodes?hostname={host}").body["nodes"]] == [node["id"]]
    assert admin.delete(f"/v2.0/nodes/{node['id']}").status == 204
    r = admin.get(f"/v2.0/nodes/{node['id']}")
    assert r.status == 404 and r.error_type == "NodeNotFound"


def test_nodes_are_admin_only(admin, member):
    r = member.post("/v2.0/nodes", node_body("hv-x"))
    assert r.status == 403 and r.error_type == "PolicyNotAuthorized"
    node = admin.post("/v2.0/nodes", node_body("hv-" + uuid.uuid4().hex[:8])).body["node"]
    assert member.get("/v2.0/nodes").body["nodes"] == []
    assert member.get(f"/v2.0/nodes/{node['id']}").status == 404
    assert member.delete(f"/v2.0/nodes/{node['id']}").status == 404
    assert admin.get(f"/v2.0/nodes/{node['id']}").status == 200


def test_nodes_bad_input(admin):
    for bad in ({"role": "router"}, {"tunnel_type": "geneve"}, {"tunnel_ip": "300.1.1.1"},
                {"ovsdb": "http://x"}, {"bridges": {"br-int": "one"}}, {"bridge_mappings": ["x"]}):
        r = admin.post("/v2.0/nodes", node_body("hv-bad", **bad))
        assert r.status == 400, (bad, r)
    r = admin.post("/v2.0/nodes", {"node": {"role": "compute"}})
    assert r.status == 400
    assert all(n["hostname"] != "hv-bad" for n in admin.get("/v2.0/nodes").body["nodes"])


def test_nodes_update_with_put(admin):
    node = admin.post("/v2.0/nodes", node_body("hv-" + uuid.uuid4().hex[:8])).body["node"]
    r = admin.put(f"/v2.0/nodes/{node['id']}", {"node": {"bridges": {"br-int": 10, "br-ex": 11}}})
    assert r.status == 200 and r.body["node"]["bridges"] == {"br-int": 10, "br-ex": 11}
    assert r.body["node"]["tunnel_ip"] == "192.0.2.5"
    r = admin.put(f"/v2.0/nodes/{node['id']}", {"node": {"hostname": "renamed"}})
    assert r.status == 400


def test_nodes_keep_48_bit_datapath_ids_node_bootstrap_derives(admin):
    # node-bootstrap's ids are the first 48 bits of a hash: beyond a 32-bit
    # INTEGER, and stored as JSON, so the API's integer bound must not refuse them.
    host = "hv-" + uuid.uuid4().hex[:8]
    bridges = {"br-int": 0x4CE0EEDA5A23, "br-tun": 2 ** 48 - 1}
    r = admin.post("/v2.0/nodes", node_body(host, bridges=bridges))
    assert r.status == 201, r
    assert admin.get(f"/v2.0/nodes/{r.body['node']['id']}").body["node"]["bridges"] == bridges
    assert admin.post("/v2.0/nodes", node_body(host, bridges={"br-int": 2 ** 64})).status == 400
