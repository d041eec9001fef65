"""The switch session's write gate (controller/apps/switch_session.py
WriteGate, mastership's place): a switch this controller may not write to gets no flow_mod,
meter_mod, bundle message or packet-out from any path, while reads go on."""
from types import SimpleNamespace

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.apps import switch_session
from controller.apps.scheduler import push_for
from controller.apps.switch_session import WRITE_GATE, SwitchSession
from controller.flows.compiler import NodeCompiler
from controller.flows.flow import Flow, Meter, match


class FakeDatapath:
    """Records what is written; answers barriers and bundle commits at once."""

    def __init__(self, dpid, session):
        self.id, self.xid, self.address = dpid, 0, ("test", 0)
        self.ofproto, self.ofproto_parser = ofp, parser
        self.session, self.raw, self.msgs = session, [], []

    def set_xid(self, msg):
        self.xid += 1
        msg.set_xid(self.xid)
        return self.xid

    def send(self, data: bytes):
        self.raw.append(data)

    def send_msg(self, msg):
        self.msgs.append(msg)
        if isinstance(msg, (parser.OFPBarrierRequest, parser.ONFBundleCtrlMsg)):
            self.session.answered(SimpleNamespace(datapath=self, xid=msg.xid))


def flows(n):
    return [Flow("br-int", 0, 10, match(in_port=i + 1), (("output", 1),), 0x0300000000000001)
            for i in range(n)]


class Compiled:
    """What NodeCompiler offers the planner: desired flows and meters."""

    def __init__(self, fl, meters=()):
        self.desired = {f.key: f for f in fl}
        self.meters = {(x.bridge, x.meter_id): x for x in meters}
        self.generation = 1


@pytest.fixture
def session():
    s = SwitchSession()
    yield s
    WRITE_GATE.allow(0xAB)
    WRITE_GATE.policy = None


def connect(session):
    dp = FakeDatapath(0xAB, session)
    session.connected(dp)
    sw = session.switches[dp.id]
    sw.bridge, sw.installed, sw.meters = "br-int", {}, {}
    return dp, sw


def test_a_master_switch_gets_the_plan(session):
    dp, sw = connect(session)
    want = Compiled(flows(3), [Meter("br-int", 1, 10, 5)])
    assert session.push([push_for(sw, want, True)]) == {0xAB: True}
    assert len(dp.raw) == 1 and len(sw.installed) == 3 and set(sw.meters) == {1}
    assert any(isinstance(m, parser.OFPMeterMod) for m in dp.msgs)
    assert session.flow_mods_sent == 3


def test_no_write_reaches_a_switch_once_mastership_is_lost(session):
    dp, sw = connect(session)
    WRITE_GATE.deny(dp.id)
    want = Compiled(flows(40), [Meter("br-int", 1, 10, 5)])     # 40: a bundle
    assert session.push([push_for(sw, want, True)]) == {0xAB: False}
    assert dp.raw == [] and dp.msgs == [] and sw.installed == {}
    assert not switch_session.send(dp, b"packet-out")            # DHCP replies, ARP requests
    assert not switch_session.send_msg(dp, parser.OFPPacketOut(dp, ofp.OFP_NO_BUFFER, ofp.OFPP_CONTROLLER,
                                                               [], b"x"))
    assert dp.raw == [] and dp.msgs == []
    # reads are not writes: a query still goes out
    session.query(lambda d: parser.OFPTableStatsRequest(d, 0), timeout=0.01)
    assert isinstance(dp.msgs[-1], parser.OFPTableStatsRequest)
    WRITE_GATE.allow(dp.id)
    assert session.push([push_for(sw, want, True)]) == {0xAB: True}
    assert len(sw.installed) == 40


def test_a_node_compiler_plans_through_push_for(session):
    """push_for plans from the NodeCompiler's generation (what the scheduler passes)."""
    _, sw = connect(session)
    nc = NodeCompiler([lambda world, node: flows(2)])
    nc.update(SimpleNamespace(), None)
    job = push_for(sw, nc, True)
    assert job.synced_to == (nc, nc.generation)
    assert len(job.make_plan().adds) == 2


def test_a_policy_closes_the_gate_for_the_switches_it_names(session):
    """What HA plugs in: a predicate over dpids (e.g. 'our lease holds')."""
    dp, sw = connect(session)
    WRITE_GATE.policy = lambda dpid: dpid != 0xAB
    assert session.push([push_for(sw, Compiled(flows(2)), True)]) == {0xAB: False}
    assert not switch_session.send(dp, b"packet-out") and dp.raw == []
    WRITE_GATE.policy = lambda dpid: True
    assert session.push([push_for(sw, Compiled(flows(2)), True)]) == {0xAB: True}
