"""The DHCP packet-in app's logic without a switch: a real database (SQLite and PostgreSQL)
with the model rows, the app's `handle()` given raw client frames. Shows the
facts come from the DB, changes published on the bus are served on the very
next request, and drops are counted by reason."""
from __future__ import annotations

import pytest
from scapy.layers.dhcp import BOOTP
from scapy.layers.l2 import Ether

from controller import config
from controller.apps.dhcp import DhcpResponder, TokenBucket
from controller.db import models as m
from controller.db.session import Database
from controller.events import Change
from controller.flows import cookies
from controller.runtime import Runtime
from tests.unit.test_dhcp_helpers import VM_MAC, client_frame, scapy_options

DPID, OFPORT = 0xA1, 7
VM_ID = "8c77dea8-0d1f-4c3a-9a55-000000000001"
PREFIX = cookies.decode(cookies.cookie("port", VM_ID))[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request, tmp_path):
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path}/q.db")
    else:
        db = Database(request.getfixturevalue("postgres").new_database())
    db.upgrade()
    rt = Runtime(cfg=config.from_dict({"dhcp.packet_in_rate": 5, "dhcp.lease_duration": 3600,
                                       "dhcp.dns_domain": "example.org"}), db=db)
    Runtime.set_current(rt)
    with db.write() as s:
        s.add(m.Node(id="n1", hostname="hv1", bridges={"br-int": DPID, "br-tun": DPID + 1}))
        s.add(m.Network(id="net1", project_id="p", network_type="gre", segmentation_id=5, mtu=1458))
        s.add(m.Subnet(id="sub1", project_id="p", network_id="net1", ip_version=4,
                       cidr="10.0.0.0/24", gateway_ip="10.0.0.1", dns_nameservers=["192.0.2.53"]))
        s.flush()
        s.add(m.Port(id="dhcp1", project_id="p", network_id="net1", mac_address="fa:16:3e:00:00:02",
                     device_owner="network:dhcp"))
        s.add(m.Port(id=VM_ID, project_id="p", network_id="net1", mac_address=VM_MAC,
                     device_owner="compute:nova", host_id="hv1", vif_type="ovs", ofport=OFPORT))
        s.flush()
        s.add(m.IPAllocation(subnet_id="sub1", ip_address="10.0.0.2", port_id="dhcp1", network_id="net1"))
        s.add(m.IPAllocation(subnet_id="sub1", ip_address="10.0.0.5", port_id=VM_ID, network_id="net1"))
    a = DhcpResponder()
    yield a
    rt.bus.unsubscribe(a._on_changes)
    db.dispose()


def test_answers_from_the_database(app):
    frame = app.handle(DPID, OFPORT, PREFIX, client_frame("discover"))
    o = scapy_options(frame)
    assert Ether(frame)[BOOTP].yiaddr == "10.0.0.5"
    assert o["server_id"] == "10.0.0.2" and o["router"] == "10.0.0.1"
    assert o["interface-mtu"] == 1458 and o["lease_time"] == 3600 and o["domain"] == b"example.org"
    assert Ether(frame).src == "fa:16:3e:00:00:02"
    ack = app.handle(DPID, OFPORT, PREFIX, client_frame(
        "request", options=[("server_id", "10.0.0.2"), ("requested_addr", "10.0.0.5"),
                            ("hostname", b"vm1")]))
    assert scapy_options(ack)["message-type"] == 5
    assert app.replies == {"offer": 1, "ack": 1}
    lease = app.recent_leases()[-1]
    assert (lease["port_id"], lease["mac"], lease["ip"], lease["hostname"], lease["network_id"]) == \
        (VM_ID, VM_MAC, "10.0.0.5", "vm1", "net1")


def test_published_changes_are_served_on_the_next_request(app):
    assert scapy_options(app.handle(DPID, OFPORT, PREFIX, client_frame()))["name_server"] == "192.0.2.53"
    with app.rt.db.write() as s:
        s.get(m.Subnet, "sub1").dns_nameservers = ["198.51.100.7"]
        a = s.get(m.IPAllocation, ("sub1", "10.0.0.5"))
        s.delete(a)
        s.flush()
        s.add(m.IPAllocation(subnet_id="sub1", ip_address="10.0.0.9", port_id=VM_ID, network_id="net1"))
    # Not published yet: the cached answer stands (that is what the cache is for).
    assert scapy_options(app.handle(DPID, OFPORT, PREFIX, client_frame()))["name_server"] == "192.0.2.53"
    app.rt.bus.publish([Change("subnet", "sub1")])
    frame = app.handle(DPID, OFPORT, PREFIX, client_frame())
    assert scapy_options(frame)["name_server"] == "198.51.100.7"
    assert Ether(frame)[BOOTP].yiaddr == "10.0.0.9"
    nak = app.handle(DPID, OFPORT, PREFIX, client_frame("request", ciaddr="10.0.0.5", src="10.0.0.5",
                                                        dst="10.0.0.2"))
    assert scapy_options(nak)["message-type"] == 6
    assert app.recent_leases()[-1]["type"] == "nak"


def test_drops_are_counted_by_reason(app):
    assert app.handle(DPID, OFPORT, PREFIX, b"\x00" * 20) is None
    assert app.handle(DPID, OFPORT + 1, PREFIX, client_frame()) is None           # no such port
    assert app.handle(DPID + 5, OFPORT, PREFIX, client_frame()) is None           # unknown switch
    assert app.handle(DPID, OFPORT, "ffffffff-ffff-ff", client_frame()) is None   # stale punt flow
    assert app.counters["dropped_not_ipv4"] == 1
    assert app.counters["dropped_unknown_port"] == 3


def test_disabled_dhcp_is_not_answered(app):
    with app.rt.db.write() as s:
        s.get(m.Subnet, "sub1").enable_dhcp = False
    app.rt.bus.publish([Change("subnet", "sub1")])
    assert app.handle(DPID, OFPORT, PREFIX, client_frame()) is None
    assert app.counters["no_reply_dhcp_disabled"] == 1


def test_one_miss_loads_every_port_of_the_switch(app):
    """After a flush, the first request loads the facts of all the switch's
    ports at once; the next port to ask is answered from the cache."""
    vm2, mac2 = "8c77dea8-0d1f-4c3a-9a55-000000000002", "fa:16:3e:00:00:22"
    vm3 = "8c77dea8-0d1f-4c3a-9a55-000000000003"
    with app.rt.db.write() as s:
        s.add(m.Network(id="net2", project_id="p", network_type="gre", segmentation_id=6, mtu=1400))
        s.add(m.Network(id="net3", project_id="p", network_type="gre", segmentation_id=7))   # no DHCP port
        s.add(m.Subnet(id="sub2", project_id="p", network_id="net2", ip_version=4,
                       cidr="10.2.0.0/24", gateway_ip=None))
        s.flush()
        s.add(m.Port(id="dhcp2", project_id="p", network_id="net2", mac_address="fa:16:3e:00:00:12",
                     device_owner="network:dhcp"))
        s.add(m.Port(id=vm2, project_id="p", network_id="net2", mac_address=mac2,
                     device_owner="compute:nova", host_id="hv1", vif_type="ovs", ofport=OFPORT + 1))
        s.add(m.Port(id=vm3, project_id="p", network_id="net3", mac_address="fa:16:3e:00:00:33",
                     device_owner="compute:nova", host_id="hv1", vif_type="ovs", ofport=OFPORT + 2))
        s.add(m.IPAllocation(subnet_id="sub2", ip_address="10.2.0.2", port_id="dhcp2", network_id="net2"))
        s.add(m.IPAllocation(subnet_id="sub2", ip_address="10.2.0.9", port_id=vm2, network_id="net2"))
    app.rt.bus.publish([Change("port", vm2)])
    assert Ether(app.handle(DPID, OFPORT, PREFIX, client_frame("discover")))[BOOTP].yiaddr == "10.0.0.5"
    prefix2 = cookies.decode(cookies.cookie("port", vm2))[1]
    frame2 = app.handle(DPID, OFPORT + 1, prefix2, client_frame("discover", mac=mac2))
    assert app.counters["cache_miss"] == 1
    o = scapy_options(frame2)
    assert Ether(frame2)[BOOTP].yiaddr == "10.2.0.9" and o["server_id"] == "10.2.0.2"
    assert o["interface-mtu"] == 1400 and "router" not in o
    # A port whose network has no DHCP port gets no answer, from the same load.
    prefix3 = cookies.decode(cookies.cookie("port", vm3))[1]
    assert app.handle(DPID, OFPORT + 2, prefix3, client_frame("discover", mac="fa:16:3e:00:00:33")) is None
    assert app.counters["cache_miss"] == 1


def test_token_bucket_limits_each_port_separately(app):
    results = [app.handle(DPID, OFPORT, PREFIX, client_frame()) for _ in range(30)]
    assert app.counters["rate_limited"] >= 20          # 5/s with a burst of 5
    assert any(results)
    # another port's bucket is untouched (it has no DB row: counted as unknown, not limited)
    app.handle(DPID, OFPORT + 1, PREFIX, client_frame())
    assert app.counters["dropped_unknown_port"] == 1


def test_token_bucket_refills():
    b = TokenBucket(rate=2, burst=2, now=0.0)
    assert [b.take(0.0) for _ in range(3)] == [True, True, False]
    assert b.take(0.5) and not b.take(0.5)
    assert b.take(10.0) and b.take(10.0) and not b.take(10.0)


class FakeDatapath:
    """Just enough of an os-ken Datapath to build and record messages."""

    def __init__(self, dpid):
        from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser
        self.id, self.ofproto, self.ofproto_parser = dpid, ofproto_v1_3, ofproto_v1_3_parser
        self.sent = []

    def send_msg(self, msg):
        self.sent.append(msg)

    def send(self, buf: bytes):
        """Raw bytes (the DHCP reply's packet-out), recorded like os-ken's message."""
        from types import SimpleNamespace
        from controller.openflow import wire
        port, data = int.from_bytes(buf[28:32], "big"), buf[wire._PACKET_OUT.size:]
        assert buf == wire.packet_out_bytes(port, data)       # one output action, nothing else
        self.sent.append(SimpleNamespace(in_port=int.from_bytes(buf[12:16], "big"),
                                         actions=[SimpleNamespace(port=port)], data=data))


def _packet_in(dp, data, table=21, cookie=None, in_port=OFPORT):
    from os_ken.controller import ofp_event
    p = dp.ofproto_parser
    msg = p.OFPPacketIn(dp, buffer_id=dp.ofproto.OFP_NO_BUFFER, total_len=len(data),
                        reason=dp.ofproto.OFPR_ACTION, table_id=table,
                        cookie=cookies.cookie("port", VM_ID) if cookie is None else cookie,
                        match=p.OFPMatch(in_port=in_port), data=data)
    return ofp_event.EventOFPPacketIn(msg)


@pytest.fixture
def dispatcher(app):
    """The one packet-in observer (controller/apps/packet_in.py), routing to `app`."""
    from os_ken.base import app_manager
    from controller.apps.packet_in import PacketInDispatcher
    app_manager.register_app(app)
    yield PacketInDispatcher()
    app_manager.unregister_app(app)


def test_packet_in_handler_sends_the_reply_out_of_the_ingress_port(app, dispatcher):
    dp = FakeDatapath(DPID)
    dispatcher._on_packet_in(_packet_in(dp, client_frame("discover")))
    assert len(dp.sent) == 1
    out = dp.sent[0]
    assert [a.port for a in out.actions] == [OFPORT]
    assert out.in_port == dp.ofproto.OFPP_CONTROLLER
    assert scapy_options(out.data)["message-type"] == 2


def test_other_packet_ins_are_left_alone(app, dispatcher):
    dp = FakeDatapath(DPID)
    dispatcher._on_packet_in(_packet_in(dp, client_frame(), table=20))                   # not the DHCP table
    dispatcher._on_packet_in(_packet_in(dp, client_frame(), cookie=cookies.cookie("router", VM_ID)))
    assert dp.sent == [] and not app.counters
    assert dispatcher.packet_ins == {"action": 2}        # counted all the same (metrics)


def test_a_hostile_packet_in_never_raises(app, dispatcher):
    from controller.apps import guard
    errors_before = dict(guard.handler_errors)
    dp = FakeDatapath(DPID)
    for data in (b"", b"\xff" * 3000, client_frame()[:200]):
        dispatcher._on_packet_in(_packet_in(dp, data))
    assert dp.sent == []
    assert app.counters == {"dropped_truncated_ethernet": 1, "dropped_too_big": 1,
                            "dropped_truncated_ip": 1}
    assert guard.handler_errors == errors_before


def test_router_packet_ins_go_to_l3_arp_on_the_worker_and_a_full_queue_drops(app, monkeypatch):
    """Router packet-ins never run in the switch's receive thread (they may
    wait for the database); the worker hands them to L3Arp, and when it falls
    behind, the bounded queue drops and counts."""
    import threading
    import time
    from os_ken.base import app_manager
    from controller.apps import packet_in

    release, seen = threading.Event(), []

    class L3Arp(app_manager.OSKenApp):          # stands in for controller.apps.l3_arp
        def on_packet_in(self, msg, prefix):
            seen.append((prefix, threading.current_thread().name))
            release.wait(10)

    monkeypatch.setattr(packet_in, "ROUTER_QUEUE", 2)
    arp = L3Arp()
    app_manager.register_app(arp)
    dispatcher = packet_in.PacketInDispatcher()
    try:
        dp = FakeDatapath(DPID)
        router = cookies.cookie("router", VM_ID)
        dispatcher._on_packet_in(_packet_in(dp, client_frame(), cookie=router))
        deadline = time.monotonic() + 5         # until the worker took the first (and is held there)
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [(PREFIX, "packet-in-router")]
        for _ in range(3):                      # two fit in the queue, the third is dropped
            dispatcher._on_packet_in(_packet_in(dp, client_frame(), cookie=router))
        assert dispatcher.router_dropped == 1 and dispatcher.packet_ins == {"action": 4}
    finally:
        release.set()
        dispatcher.close()
        app_manager.unregister_app(arp)
