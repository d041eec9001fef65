"""Port binding decisions (controller/apps/port_binding.py) on a real SQLite
database: what gets bound, refused, unbound, and what a resync leaves alone."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from controller.apps import port_binding
from controller.apps.port_binding import NodeInfo, Vif
from controller.db import models
from controller.db.session import Database

HV1 = NodeInfo("n1", "hv1", "gre", "172.31.0.1", {"physnet1": "br-eth1"})
HV2 = NodeInfo("n2", "hv2", "gre", "172.31.0.2", {"physnet1": "br-eth1"})
P1 = "11111111-aaaa-4000-8000-000000000001"
P2 = "22222222-bbbb-4000-8000-000000000002"
MAC1, MAC2 = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"


@pytest.fixture
def db(tmp_path):
    d = Database(f"sqlite:///{tmp_path}/t.db")
    models.Base.metadata.create_all(d.engine)
    with d.write() as s:
        s.add(models.Network(id="net-gre", project_id="p", network_type="gre", segmentation_id=5))
        s.add(models.Network(id="net-vlan9", project_id="p", network_type="vlan",
                             physical_network="physnet9", segmentation_id=9))
        s.add(models.Port(id=P1, project_id="p", network_id="net-gre", mac_address=MAC1))
        s.add(models.Port(id=P2, project_id="p", network_id="net-gre", mac_address=MAC2))
    yield d
    d.dispose()


def vif(port_id, mac, ofport=5, iface=None, with_id=True):
    return Vif(iface or "tap" + port_id[:11], ofport, port_id if with_id else None, mac)


def sync(db, node, vifs, plugged=None, unplugged=None):
    return db.run_in_transaction(port_binding.sync, node, {v.iface: v for v in vifs},
                                 plugged, unplugged)


def port(db, pid):
    """The port's columns, read in a session of its own."""
    from types import SimpleNamespace
    with db.read() as s:
        p = s.get(models.Port, pid)
        return SimpleNamespace(**{c.key: getattr(p, c.key) for c in models.Port.__table__.columns})


def test_plug_binds_with_a_changelog_row(db):
    v = vif(P1, MAC1)
    r = sync(db, HV1, [v], plugged=[v], unplugged=[])
    assert r.changed == [P1]
    p = port(db, P1)
    assert (p.host_id, p.ofport, p.vif_type, p.revision_number) == ("hv1", 5, "ovs", 1)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(models.ChangeLog)
                        .where(models.ChangeLog.resource_id == P1)) == 1
    assert sync(db, HV1, [v]).changed == []             # nothing to do twice


def test_wrong_mac_is_refused_with_the_reason(db):
    v = vif(P1, "fa:16:3e:99:99:99")
    r = sync(db, HV1, [v])
    assert r.changed == [] and "fa:16:3e:99:99:99" in r.refused[v.iface][1]
    assert port(db, P1).vif_type == "unbound"


def test_missing_attached_mac_is_refused(db):
    v = vif(P1, None)
    assert "attached-mac" in sync(db, HV1, [v]).refused[v.iface][1]


def test_network_the_node_cannot_carry_is_refused(db):
    with db.write() as s:
        s.get(models.Port, P2).network_id = "net-vlan9"
    v = vif(P2, MAC2)
    assert "physnet9" in sync(db, HV1, [v]).refused[v.iface][1]
    vx = NodeInfo("n3", "hv3", "vxlan", "172.31.0.3", {})
    v1 = vif(P1, MAC1)
    assert "gre" in sync(db, vx, [v1]).refused[v1.iface][1]


def test_unknown_port_is_waited_for(db):
    v = vif("33333333-cccc-4000-8000-000000000003", MAC1)
    assert sync(db, HV1, [v]).waiting == {v.iface: v.port_id}


def test_interfaces_that_can_never_be_bound_are_not_waited_for(db):
    # No iface-id, no tap name: waiting for them made the monitor re-read the
    # whole node every 5 s.
    assert sync(db, HV1, [Vif("patch-tun", 1)]).waiting == {}


def test_tap_name_fallback(db):
    v = vif(P2, MAC2, with_id=False)
    assert sync(db, HV1, [v]).changed == [P2]
    assert port(db, P2).host_id == "hv1"


def test_unplug_unbinds_and_sets_down(db):
    v = vif(P1, MAC1)
    sync(db, HV1, [v])
    with db.write() as s:
        s.get(models.Port, P1).status = "ACTIVE"
    r = sync(db, HV1, [], plugged=[], unplugged=[v])
    assert r.changed == [P1]
    p = port(db, P1)
    assert (p.host_id, p.ofport, p.vif_type, p.status) == ("", None, "unbound", "DOWN")


def test_a_move_takes_the_port_and_the_old_unplug_leaves_it(db):
    old, new = vif(P1, MAC1, ofport=5), vif(P1, MAC1, ofport=7)
    sync(db, HV1, [old])
    sync(db, HV2, [new], plugged=[new], unplugged=[])
    sync(db, HV1, [], plugged=[], unplugged=[old])    # hv1 unplugs after the move
    p = port(db, P1)
    assert (p.host_id, p.ofport) == ("hv2", 7)


def test_resync_does_not_steal_but_clears_stale(db):
    sync(db, HV2, [vif(P1, MAC1)])                     # bound on hv2
    sync(db, HV1, [vif(P2, MAC2)])                     # bound on hv1
    # hv1 resyncs: it still shows P1 (stale tap) but no longer P2.
    r = sync(db, HV1, [vif(P1, MAC1, iface="tapstale0001")])
    assert port(db, P1).host_id == "hv2"
    assert port(db, P2).host_id == "" and r.changed == [P2]


def test_unbind_host(db):
    sync(db, HV1, [vif(P1, MAC1), vif(P2, MAC2, ofport=6)])
    assert sorted(db.run_in_transaction(port_binding.unbind_host, "hv1")) == sorted([P1, P2])
    assert port(db, P1).host_id == port(db, P2).host_id == ""
