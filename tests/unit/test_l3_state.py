"""The router app's state: the router-only World it reloads at every ARP
retry equals the whole World where it matters, and the resolved gateway MACs
survive a restart (database round trip); the migrations give the models."""
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from controller.db import models as m
from controller.model import neighbours
from controller.model.router_snapshot import load_router_world
from controller.model.snapshot import load_world


@pytest.fixture(autouse=True)
def empty_cache():
    neighbours.forget_all()
    yield
    neighbours.forget_all()


def _id():
    return str(uuid.uuid4())


def _port(s, net, sub, ip, mac, **kw):
    p = m.Port(id=_id(), project_id="p", network_id=net.id, mac_address=mac, **kw)
    s.add(p)
    s.flush()
    s.add(m.IPAllocation(subnet_id=sub.id, ip_address=ip, port_id=p.id, network_id=net.id))
    return p


def topology(db):
    """gw node + compute node, ext 192.0.2.0/24 (gateway .1), two private
    networks behind router r, VM ports, one network no router touches."""
    ids = {}
    with db.write() as s:
        gw = m.Node(id=_id(), hostname="gw", role="compute,gateway", tunnel_ip="198.51.100.1",
                    bridge_mappings={"public": "br-ex"}, bridges={"br-int": 1, "br-ex": 2})
        hv = m.Node(id=_id(), hostname="hv", role="compute", tunnel_ip="198.51.100.2",
                    bridges={"br-int": 3, "br-tun": 4})
        ext = m.Network(id=_id(), project_id="admin", network_type="flat", physical_network="public",
                        mtu=1500, external=True)
        nets = [m.Network(id=_id(), project_id="p", network_type="gre", segmentation_id=10 + i,
                          mtu=1458) for i in range(3)]
        s.add_all([gw, hv, ext, *nets])
        s.flush()
        ext_sub = m.Subnet(id=_id(), project_id="admin", network_id=ext.id, ip_version=4,
                           cidr="192.0.2.0/24", gateway_ip="192.0.2.1", enable_dhcp=False)
        subs = [m.Subnet(id=_id(), project_id="p", network_id=n.id, ip_version=4,
                         cidr=f"10.{i}.0.0/24", gateway_ip=f"10.{i}.0.1") for i, n in enumerate(nets)]
        s.add_all([ext_sub, *subs])
        s.flush()
        r = m.Router(id=_id(), project_id="p")
        s.add(r)
        s.flush()
        gwp = _port(s, ext, ext_sub, "192.0.2.10", "fa:16:3e:00:00:01",
                    device_owner="network:router_gateway", device_id=r.id)
        r.gw_port_id = gwp.id
        for i in (0, 1):
            _port(s, nets[i], subs[i], f"10.{i}.0.1", f"fa:16:3e:00:01:0{i}",
                  device_owner="network:router_interface", device_id=r.id)
            _port(s, nets[i], subs[i], f"10.{i}.0.5", f"fa:16:3e:00:02:0{i}",
                  device_owner="compute:nova", host_id="hv", ofport=7, vif_type="ovs")
        _port(s, nets[2], subs[2], "10.2.0.5", "fa:16:3e:00:03:00", device_owner="compute:nova")
        s.add_all([m.LocalVlan(node_id=gw.id, network_id=ext.id, vlan=1),
                   m.LocalVlan(node_id=gw.id, network_id=nets[0].id, vlan=2),
                   m.LocalVlan(node_id=hv.id, network_id=nets[0].id, vlan=1),
                   m.LocalVlan(node_id=hv.id, network_id=nets[2].id, vlan=2)])
        ids.update(router=r.id, ext=ext.id, unrouted=nets[2].id, gw=gw.id)
    return ids


def test_router_world_has_what_the_router_app_reads(db):
    ids = topology(db)
    neighbours.learn(ids["ext"], "192.0.2.1", "02:00:00:00:00:01")
    with db.read() as s:
        full, small = load_world(s, allocate=False), load_router_world(s)
    assert small.routers == full.routers and small.nodes == full.nodes
    assert small.routers[ids["router"]].gateway.nexthop == "192.0.2.1"
    assert len(small.routers[ids["router"]].interfaces) == 2
    assert small.router_host(ids["router"]) == full.router_host(ids["router"]) == ids["gw"]
    assert small.router_zone(ids["router"]) == full.router_zone(ids["router"])
    assert {p.device_owner for p in small.ports.values()} == {
        "network:router_gateway", "network:router_interface"}
    assert ids["unrouted"] not in small.networks
    assert small.local_vlans == {k: v for k, v in full.local_vlans.items() if k[1] in small.networks}
    assert small.neighbours == full.neighbours == {(ids["ext"], "192.0.2.1"): "02:00:00:00:00:01"}


def test_the_app_finds_a_vm_mac_the_router_world_lacks(db):
    from types import SimpleNamespace
    from controller.apps.l3_arp import L3Arp
    topology(db)
    with db.read() as s:
        world = load_router_world(s)
    net = next(i.network_id for r in world.routers.values() for i in r.interfaces if i.ip == "10.0.0.1")
    app = SimpleNamespace(rt=SimpleNamespace(db=db))
    assert L3Arp._port_mac(app, net, "10.0.0.5") == "fa:16:3e:00:02:00"
    assert L3Arp._port_mac(app, net, "10.0.0.99") is None


def test_gateway_macs_survive_a_restart(db):
    ids = topology(db)
    neighbours.learn(ids["ext"], "192.0.2.1", "02:00:00:00:00:01")
    neighbours.store(db, ids["ext"], "192.0.2.1", "02:00:00:00:00:01")
    neighbours.store(db, ids["ext"], "192.0.2.1", "02:00:00:00:00:AA")      # the gateway changed
    neighbours.forget_all()                                                # the process restarts
    assert neighbours.restore(db) == 1
    assert neighbours.snapshot() == {(ids["ext"], "192.0.2.1"): "02:00:00:00:00:aa"}
    with db.write() as s:                                                  # network deleted
        s.execute(m.Router.__table__.delete())
        for t in (m.IPAllocation, m.Port, m.LocalVlan, m.Subnet):
            s.execute(t.__table__.delete().where(t.__table__.c.network_id == ids["ext"]))
        s.execute(m.Network.__table__.delete().where(m.Network.__table__.c.id == ids["ext"]))
    neighbours.forget_all()
    assert neighbours.restore(db) == 0
    neighbours.store(db, ids["ext"], "192.0.2.1", "02:00:00:00:00:01")     # learnt just before
    assert neighbours.restore(db) == 0


def test_migrations_give_the_models(db):
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), m.Base.metadata) == []
