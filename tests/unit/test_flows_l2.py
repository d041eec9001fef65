"""The compiled L2 pipeline, checked by sending packets through a fake flow
table of several nodes (tests/unit/fakeoftable.py)."""
import dataclasses
import uuid

import pytest

from controller.flows import cookies
from controller.flows import tables as t
from controller.flows.compiler import compile_node
from controller.model.world import NetworkInfo, NodeInfo, PortInfo
from tests.unit.fakeoftable import DEFAULT_SG, FakeTable, compile_all, fabric, make_world

BCAST = "ff:ff:ff:ff:ff:ff"


def node(name, ip, mappings=(("physnet1", "br-eth1"),)):
    bridges = {"br-int": 1, "br-tun": 2}
    bridges.update({b: 3 + i for i, (_p, b) in enumerate(mappings)})
    return NodeInfo(id=str(uuid.uuid5(uuid.NAMESPACE_DNS, "node-" + name)), hostname=name, role="compute", tunnel_ip=ip,
                    tunnel_type="gre", bridge_mappings=tuple(mappings),
                    bridges=tuple(sorted(bridges.items())))


def net(name, typ="gre", seg=101, physnet=None, up=True, project="p1"):
    return NetworkInfo(id=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), project_id=project,
                       network_type=typ, physical_network=physnet, segmentation_id=seg,
                       mtu=1458, admin_state_up=up)


def port(network, node_, ofport, mac, ip, **kw):
    """A VM port; with port security it is in the default group (as the API
    makes it), unless sgs=(...) says otherwise."""
    ps = kw.get("ps", True)
    kw.setdefault("security_groups", kw.pop("sgs", (DEFAULT_SG,) if ps else ()))
    return PortInfo(id=str(uuid.uuid5(uuid.NAMESPACE_DNS, mac)), network_id=network.id,
                    project_id=network.project_id, mac=mac, fixed_ips=(("sub", ip),),
                    device_owner="compute:nova", device_id="vm", admin_state_up=kw.pop("up", True),
                    port_security_enabled=kw.pop("ps", True),
                    node_id=node_.id if node_ else None, ofport=ofport if node_ else None, **kw)


def ip_pkt(src_mac, dst_mac, src_ip, dst_ip):
    return {"eth_src": src_mac, "eth_dst": dst_mac, "eth_type": 0x0800,
            "ipv4_src": src_ip, "ipv4_dst": dst_ip, "ip_proto": 1}


def arp_req(src_mac, src_ip, target_ip):
    return {"eth_src": src_mac, "eth_dst": BCAST, "eth_type": 0x0806, "arp_op": 1,
            "arp_sha": src_mac, "arp_spa": src_ip, "arp_tha": "00:00:00:00:00:00",
            "arp_tpa": target_ip}


def delivered(out):
    return sorted((n, p) for n, p, _pkt in out)


def at(*pairs):
    return sorted(pairs)


H1, H2, H3 = node("hv1", "172.31.0.1"), node("hv2", "172.31.0.2"), node("hv3", "172.31.0.3")


@pytest.fixture(params=["gre", "vlan", "flat"])
def mode(request):
    return request.param


def mknet(mode, name="n1", seg=101, **kw):
    if mode == "gre":
        return net(name, "gre", seg, **kw)
    if mode == "vlan":
        return net(name, "vlan", seg, physnet="physnet1", **kw)
    return net(name, "flat", None, physnet="physnet1", **kw)


def test_same_host_and_cross_host_unicast(mode):
    n = mknet(mode)
    a = port(n, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n, H1, 6, "fa:16:3e:00:00:02", "10.0.0.2")
    c = port(n, H2, 5, "fa:16:3e:00:00:03", "10.0.0.3")
    w = make_world([H1, H2, H3], [n], [a, b, c])
    fab = fabric(w)
    out = fab.send(H1.id, 5, ip_pkt(a.mac, b.mac, "10.0.0.1", "10.0.0.2"))
    assert delivered(out) == at((H1.id, 6))
    assert out[0][2]["vlan_vid"] == 0          # VMs get untagged frames
    out = fab.send(H1.id, 5, ip_pkt(a.mac, c.mac, "10.0.0.1", "10.0.0.3"))
    assert delivered(out) == at((H2.id, 5))
    assert out[0][2]["vlan_vid"] == 0
    out = fab.send(H2.id, 5, ip_pkt(c.mac, a.mac, "10.0.0.3", "10.0.0.1"))
    assert delivered(out) == at((H1.id, 5))


def test_broadcast_reaches_every_port_of_the_network_once(mode):
    n = mknet(mode)
    a = port(n, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n, H1, 6, "fa:16:3e:00:00:02", "10.0.0.2")
    c = port(n, H2, 5, "fa:16:3e:00:00:03", "10.0.0.3")
    w = make_world([H1, H2, H3], [n], [a, b, c])
    pkt = dict(ip_pkt(a.mac, BCAST, "10.0.0.1", "10.0.0.255"))
    assert delivered(fabric(w).send(H1.id, 5, pkt)) == at((H1.id, 6), (H2.id, 5))


def test_gre_broadcast_goes_only_to_hosts_of_the_network():
    n1, n2 = net("n1", seg=101), net("n2", seg=102)
    a = port(n1, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n1, H2, 5, "fa:16:3e:00:00:02", "10.0.0.2")
    c = port(n2, H3, 5, "fa:16:3e:00:00:03", "10.0.0.3")
    w = make_world([H1, H2, H3], [n1, n2], [a, b, c])
    flows = compile_node(w, H1).flows
    flood = [f for f in flows if f.bridge == "br-tun" and f.table == t.TunTable.TO_TUNNEL and f.priority == 1]
    assert len(flood) == 1
    assert [a_[2] for a_ in flood[0].actions if a_[:2] == ("set_field", "tun_ipv4_dst")] == ["172.31.0.2"]
    # unicast to a known MAC is one tunnel output to exactly its host
    uni = [f for f in flows if f.bridge == "br-tun" and ("eth_dst", b.mac) in f.match]
    assert [a_ for a_ in uni[0].actions if a_[0] == "set_field"] == [
        ("set_field", "tunnel_id", 101), ("set_field", "tun_ipv4_dst", "172.31.0.2")]


def test_networks_are_isolated_even_with_overlapping_cidrs(mode):
    n1 = mknet(mode, "n1", 101, project="p1")
    n2 = mknet(mode, "n2", 102, project="p2") if mode != "flat" else net(
        "n2", "flat", None, physnet="physnet2", project="p2")
    hosts = [node(h.hostname, h.tunnel_ip, (("physnet1", "br-eth1"), ("physnet2", "br-eth2")))
             for h in (H1, H2)]
    a = port(n1, hosts[0], 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n1, hosts[1], 5, "fa:16:3e:00:00:02", "10.0.0.2")
    x = port(n2, hosts[0], 6, "fa:16:3e:00:00:11", "10.0.0.2")   # same IP as b, other tenant
    y = port(n2, hosts[1], 6, "fa:16:3e:00:00:12", "10.0.0.1")
    w = make_world(hosts, [n1, n2], [a, b, x, y])
    fab = fabric(w)
    assert delivered(fab.send(hosts[0].id, 5, ip_pkt(a.mac, BCAST, "10.0.0.1", "10.0.0.255"))) == [(hosts[1].id, 5)]
    assert delivered(fab.send(hosts[0].id, 6, ip_pkt(x.mac, BCAST, "10.0.0.2", "10.0.0.255"))) == [(hosts[1].id, 6)]
    # unicast to the other network's MAC goes nowhere
    assert delivered(fab.send(hosts[0].id, 5, ip_pkt(a.mac, y.mac, "10.0.0.1", "10.0.0.1"))) == []
    # ARP for 10.0.0.2 is answered with the MAC of the port in the asker's own network
    out = fab.send(hosts[0].id, 5, arp_req(a.mac, "10.0.0.1", "10.0.0.2"))
    assert delivered(out) == [(hosts[0].id, 5)] and out[0][2]["arp_sha"] == b.mac
    out = fab.send(hosts[0].id, 6, arp_req(x.mac, "10.0.0.2", "10.0.0.1"))
    assert delivered(out) == [(hosts[0].id, 6)] and out[0][2]["arp_sha"] == y.mac


def test_arp_responder_builds_a_correct_reply():
    n = net("n1")
    a = port(n, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n, H2, 5, "fa:16:3e:00:00:02", "10.0.0.2")
    dhcp = port(n, None, None, "fa:16:3e:00:00:aa", "10.0.0.100")   # lives in the controller
    out = fabric(make_world([H1, H2], [n], [a, b, dhcp])).send(H1.id, 5, arp_req(a.mac, "10.0.0.1", "10.0.0.100"))
    assert delivered(out) == at((H1.id, 5))
    r = out[0][2]
    assert (r["eth_src"], r["eth_dst"], r["arp_op"]) == (dhcp.mac, a.mac, 2)
    assert (r["arp_sha"], r["arp_spa"], r["arp_tha"], r["arp_tpa"]) == (dhcp.mac, "10.0.0.100", a.mac, "10.0.0.1")


def test_arp_for_own_address_is_not_answered():
    n = net("n1")
    a = port(n, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n, H1, 6, "fa:16:3e:00:00:02", "10.0.0.2")
    pkt = arp_req(a.mac, "0.0.0.0", "10.0.0.1")      # RFC 5227 probe
    out = fabric(make_world([H1], [n], [a, b])).send(H1.id, 5, pkt)
    assert delivered(out) == at((H1.id, 6))            # flooded, nobody answers for it


def test_port_security_drops_spoofed_mac_and_ip():
    n = net("n1")
    a = port(n, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n, H1, 6, "fa:16:3e:00:00:02", "10.0.0.2")
    fab = fabric(make_world([H1], [n], [a, b]))
    assert delivered(fab.send(H1.id, 5, ip_pkt(a.mac, b.mac, "10.0.0.1", "10.0.0.2"))) == at((H1.id, 6))
    assert delivered(fab.send(H1.id, 5, ip_pkt(a.mac, b.mac, "10.0.0.9", "10.0.0.2"))) == []
    assert delivered(fab.send(H1.id, 5, ip_pkt("fa:16:3e:00:00:99", b.mac, "10.0.0.1", "10.0.0.2"))) == []
    spoof_arp = arp_req(a.mac, "10.0.0.9", "10.0.0.7")
    assert delivered(fab.send(H1.id, 5, spoof_arp)) == []
    tagged = dict(ip_pkt(a.mac, b.mac, "10.0.0.1", "10.0.0.2"), vlan_vid=0x1000 | 7)
    assert delivered(fab.send(H1.id, 5, tagged)) == []


def test_dhcp_discover_from_unconfigured_client_passes_port_security():
    n = net("n1")
    a = port(n, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n, H1, 6, "fa:16:3e:00:00:02", "10.0.0.2")
    disc = {"eth_src": a.mac, "eth_dst": BCAST, "eth_type": 0x0800, "ipv4_src": "0.0.0.0",
            "ipv4_dst": "255.255.255.255", "ip_proto": 17, "udp_src": 68, "udp_dst": 67}
    assert delivered(fabric(make_world([H1], [n], [a, b])).send(H1.id, 5, disc)) == at((H1.id, 6))
    other_udp = dict(disc, udp_dst=53)
    assert delivered(fabric(make_world([H1], [n], [a, b])).send(H1.id, 5, other_udp)) == []


def test_allowed_address_pairs_and_port_security_disabled():
    n = net("n1")
    a = port(n, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1",
             allowed_address_pairs=(("10.0.0.50", "fa:16:3e:00:00:01"), ("10.1.0.0/24", "fa:16:3e:00:00:51")))
    b = port(n, H2, 6, "fa:16:3e:00:00:02", "10.0.0.2")
    c = port(n, H1, 7, "fa:16:3e:00:00:03", "10.0.0.3", ps=False)
    d = port(n, H2, 8, "fa:16:3e:00:00:04", "10.0.0.4", ps=False)
    fab = fabric(make_world([H1, H2], [n], [a, b, c, d]))
    assert delivered(fab.send(H1.id, 5, ip_pkt(a.mac, b.mac, "10.0.0.50", "10.0.0.2"))) == at((H2.id, 6))
    assert delivered(fab.send(H1.id, 5, ip_pkt("fa:16:3e:00:00:51", b.mac, "10.1.0.9", "10.0.0.2"))) == at((H2.id, 6))
    assert delivered(fab.send(H1.id, 5, ip_pkt("fa:16:3e:00:00:51", b.mac, "10.2.0.9", "10.0.0.2"))) == []
    # the pair's MAC is delivered to the port, from another host too
    assert delivered(fab.send(H2.id, 6, ip_pkt(b.mac, "fa:16:3e:00:00:51", "10.0.0.2", "10.1.0.9"))) == at((H1.id, 5))
    # without port security any source goes (to a port that filters nothing either:
    # b's default group admits only its members)
    assert delivered(fab.send(H1.id, 7, ip_pkt("02:00:00:00:00:99", d.mac, "192.0.2.1", "10.0.0.4"))) == at((H2.id, 8))
    assert delivered(fab.send(H1.id, 7, ip_pkt("02:00:00:00:00:99", b.mac, "192.0.2.1", "10.0.0.2"))) == []


def test_admin_state_down_port_and_network_stop_traffic(mode):
    n = mknet(mode)
    a = port(n, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n, H2, 5, "fa:16:3e:00:00:02", "10.0.0.2", up=False)
    c = port(n, H1, 6, "fa:16:3e:00:00:03", "10.0.0.3")
    fab = fabric(make_world([H1, H2], [n], [a, b, c]))
    assert delivered(fab.send(H1.id, 5, ip_pkt(a.mac, b.mac, "10.0.0.1", "10.0.0.2"))) == []
    assert delivered(fab.send(H2.id, 5, ip_pkt(b.mac, a.mac, "10.0.0.2", "10.0.0.1"))) == []
    assert delivered(fab.send(H1.id, 5, ip_pkt(a.mac, BCAST, "10.0.0.1", "10.0.0.255"))) == at((H1.id, 6))
    down = dataclasses.replace(n, admin_state_up=False)
    b_up = dataclasses.replace(b, admin_state_up=True)
    fab = fabric(make_world([H1, H2], [down], [a, b_up, c]))
    assert delivered(fab.send(H1.id, 5, ip_pkt(a.mac, c.mac, "10.0.0.1", "10.0.0.3"))) == []
    assert delivered(fab.send(H1.id, 5, ip_pkt(a.mac, b.mac, "10.0.0.1", "10.0.0.2"))) == []


def test_local_network_stays_on_its_host():
    n = net("n1", "local", None)
    a = port(n, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n, H1, 6, "fa:16:3e:00:00:02", "10.0.0.2")
    c = port(n, H2, 5, "fa:16:3e:00:00:03", "10.0.0.3")
    w = make_world([H1, H2], [n], [a, b, c])
    fab = fabric(w)
    assert delivered(fab.send(H1.id, 5, ip_pkt(a.mac, BCAST, "10.0.0.1", "10.0.0.255"))) == at((H1.id, 6))
    assert delivered(fab.send(H1.id, 5, ip_pkt(a.mac, c.mac, "10.0.0.1", "10.0.0.3"))) == []
    assert not [f for f in compile_node(w, H1).flows if f.bridge != "br-int"
                and f.cookie == cookies.cookie("network", n.id)]


def test_vlan_network_uses_the_provider_tag_on_the_wire_only():
    n = net("n1", "vlan", 333, physnet="physnet1")
    other = net("n0", "gre", 5)
    z = port(other, H1, 4, "fa:16:3e:00:00:09", "10.9.0.1")   # takes local VLAN 1 on hv1
    a = port(n, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n, H2, 5, "fa:16:3e:00:00:02", "10.0.0.2")
    w = make_world([H1, H2], [n, other], [z, a, b])
    w.local_vlans[(H1.id, n.id)], w.local_vlans[(H1.id, other.id)] = 7, 8   # local VLANs differ per host
    eth1 = [f for f in compile_node(w, H1).flows if f.bridge == "br-eth1" and f.priority == 4]
    assert eth1[0].actions[0] == ("set_field", "vlan_vid", 0x1000 | 333)
    assert delivered(fabric(w).send(H1.id, 5, ip_pkt(a.mac, b.mac, "10.0.0.1", "10.0.0.2"))) == at((H2.id, 5))


def test_every_flow_has_one_of_our_cookies_and_canonical_actions(mode):
    n = mknet(mode)
    a = port(n, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n, H2, 5, "fa:16:3e:00:00:02", "10.0.0.2")
    for flows in compile_all(make_world([H1, H2], [n], [a, b])).values():
        for f in flows:
            assert cookies.is_ours(f.cookie)
            ops = [a_[0] for a_ in f.actions]
            if "goto" in ops:
                assert ops[-1] == "goto"
            if "write_metadata" in ops:
                assert ops.index("write_metadata") >= len(ops) - 2


def test_a_change_then_its_revert_gives_the_same_table():
    n = net("n1")
    a = port(n, H1, 5, "fa:16:3e:00:00:01", "10.0.0.1")
    b = port(n, H2, 5, "fa:16:3e:00:00:02", "10.0.0.2")
    c = port(n, H1, 6, "fa:16:3e:00:00:03", "10.0.0.3")
    before = make_world([H1, H2], [n], [a, b])
    after = make_world([H1, H2], [n], [a, b, c])
    tables = {}
    for step, w in (("before", before), ("after", after), ("reverted", before)):
        for nd in (H1, H2):
            tbl = tables.setdefault(nd.id, FakeTable())
            desired = {(f.table, f.priority, f.match): f for f in compile_node(w, nd).flows}
            tbl.delete([f for k, f in list(tbl.flows.items()) if k not in desired])
            tbl.apply(desired.values())
        if step == "before":
            first = {k: v.snapshot() for k, v in tables.items()}
        if step == "after":
            assert {k: v.snapshot() for k, v in tables.items()} != first
    assert {k: v.snapshot() for k, v in tables.items()} == first
