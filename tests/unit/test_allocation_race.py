"""Two controllers on one PostgreSQL allocating the same local VLAN at once
(found in the failover lab test: 'duplicate key value violates unique
constraint local_vlans_pkey' failed a reconcile round). The second insert
waits for the first transaction, meets the primary key when it commits, and
allocate_stored retries: it re-reads the stored row and keeps it."""
import threading
import uuid

import pytest
from sqlalchemy.exc import IntegrityError

from controller.db import models as m
from controller.db.session import Database
from controller.model.snapshot import allocate, allocate_stored, allocation_needed, load_world

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_controllers(postgres):
    url = postgres.new_database()
    a, b = Database(url), Database(url)
    a.upgrade()
    yield a, b
    a.dispose()
    b.dispose()


def seed_bound_port(db) -> None:
    with db.write() as s:
        s.add(m.Node(id=str(uuid.uuid4()), hostname="hv-a", role="compute", tunnel_ip="192.0.2.9",
                     tunnel_type="gre", bridges={"br-int": 1, "br-tun": 2}))
        n = m.Network(id=str(uuid.uuid4()), project_id="p", name="n", network_type="gre",
                      segmentation_id=7, mtu=1450, admin_state_up=True)
        s.add(n)
        s.flush()
        s.add(m.Port(id=str(uuid.uuid4()), project_id="p", network_id=n.id, host_id="hv-a",
                     ofport=5, vif_type="ovs", mac_address="fa:16:3e:00:09:01"))


def race(a, b, allocate_b):
    """A allocates and holds its transaction open while B allocates the same
    pair; A commits; -> (B's world or the exception B raised)."""
    with a.read() as s:
        world = load_world(s, allocate=False)
    assert allocation_needed(world)
    out = {}

    def controller_b():
        try:
            out["world"] = allocate_b(b, world)
        except Exception as e:          # noqa: BLE001 (the test reports it)
            out["error"] = e

    with a.write() as s:
        world_a = allocate(s, world)
        t = threading.Thread(target=controller_b)
        t.start()
        t.join(0.5)                     # B now waits on A's uncommitted row
    t.join(30)
    return world_a, out


def test_the_same_pair_allocated_by_two_controllers_at_once(two_controllers):
    a, b = two_controllers
    seed_bound_port(a)
    world_a, out = race(a, b, allocate_stored)
    assert "error" not in out, out
    assert out["world"].local_vlans == world_a.local_vlans
    assert list(world_a.local_vlans.values()) == [1]
    with b.read() as s:
        assert load_world(s, allocate=False).local_vlans == world_a.local_vlans


def test_without_the_retry_the_second_controller_fails(two_controllers):
    # What allocate_stored guards against (the round failed before).
    a, b = two_controllers
    seed_bound_port(a)
    _world_a, out = race(a, b, lambda db, w: db.run_in_transaction(allocate, w))
    assert isinstance(out.get("error"), IntegrityError)
