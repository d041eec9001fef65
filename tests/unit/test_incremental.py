"""The reconciler's incremental path gives what the full path gives: the
NodeCompiler's desired flows equal compile_node's after any sequence of port
changes, and applying only the changed keys to a switch's model leaves it
equal to a full diff's result; refresh_ports equals a whole reload."""
import dataclasses
import uuid

from controller.apps.scheduler import push_for
from controller.apps.switch_session import SwitchState
from controller.flows import tables as t
from controller.flows.compiler import COMPILERS, NodeCompiler, compile_node
from controller.flows.flow import Flow, match
from controller.flows.plan import apply_plan
from controller.model.world import World
from tests.unit.fakeoftable import make_world
from tests.unit.test_flows_l2 import net, node, port

H1, H2 = node("inc-h1", "192.0.2.1"), node("inc-h2", "192.0.2.2")
N1 = net("inc-n1", seg=301)
N2 = net("inc-n2", "vlan", seg=302, physnet="physnet1")


def world_of(ports):
    return make_world([H1, H2], [N1, N2], ports)


def base_ports():
    out = []
    for i in range(6):
        out.append(port(N1 if i % 2 else N2, H1 if i < 4 else H2, 10 + i,
                        f"fa:16:3e:00:01:{i:02x}", f"10.1.0.{10 + i}"))
    return out


def keep_objects(old: World, new: World) -> World:
    """What refresh_ports does: objects of unchanged ports are kept."""
    ports = {pid: (old.ports[pid] if old.ports.get(pid) == p else p) for pid, p in new.ports.items()}
    return dataclasses.replace(new, ports=ports)


def switch(bridge, installed):
    return SwitchState(dp=None, dpid=1, address="test", bridge=bridge, installed=dict(installed))


def by_bridge(flows, bridge):
    return {f.key: f for f in flows if f.bridge == bridge}


def steps():
    ps = base_ports()
    yield ps
    moved = dataclasses.replace(ps[1], ofport=99)                      # re-plugged
    yield [moved if p is ps[1] else p for p in ps]
    down = dataclasses.replace(moved, admin_state_up=False)             # admin down
    yield [down if p is ps[1] else p for p in ps]
    extra = port(N1, H1, 40, "fa:16:3e:00:02:01", "10.1.0.40",
                 allowed_address_pairs=(("10.1.0.41", "fa:16:3e:00:02:02"),))
    yield [down if p is ps[1] else p for p in ps] + [extra]            # a new port
    yield [p for p in ps if p is not ps[0]] + [extra]                  # one deleted
    yield [dataclasses.replace(p, node_id=None, ofport=None) if p.node_id == H2.id else p
           for p in ps] + [extra]                                      # H2 unplugged


def test_incremental_compile_and_diff_equal_the_full_ones():
    nc = NodeCompiler()
    model = {b: {} for b, _ in H1.bridges}
    world = None
    for ports in steps():
        new = world_of(ports)
        world = keep_objects(world, new) if world else new
        before = nc.generation
        compiled, changed = nc.update(world, H1)
        full = compile_node(world, H1)
        assert {f.key: f for f in full.flows} == nc.desired
        for bridge in model:
            sw = switch(bridge, model[bridge])
            sw.synced = (nc, before)
            plan = push_for(sw, nc, True, changed).make_plan()
            sw.installed, sw.meters = apply_plan(plan, sw.installed, sw.meters)
            assert sw.installed == by_bridge(full.flows, bridge), bridge
            # nothing left for a full diff to do
            assert push_for(switch(bridge, sw.installed), nc, True, None).make_plan().nothing_to_do
            model[bridge] = sw.installed
    assert nc.full_rebuilds == 1       # only the first round compared everything


def test_unchanged_world_changes_only_unmemoized_flows():
    world = world_of(base_ports())
    nc = NodeCompiler()
    nc.update(world, H1)
    _, changed = nc.update(dataclasses.replace(world, ports=dict(world.ports)), H1)
    # Only flows rebuilt every round (skeleton, per-network) are re-offered; no port flows.
    port_flows = {f.key for f in compile_node(world, H1).flows
                  if f.match and dict(f.match).get("in_port") in {p.ofport for p in world.ports_on(H1.id)}}
    assert changed is not None and not changed & port_flows


def test_a_key_clash_falls_back_to_first_wins():
    clash = Flow("br-int", int(t.IntTable.CLASSIFY), t.PRIO_MISS, (), (("goto", 99),), 1)

    def compile_clash(world, node):
        return [clash] if len(world.ports) > 6 else []

    compilers = COMPILERS + [compile_clash]
    nc = NodeCompiler(compilers)
    world = world_of(base_ports())
    nc.update(world, H1)
    extra = port(N1, H1, 40, "fa:16:3e:00:02:01", "10.1.0.40")
    w2 = dataclasses.replace(world, ports={**world.ports, extra.id: extra})
    compiled, changed = nc.update(w2, H1)
    assert changed is None             # compare everything this round
    assert nc.desired == {f.key: f for f in compile_node(w2, H1, compilers).flows}
    assert nc.desired[clash.key] != clash          # the pipeline's miss flow came first
    _, changed = nc.update(world, H1)              # the clash goes away
    assert nc.desired == {f.key: f for f in compile_node(world, H1, compilers).flows}


def test_lists_with_shared_duplicated_and_moved_objects_match_the_full_compile():
    """NodeCompiler diffs each compiler's list by its changed middle and
    counts objects across lists: random edits of memoized-looking lists
    (objects shared by two compilers, repeated in one, moved, value-equal
    copies, key clashes) always leave what compile_node gives."""
    import random
    rnd = random.Random(4)
    pool = [Flow("br-int", 10, 100, match(reg5=i % 40), (("goto", 20 + i % 3),), i) for i in range(60)]
    state = {"a": pool[:20], "b": pool[10:30]}

    def comp_a(world, node):
        return state["a"]

    def comp_b(world, node):
        return state["b"]

    nc = NodeCompiler([comp_a, comp_b])
    world = world_of([])
    for step in range(400):
        name = rnd.choice("ab")
        items = list(state[name])
        op = rnd.randrange(6)
        if op == 0 and items:
            del items[rnd.randrange(len(items))]
        elif op == 1:
            items.insert(rnd.randrange(len(items) + 1), rnd.choice(pool))
        elif op == 2 and items:                # a value-equal copy, a new object
            i = rnd.randrange(len(items))
            items[i] = dataclasses.replace(items[i])
        elif op == 3 and len(items) > 1:       # moved
            items.insert(rnd.randrange(len(items)), items.pop(rnd.randrange(len(items))))
        elif op == 4:
            items.append(items[0] if items else pool[0])     # twice in one list
        state[name] = items if op != 5 else state[name]     # 5: the very same list again
        before = dict(nc.desired)
        compiled, changed = nc.update(world, H1)
        full = {f.key: f for f in compile_node(world, H1, [comp_a, comp_b]).flows}
        assert nc.desired == full, step
        if changed is not None:                 # every key whose flow changed is reported
            assert {k for k in full.keys() | before.keys()
                    if full.get(k) is not before.get(k)} <= changed, step


def test_a_failing_compiler_makes_the_result_incomplete():
    def broken(world, node):
        raise RuntimeError("bug")

    nc = NodeCompiler(COMPILERS + [broken])
    world = world_of(base_ports())
    compiled, changed = nc.update(world, H1)
    assert not compiled.complete and changed is None
    job = push_for(switch("br-int", {}), nc, compiled.complete, changed)
    assert job.synced_to is None       # the next round diffs everything again


# --- the snapshot ------------------------------------------------------------

def test_refresh_ports_equals_a_whole_reload(db):
    from controller.db import models as m
    from controller.model.snapshot import allocate, allocation_needed, load_world, refresh_ports
    with db.write() as s:
        s.add(m.Node(id=str(uuid.uuid4()), hostname="hv-a", role="compute", tunnel_ip="192.0.2.9",
                     tunnel_type="gre", bridges={"br-int": 1, "br-tun": 2}))
        n = m.Network(id=str(uuid.uuid4()), project_id="p", name="n", network_type="gre",
                      segmentation_id=7, mtu=1450, admin_state_up=True)
        s.add(n)
        s.flush()
        sub = m.Subnet(id=str(uuid.uuid4()), project_id="p", network_id=n.id, ip_version=4,
                       cidr="10.9.0.0/24", enable_dhcp=False)
        s.add(sub)
        s.flush()
        ids = []
        for i in range(3):
            p = m.Port(id=str(uuid.uuid4()), project_id="p", network_id=n.id,
                       mac_address=f"fa:16:3e:00:09:{i:02x}")
            s.add(p)
            s.flush()
            s.add(m.IPAllocation(subnet_id=sub.id, ip_address=f"10.9.0.{i + 5}", port_id=p.id,
                                 network_id=n.id))
            ids.append(p.id)
    with db.read() as s:
        world = load_world(s, allocate=False)
    with db.write() as s:                 # bind one port, delete another
        s.get(m.Port, ids[0]).host_id = "hv-a"
        s.get(m.Port, ids[0]).ofport = 5
        s.get(m.Port, ids[0]).vif_type = "ovs"
        s.delete(s.get(m.Port, ids[2]))
    with db.read() as s:
        fresh = refresh_ports(s, world, {ids[0], ids[2]})
        whole = load_world(s, allocate=False)
    assert fresh == whole
    assert fresh.ports[ids[1]] is world.ports[ids[1]]      # untouched objects kept
    assert allocation_needed(fresh, {ids[0]})               # the first port of n on hv-a
    fresh = db.run_in_transaction(allocate, fresh)
    with db.write() as s:
        assert fresh == load_world(s)
    assert not allocation_needed(fresh, {ids[0]})


def test_with_ports_patches_the_indexes_to_what_a_new_world_builds():
    import random
    rnd = random.Random(1)
    hosts = [H1, H2, node("inc-h3", "192.0.2.3")]
    nets = [N1, N2]
    ports: dict = {}
    world = World(nodes={h.id: h for h in hosts}, networks={n.id: n for n in nets}, ports={})
    world.ports_on(H1.id), world.ports_of_network(N1.id), world.nodes_of_network(N1.id)  # built
    for step in range(500):
        ids = set()
        for _ in range(rnd.randrange(1, 4)):
            i = rnd.randrange(40)
            p = port(rnd.choice(nets), rnd.choice(hosts + [None]), rnd.randrange(1, 30),
                     f"fa:16:3e:00:00:{i:02x}", f"10.0.0.{i + 2}")
            ids.add(p.id)
            if rnd.random() < 0.2:
                ports.pop(p.id, None)
            else:
                ports[p.id] = p
        new = world.with_ports(dict(ports), ids)
        fresh = World(nodes=world.nodes, networks=world.networks, ports=dict(ports))
        for h in hosts:
            assert new.ports_on(h.id) == fresh.ports_on(h.id), step
        for n in nets:
            assert new.ports_of_network(n.id) == fresh.ports_of_network(n.id), step
            assert new.nodes_of_network(n.id) == fresh.nodes_of_network(n.id), step
        assert new._plugged_by_network == fresh._plugged_by_network, step
        world = new


def test_port_status_follows_the_confirmed_nodes(db):
    """The reconciler's status write: ACTIVE for bound admin-up ports of a
    confirmed node, DOWN for unbound VM ports, candidates of an unconfirmed
    node kept for later; its change-log rows are remembered as its own."""
    from controller.apps.port_status import PortStatusWriter
    from controller.db import models as m
    from controller.events import ChangeBus
    from controller.model.snapshot import load_world
    with db.write() as s:
        s.add(m.Node(id=str(uuid.uuid4()), hostname="hv-s", role="compute", tunnel_ip="192.0.2.8",
                     tunnel_type="gre", bridges={"br-int": 1}))
        n = m.Network(id=str(uuid.uuid4()), project_id="p", name="n", network_type="gre",
                      segmentation_id=8, mtu=1450, admin_state_up=True)
        s.add(n)
        s.flush()
        ids = [str(uuid.uuid4()) for _ in range(3)]
        for i, pid in enumerate(ids):
            s.add(m.Port(id=pid, project_id="p", network_id=n.id, mac_address=f"fa:16:3e:00:08:{i:02x}",
                         device_owner="compute:nova", status="ACTIVE" if i == 2 else "DOWN",
                         host_id="hv-s" if i < 2 else "", vif_type="ovs" if i < 2 else "unbound",
                         ofport=i + 1 if i < 2 else None))
    with db.read() as s:
        world = load_world(s, allocate=False)
    node_id = next(iter(world.nodes))
    published = []
    bus = ChangeBus()
    bus.subscribe(published.extend)
    writer = PortStatusWriter(db, bus)
    writer.update(world, set(), {ids[0], ids[2]})
    assert writer.pending == {ids[0]}           # its node is not confirmed yet
    writer.update(world, {node_id}, {ids[0]} | writer.pending)
    with db.read() as s:
        status = {p.id: (p.status, p.revision_number) for p in s.query(m.Port)}
        logged = {r.revision: r.resource_id for r in s.query(m.ChangeLog)}
    assert status[ids[0]][0] == "ACTIVE" and status[ids[1]][0] == "DOWN" and status[ids[2]][0] == "DOWN"
    assert {logged[r] for r in writer.own_revisions} == {ids[0], ids[2]}
    assert sorted(c.id for c in published) == sorted([ids[0], ids[2]])
    writer.update(world, {node_id}, None)    # everything: ids[1] too
    with db.read() as s:
        assert s.get(m.Port, ids[1]).status == "ACTIVE"
        assert s.get(m.Port, ids[0]).revision_number == status[ids[0]][1]   # unchanged: not written
