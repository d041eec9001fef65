"""Cookie -> owner resolution for the console (controller/console/owners.py)."""
from controller.flows import cookies
from controller.console.owners import OwnerIndex

NET = "5b1c1a4e-7f4a-4c43-9d6e-2f0a9a1b2c3d"
PORT = "8c77dea8-0d1f-4b7e-a0a6-3f4e5d6c7b8a"
DHCP_PORT = "0f0e0d0c-0b0a-4909-8807-060504030201"
NODE = "11111111-2222-4333-8444-555555555555"

INDEX = OwnerIndex({"network": {NET: "net1"}, "port": {PORT: "vm1", DHCP_PORT: ""},
                    "node": {NODE: "hv1"}})


def test_each_kind_resolves_to_its_object_and_page():
    o = INDEX.resolve(cookies.cookie("port", PORT))
    assert (o.kind, o.id, o.name, o.page) == ("port", PORT, "vm1", f"port/{PORT}")
    o = INDEX.resolve(cookies.cookie("network", NET))
    assert (o.kind, o.id, o.page) == ("network", NET, f"network/{NET}")
    o = INDEX.resolve(cookies.cookie("infra", NODE))
    assert (o.kind, o.target, o.id, o.label) == ("infra", "node", NODE, "infra hv1")


def test_a_dhcp_flow_belongs_to_the_networks_dhcp_port():
    o = INDEX.resolve(cookies.cookie("dhcp", DHCP_PORT))
    assert (o.kind, o.target, o.id, o.page) == ("dhcp", "port", DHCP_PORT, f"port/{DHCP_PORT}")
    assert o.label == "dhcp 0f0e0d0c"


def test_same_prefix_in_another_kind_does_not_match():
    # the network's id as a port cookie: no such port
    o = INDEX.resolve(cookies.cookie("port", NET))
    assert o.id is None and o.page is None and "gone" in o.label


def test_foreign_and_hand_made_flows():
    assert INDEX.resolve(0).kind == "foreign"
    assert INDEX.resolve(0xFF << 56).label.startswith("not ours")


def test_cookies_of_an_object_cover_every_kind_naming_it():
    assert INDEX.cookies_of("port", PORT) == {cookies.cookie(k, PORT) for k in ("port", "dhcp", "metadata")}
    assert INDEX.cookies_of("network", NET) == {cookies.cookie("network", NET)}
