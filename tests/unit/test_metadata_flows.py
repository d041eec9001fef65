"""The metadata redirection (controller/flows/metadata.py) walked through the
fake flow tables of two nodes, and the per-port source addresses
(controller/model/metadata_addresses.py), including their allocation in the DB."""
from __future__ import annotations

import dataclasses

import pytest

from controller import config
from controller.db import models as m
from controller.db.session import Database
from controller.flows import tables as t
from controller.flows.compiler import compile_node
from controller.flows.metadata import (METADATA_MAC, UPLINK, compile_metadata, source_mac)
from controller.model.snapshot import load_world
from controller.model.metadata_addresses import (address_of, assign_indexes, index_of, max_index,
                                        primary_ipv4)
from controller.model.settings import MetadataSettings, Settings
from controller.runtime import Runtime
from tests.unit.fakeoftable import FakeFabric, make_world
from tests.unit.test_flows_l2 import BCAST, H1, H2, arp_req, net, port

S = MetadataSettings(proxy_ip="172.31.0.200", proxy_port=9697, proxy_mac="02:00:00:00:00:c8",
                     source_range="100.64.0.0/10")
VM_IP = "10.0.0.5"


def tcp(src_mac, dst_mac, src_ip, dst_ip, sport, dport):
    return {"eth_src": src_mac, "eth_dst": dst_mac, "eth_type": 0x0800, "ip_proto": 6,
            "ipv4_src": src_ip, "ipv4_dst": dst_ip, "tcp_src": sport, "tcp_dst": dport}


def with_metadata(world, settings=S):
    """The World as a controller with [metadata] configured loads it."""
    return dataclasses.replace(world, settings=Settings(metadata=settings))


def fabric_with(world, settings=S):
    world = with_metadata(world, settings)
    return FakeFabric(world, {n.id: compile_node(world, n).flows for n in world.nodes.values()})


@pytest.fixture
def two_tenants():
    """The same fixed IP in two tenants' networks, one VM on each node."""
    red, blue = net("red", seg=101, project="p-red"), net("blue", seg=102, project="p-blue")
    a = port(red, H1, 5, "fa:16:3e:00:00:0a", VM_IP)
    b = port(blue, H2, 7, "fa:16:3e:00:00:0b", VM_IP)
    w = make_world([H1, H2], [red, blue], [a, b])
    w = dataclasses.replace(w, metadata_indexes={a.id: 5, b.id: 6})
    return w, a, b


def test_requests_leave_from_the_ports_own_address(two_tenants):
    w, a, b = two_tenants
    fab = fabric_with(w)
    out = fab.send(H1.id, 5, tcp(a.mac, "fa:16:3e:99:99:99", VM_IP, "169.254.169.254", 40000, 80))
    assert [(n, p) for n, p, _ in out] == [(H1.id, UPLINK)]
    pkt = out[0][2]
    assert (pkt["ipv4_src"], pkt["ipv4_dst"], pkt["tcp_src"], pkt["tcp_dst"]) == \
        ("100.64.0.5", S.proxy_ip, 40000, S.proxy_port)
    assert (pkt["eth_src"], pkt["eth_dst"], pkt["vlan_vid"]) == (source_mac(5), S.proxy_mac, 0)
    out = fab.send(H2.id, 7, tcp(b.mac, "fa:16:3e:99:99:99", VM_IP, "169.254.169.254", 40000, 80))
    assert [(n, p, x["ipv4_src"]) for n, p, x in out] == [(H2.id, UPLINK, "100.64.0.6")]


def test_replies_reach_only_the_port_that_asked(two_tenants):
    w, a, b = two_tenants
    fab = fabric_with(w)
    reply = tcp(S.proxy_mac, source_mac(5), S.proxy_ip, "100.64.0.5", S.proxy_port, 40000)
    out = fab.send(H1.id, UPLINK, reply)
    assert [(n, p) for n, p, _ in out] == [(H1.id, 5)]
    pkt = out[0][2]
    assert (pkt["ipv4_src"], pkt["tcp_src"], pkt["ipv4_dst"], pkt["tcp_dst"]) == \
        ("169.254.169.254", 80, VM_IP, 40000)
    assert (pkt["eth_dst"], pkt["eth_src"]) == (a.mac, METADATA_MAC)
    # b's address arriving at a's node, or anything else from the uplink: dropped.
    assert fab.send(H1.id, UPLINK, dict(reply, ipv4_dst="100.64.0.6")) == []
    assert fab.send(H1.id, UPLINK, dict(reply, tcp_src=22)) == []
    assert fab.send(H1.id, UPLINK, dict(reply, ipv4_src="172.31.0.9")) == []


def test_arp_is_answered_on_both_sides(two_tenants):
    w, a, _b = two_tenants
    fab = fabric_with(w)
    out = fab.send(H1.id, 5, arp_req(a.mac, VM_IP, "169.254.169.254"))
    assert [(n, p) for n, p, _ in out] == [(H1.id, 5)]
    assert (out[0][2]["arp_op"], out[0][2]["arp_sha"], out[0][2]["arp_spa"], out[0][2]["eth_dst"]) == \
        (2, METADATA_MAC, "169.254.169.254", a.mac)
    # The proxy host resolving a port's source address: only that port's node answers.
    ask = arp_req(S.proxy_mac, S.proxy_ip, "100.64.0.5")
    out = fab.send(H1.id, UPLINK, ask)
    assert [(n, p) for n, p, _ in out] == [(H1.id, UPLINK)]
    assert (out[0][2]["arp_sha"], out[0][2]["arp_spa"], out[0][2]["arp_tpa"]) == \
        (source_mac(5), "100.64.0.5", S.proxy_ip)
    assert fab.send(H2.id, UPLINK, ask) == []
    assert fab.send(H1.id, UPLINK, dict(ask, arp_tpa="100.64.0.9")) == []


def test_only_http_to_the_metadata_address_from_the_ports_ip_is_redirected(two_tenants):
    w, a, _b = two_tenants
    fab = fabric_with(w)
    other_port = fab.send(H1.id, 5, tcp(a.mac, BCAST, VM_IP, "169.254.169.254", 40000, 8080))
    assert all(p != UPLINK for _n, p, _ in other_port)
    spoofed = fab.send(H1.id, 5, tcp(a.mac, BCAST, "10.0.0.99", "169.254.169.254", 40000, 80))
    assert spoofed == []                                  # port security
    # Without settings (metadata off), no flow mentions the uplink.
    off = compile_node(w, H1).flows
    assert not [f for f in off if ("in_port", UPLINK) in f.match or ("output", UPLINK) in f.actions]


def test_admin_down_or_unplugged_ports_are_not_redirected(two_tenants):
    w, a, b = two_tenants
    down = dataclasses.replace(a, admin_state_up=False)
    w2 = dataclasses.replace(w, ports={a.id: down, b.id: b})
    flows = compile_metadata(with_metadata(w2), H1)
    assert not [f for f in flows if ("output", UPLINK) in f.actions]
    no_index = dataclasses.replace(w, metadata_indexes={})
    assert not [f for f in compile_metadata(with_metadata(no_index), H1) if ("output", UPLINK) in f.actions]


def test_addresses_round_trip_and_bounds():
    assert address_of(1) == "100.64.0.1" and address_of(300) == "100.64.1.44"
    assert index_of("100.64.1.44") == 300 and index_of("100.64.0.0") is None
    assert index_of("100.128.0.0") is None and index_of("10.0.0.1") is None
    assert index_of("not an ip") is None
    assert max_index("127.0.0.0/24") == 254 and index_of("127.0.0.255", "127.0.0.0/24") is None
    with pytest.raises(ValueError):
        address_of(0)
    assert source_mac(5) == "fe:64:00:00:00:05" and source_mac(2**22) == "fe:64:00:40:00:00"
    assert primary_ipv4(["10.0.0.20", "fd00::5", "10.0.0.3"]) == "10.0.0.3"
    assert primary_ipv4(["fd00::5"]) is None


def test_indexes_are_stable_lowest_free_and_bounded():
    got = assign_indexes({}, {"b", "a", "c"}, {"a", "b", "c"})
    assert got == {"a": 1, "b": 2, "c": 3}
    # "b" is gone: its index is free again; "a" and "c" keep theirs.
    got = assign_indexes(got, {"a", "c", "d"}, {"a", "c", "d"})
    assert got == {"a": 1, "c": 3, "d": 2}
    # Unplugged but still existing ports keep their index.
    assert assign_indexes(got, set(), {"a", "c", "d"}) == got
    # A tiny range runs out: the rest get nothing.
    assert assign_indexes({}, {"a", "b", "c"}, {"a", "b", "c"}, "127.0.0.0/30") == {"a": 1, "b": 2}


def test_load_world_allocates_and_frees_indexes_in_the_db(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/q.db")
    db.upgrade()
    cfg = config.from_dict({"metadata.proxy_address": S.proxy_ip, "metadata.proxy_mac": S.proxy_mac})
    old = Runtime._current
    Runtime.set_current(Runtime(cfg=cfg, db=db))
    try:
        with db.write() as s:
            s.add(m.Node(id="n1", hostname="hv1", bridges={"br-int": 1}))
            s.add(m.Network(id="net", project_id="p", network_type="gre", segmentation_id=1))
            s.add(m.Subnet(id="sub", project_id="p", network_id="net", ip_version=4, cidr="10.0.0.0/24"))
            s.flush()
            for i, pid in enumerate(["p1", "p2", "dhcp"]):
                s.add(m.Port(id=pid, project_id="p", network_id="net", mac_address=f"fa:16:3e:00:00:0{i}",
                             device_owner="network:dhcp" if pid == "dhcp" else "compute:nova",
                             host_id="hv1", vif_type="ovs", ofport=5 + i))
                s.flush()
                s.add(m.IPAllocation(subnet_id="sub", ip_address=f"10.0.0.{10 + i}", port_id=pid,
                                     network_id="net"))
        w = db.run_in_transaction(load_world)
        assert w.metadata_indexes == {"p1": 1, "p2": 2}          # not the DHCP port
        assert w.settings.metadata == S                            # the running configuration's
        with db.read() as s:
            assert {r.port_id: r.address_index for r in s.query(m.MetadataAddress)} == {"p1": 1, "p2": 2}
        assert db.run_in_transaction(load_world).metadata_indexes == {"p1": 1, "p2": 2}
        with db.write() as s:
            s.delete(s.get(m.Port, "p1"))
        assert db.run_in_transaction(load_world).metadata_indexes == {"p2": 2}
    finally:
        Runtime._current = old
        db.dispose()


def test_the_uplink_ofport_is_not_taken_by_another_patch():
    assert UPLINK not in (t.INT_PATCH_TUN_OFPORT, *[t.int_patch_phys_ofport(i) for i in range(8)])
