"""Networks: attributes, provider segments, sharing, tenancy and policy,
revisions and tags (plain HTTP with noauth headers)."""
import pytest

from tests.api.conftest import ADMIN_ROLES, Http, new_project


def create_net(client, **attrs):
    r = client.post("/v2.0/networks", {"network": attrs})
    assert r.status == 201, r
    return r.body["network"]


def test_network_attributes_and_defaults(member):
    net = create_net(member, name="blue")
    assert net["name"] == "blue" and net["admin_state_up"] is True and net["status"] == "ACTIVE"
    assert net["project_id"] == net["tenant_id"] == member.project
    assert net["shared"] is False and net["router:external"] is False
    assert net["port_security_enabled"] is True and net["subnets"] == []
    assert net["mtu"] == 1458        # GRE tenant network on a 1500 physical MTU
    assert net["revision_number"] == 0 and net["description"] == "" and net["tags"] == []
    assert net["created_at"].endswith("Z") and net["updated_at"].endswith("Z")
    assert not any(k.startswith("provider:") for k in net), "provider attributes are admin-only"
    r = member.put(f"/v2.0/networks/{net['id']}", {"network": {"name": "green", "description": "d"}})
    assert r.status == 200 and r.body["network"]["name"] == "green"
    assert r.body["network"]["revision_number"] == 1
    r = member.put(f"/v2.0/networks/{net['id']}", {"network": {"status": "DOWN"}})
    assert r.status == 400 and "Cannot update read-only attribute status" in r.message
    assert member.delete(f"/v2.0/networks/{net['id']}").status == 204
    r = member.get(f"/v2.0/networks/{net['id']}")
    assert r.status == 404 and r.error_type == "NetworkNotFound"


def test_provider_networks_segments_and_mtu(admin):
    vlan = create_net(admin, **{"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                                "provider:segmentation_id": 150})
    assert (vlan["provider:network_type"], vlan["provider:physical_network"],
            vlan["provider:segmentation_id"], vlan["mtu"]) == ("vlan", "physnet1", 150, 1500)
    r = admin.post("/v2.0/networks", {"network": {"provider:network_type": "vlan",
                                                  "provider:physical_network": "physnet1",
                                                  "provider:segmentation_id": 150}})
    assert r.status == 409 and r.error_type == "VlanIdInUse"
    auto_vlan = create_net(admin, **{"provider:network_type": "vlan", "provider:physical_network": "physnet1"})
    assert 100 <= auto_vlan["provider:segmentation_id"] <= 199
    vx = create_net(admin, **{"provider:network_type": "vxlan", "provider:segmentation_id": 5000})
    assert vx["mtu"] == 1450 and vx["provider:physical_network"] is None
    gre = create_net(admin, **{"provider:network_type": "gre"})
    assert gre["mtu"] == 1458 and gre["provider:segmentation_id"] >= 1
    flat = create_net(admin, **{"provider:network_type": "flat", "provider:physical_network": "flatnet9"})
    assert flat["provider:segmentation_id"] is None and flat["mtu"] == 1500
    r = admin.post("/v2.0/networks", {"network": {"provider:network_type": "flat",
                                                  "provider:physical_network": "flatnet9"}})
    assert r.status == 409 and r.error_type == "FlatNetworkInUse"
    local = create_net(admin, **{"provider:network_type": "local"})
    assert local["provider:segmentation_id"] is None
    for bad in [{"provider:network_type": "geneve"},
                {"provider:network_type": "vlan", "provider:physical_network": "nowhere"},
                {"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                 "provider:segmentation_id": 4095},
                {"provider:network_type": "vxlan", "provider:physical_network": "physnet1"},
                {"provider:network_type": "flat"},
                {"provider:segmentation_id": "abc"}]:
        r = admin.post("/v2.0/networks", {"network": bad})
        assert r.status == 400, (bad, r)
    # a released segment can be taken again
    assert admin.delete(f"/v2.0/networks/{vlan['id']}").status == 204
    again = create_net(admin, **{"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                                 "provider:segmentation_id": 150})
    assert again["provider:segmentation_id"] == 150
    r = admin.put(f"/v2.0/networks/{again['id']}", {"network": {"provider:segmentation_id": 151}})
    assert r.status == 400
    assert admin.get(f"/v2.0/networks?provider:segmentation_id=150").body["networks"][0]["id"] == again["id"]


def test_provider_and_admin_attributes_refused_to_members(member):
    for attrs in [{"provider:network_type": "vlan"}, {"shared": True}, {"router:external": True}]:
        r = member.post("/v2.0/networks", {"network": attrs})
        assert r.status == 403 and r.error_type == "PolicyNotAuthorized", (attrs, r)
        assert r.message == f"rule:create_network:{list(attrs)[0]} is disallowed by policy"
    # explicitly setting the default value is allowed
    net = create_net(member, shared=False)
    r = member.put(f"/v2.0/networks/{net['id']}", {"network": {"shared": True}})
    assert r.status == 403
    r = member.get(f"/v2.0/networks?fields=provider:network_type&id={net['id']}")
    assert r.body["networks"] == [{}]


def test_tenancy_visibility_and_404s(api_controller, admin, member, other_member):
    mine = create_net(member, name="mine")
    theirs = create_net(other_member, name="theirs")
    shared = create_net(admin, name="shared", shared=True, project_id=new_project())
    external = create_net(admin, name="ext", **{"router:external": True})
    ids = {n["id"] for n in member.get("/v2.0/networks").body["networks"]}
    assert mine["id"] in ids and shared["id"] in ids and external["id"] in ids
    assert theirs["id"] not in ids
    r = member.get(f"/v2.0/networks/{theirs['id']}")
    assert r.status == 404 and r.error_type == "NetworkNotFound"
    r = member.put(f"/v2.0/networks/{theirs['id']}", {"network": {"name": "x"}})
    assert r.status == 404
    assert member.delete(f"/v2.0/networks/{theirs['id']}").status == 404
    # visible but not owned: 403
    r = member.put(f"/v2.0/networks/{shared['id']}", {"network": {"name": "x"}})
    assert r.status == 403 and r.error_type == "PolicyNotAuthorized"
    assert member.delete(f"/v2.0/networks/{shared['id']}").status == 403
    # admin sees everything and may create for another project
    ids = {n["id"] for n in admin.get("/v2.0/networks").body["networks"]}
    assert {mine["id"], theirs["id"], shared["id"]} <= ids
    other = create_net(admin, project_id=member.project)
    assert other["tenant_id"] == member.project
    r = member.post("/v2.0/networks", {"network": {"project_id": other_member.project}})
    assert r.status == 400 and "other than the authenticated project" in r.message
    # only readers may read (new defaults, no implied roles in noauth)
    writer_only = Http(api_controller.url, project=member.project, roles="member")
    assert writer_only.get(f"/v2.0/networks/{mine['id']}").status == 404
    # keystonecontext requires a user id
    no_user = Http(api_controller.url, project=member.project, user=None)
    assert no_user.get("/v2.0/networks").status == 401
    # no identity headers at all: the noauth admin with project fake_project_id
    anon = Http(api_controller.url)
    net = create_net(anon)
    assert net["project_id"] == "fake_project_id" and "provider:network_type" in net


def test_unsharing_with_foreign_ports_is_409(admin, member):
    net = create_net(admin, shared=True)
    r = member.post("/v2.0/ports", {"port": {"network_id": net["id"]}})
    assert r.status == 201, r
    port = r.body["port"]
    r = admin.put(f"/v2.0/networks/{net['id']}", {"network": {"shared": False}})
    assert r.status == 409 and r.error_type == "InvalidSharedSetting"
    assert admin.get(f"/v2.0/networks/{net['id']}").body["network"]["shared"] is True
    assert member.delete(f"/v2.0/ports/{port['id']}").status == 204
    r = admin.put(f"/v2.0/networks/{net['id']}", {"network": {"shared": False}})
    assert r.status == 200 and r.body["network"]["shared"] is False


def test_if_match_revision(member):
    net = create_net(member)
    path = f"/v2.0/networks/{net['id']}"
    r = member.put(path, {"network": {"name": "a"}}, headers={"If-Match": "revision_number=0"})
    assert r.status == 200 and r.body["network"]["revision_number"] == 1
    r = member.put(path, {"network": {"name": "b"}}, headers={"If-Match": "revision_number=0"})
    assert r.status == 412 and r.error_type == "RevisionNumberConstraintFailed"
    assert member.get(path).body["network"]["name"] == "a"
    assert member.delete(path, headers={"If-Match": "revision_number=7"}).status == 412
    assert member.delete(path, headers={"If-Match": "revision_number=1"}).status == 204


def test_tags_endpoints_and_filters(member):
    a, b = create_net(member, name="ta"), create_net(member, name="tb")
    base = f"/v2.0/networks/{a['id']}/tags"
    assert member.put(f"{base}/red").status == 201
    assert member.put(f"{base}/blue").status == 201
    assert member.get(base).body == {"tags": ["blue", "red"]}
    assert member.get(f"{base}/red").status == 204
    assert member.get(f"{base}/green").status == 404
    r = member.put(base, {"tags": ["x", "y"]})
    assert r.status == 200 and r.body == {"tags": ["x", "y"]}
    assert member.put(f"/v2.0/networks/{b['id']}/tags", {"tags": ["y", "z"]}).status == 200
    assert member.get(f"/v2.0/networks/{a['id']}").body["network"]["tags"] == ["x", "y"]
    assert member.get(f"/v2.0/networks/{a['id']}").body["network"]["revision_number"] >= 3

    def names(q):
        return sorted(n["name"] for n in member.get(f"/v2.0/networks?{q}").body["networks"]
                      if n["id"] in (a["id"], b["id"]))
    assert names("tags=x,y") == ["ta"]
    assert names("tags-any=x,z") == ["ta", "tb"]
    assert names("not-tags=y") == []
    assert names("not-tags-any=x") == ["tb"]
    assert member.delete(f"{base}/x").status == 204
    assert member.delete(f"{base}/x").status == 404
    assert member.delete(base).status == 204
    assert member.get(base).body == {"tags": []}
    r = member.put(base, {"tags": ["bad/tag"]})
    assert r.status == 400
