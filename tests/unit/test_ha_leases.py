"""Mastership leases (controller/ha) on real PostgreSQL with several
"controllers" (threads, each with its own engine and connections) writing at
once, and on SQLite (one controller).

The safety property checked throughout: for every node, the intervals in
which each controller believed it was master (from the moment it got the
lease until its local deadline or the moment it dropped it) never overlap,
and each new holder has a larger generation than every earlier one."""
from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import delete, insert

from controller.db import models as m
from controller.db.session import Database
from controller.ha import placement
from controller.ha.leases import LeaseStore
from controller.ha.mastership import Mastership


class Recorder:
    """Belief intervals of every controller: (node, controller, gen, start, end)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.intervals: list[list] = []
        self.open: dict[tuple[str, str], list] = {}

    def listener(self, ms: "RecordingMastership"):
        rec = self

        class L:
            def gained(self, node_id, generation):
                with rec.lock:
                    iv = [node_id, ms.me, generation, time.monotonic(), None]
                    rec.open[(ms.me, node_id)] = iv
                    rec.intervals.append(iv)

            def lost(self, node_id):
                pass        # the end is set by RecordingMastership._drop
        return L()

    def close(self, me, node_id, end):
        with self.lock:
            iv = self.open.pop((me, node_id), None)
            if iv is not None:
                iv[4] = end

    def check(self):
        now = time.monotonic()
        by_node: dict[str, list] = {}
        for node, ctl, gen, start, end in self.intervals:
            by_node.setdefault(node, []).append((start, end if end is not None else now, ctl, gen))
        for node, ivs in by_node.items():
            ivs.sort()
            for (s1, e1, c1, g1), (s2, e2, c2, g2) in zip(ivs, ivs[1:]):
                assert g2 > g1, f"node {node}: generation {g2} of {c2} after {g1} of {c1}"
                assert s2 >= e1, f"node {node}: {c2} master from {s2} while {c1} until {e1}"
        return by_node


class RecordingMastership(Mastership):
    recorder: Recorder

    def _drop(self, node_id, why):
        with self._lock:
            until = self._valid_until.get(node_id)
        if until is not None:
            self.recorder.close(self.me, node_id, min(until, self.clock()))
        super()._drop(node_id, why)


def make_controller(url, name, recorder, duration, join_delay=0.0):
    db = Database(url)
    ms = RecordingMastership(LeaseStore(db, name, duration), join_delay=join_delay)
    ms.recorder = recorder
    ms.listener = recorder.listener(ms)
    return db, ms


def add_nodes(db, n, prefix="hv"):
    ids = []
    with db.write() as s:
        for i in range(n):
            node = m.Node(hostname=f"{prefix}{i}", role="compute")
            s.add(node)
            s.flush()
            ids.append(node.id)
    return ids


class Ticker(threading.Thread):
    """A controller process: ticks every `interval`; `pause()` stops it like
    SIGSTOP for a while, `kill()` for ever."""

    def __init__(self, ms, interval):
        super().__init__(daemon=True)
        self.ms, self.interval = ms, interval
        self.stop = threading.Event()
        self.pause_s = 0.0
        self.errors: list[BaseException] = []

    def run(self):
        try:
            while not self.stop.is_set():
                if self.pause_s:
                    time.sleep(self.pause_s)
                    self.pause_s = 0.0
                self.ms.tick()
                time.sleep(self.interval)
        except BaseException as e:      # noqa: BLE001 - reported by the test
            self.errors.append(e)

    def kill(self):
        self.stop.set()
        self.join(10)
        # A dead process believes nothing: what it held ends at its deadline.
        with self.ms._lock:
            held = dict(self.ms._valid_until)
        for node_id, until in held.items():
            self.ms.recorder.close(self.ms.me, node_id, min(until, time.monotonic()))


def wait_for(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.fixture
def pg_url(postgres):
    url = postgres.new_database()
    db = Database(url)
    db.upgrade()
    db.dispose()
    return url


def holders(mss):
    return {n: ms.me for ms in mss for n in ms.held()}


# --- the store itself ----------------------------------------------------------------


def test_concurrent_acquire_of_one_free_lease_has_one_winner(pg_url):
    dbs = [Database(pg_url) for _ in range(6)]
    stores = [LeaseStore(db, f"c{i}", duration=0.2) for i, db in enumerate(dbs)]
    [node] = add_nodes(dbs[0], 1)
    gens = []
    try:
        for _round in range(15):
            start = threading.Barrier(len(stores))
            won: list = []

            def race(store):
                start.wait()
                lease = store.acquire(node)
                if lease is not None:
                    won.append(lease)

            threads = [threading.Thread(target=race, args=(st,)) for st in stores]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(won) == 1, won
            gens.append(won[0].generation)
            time.sleep(0.25)             # the lease expires: next round races again
        assert gens == sorted(gens) and len(set(gens)) == len(gens)
    finally:
        for db in dbs:
            db.dispose()


def test_a_late_renewal_never_wins_back_a_taken_lease(pg_url):
    a_db, b_db = Database(pg_url), Database(pg_url)
    try:
        a, b = LeaseStore(a_db, "a", duration=0.2), LeaseStore(b_db, "b", duration=0.2)
        [node] = add_nodes(a_db, 1)
        la = a.acquire(node)
        assert la and b.acquire(node) is None          # held, not expired
        time.sleep(0.25)
        lb = b.acquire(node)
        assert lb and lb.generation > la.generation
        view = a.beat({node: la.generation})            # a wakes up and renews
        assert node not in view.renewed
        assert view.leases[node].holder == "b" and view.leases[node].generation == lb.generation
        assert not a.release(node, la.generation)       # nor can it give away b's lease
        assert b.beat({node: lb.generation}).renewed == {node: lb.generation}
    finally:
        a_db.dispose()
        b_db.dispose()


def test_generation_grows_for_a_node_whose_lease_row_was_deleted(db):
    store = LeaseStore(db, "solo", duration=5)
    [node] = add_nodes(db, 1)
    first = store.acquire(node)
    with db.write() as s:
        s.execute(delete(m.Mastership))
    again = store.acquire(node)
    assert again.generation > first.generation


def test_generation_never_goes_back_after_a_counter_reset(db):
    store = LeaseStore(db, "solo", duration=0.01)
    [node] = add_nodes(db, 1)
    store.acquire(node)
    store.acquire(node)
    time.sleep(0.02)
    high = store.acquire(node).generation
    with db.write() as s:
        s.execute(delete(m.Generation))
    time.sleep(0.02)
    assert store.acquire(node).generation > high


# --- placement -------------------------------------------------------------------------


def test_placement_spreads_evenly_and_a_join_moves_few_nodes():
    nodes = [f"node-{i}" for i in range(30)]
    two = placement.assign(nodes, ["a", "b"])
    three = placement.assign(nodes, ["a", "b", "c"])
    assert sorted(list(two.values()).count(c) for c in "ab") == [15, 15]
    assert sorted(list(three.values()).count(c) for c in "abc") == [10, 10, 10]
    moved = sum(1 for n in nodes if two[n] != three[n])
    assert moved <= 15           # about a third must move; never everything
    assert placement.assign(nodes, ["b", "a"]) == two      # order-free


# --- controllers ticking ------------------------------------------------------------------


def test_sqlite_single_controller_masters_every_node_and_leaves_cleanly(db):
    rec = Recorder()
    nodes = add_nodes(db, 3)
    ms = RecordingMastership(LeaseStore(db, "solo", duration=1.0), join_delay=0)
    ms.recorder, ms.listener = rec, rec.listener(ms)
    ms.tick()
    assert set(ms.held()) == set(nodes)
    gens = ms.held()
    ms.tick()
    assert ms.held() == gens                    # renewed, same generations
    ms.stop()
    assert ms.held() == {}
    again = RecordingMastership(LeaseStore(db, "solo", duration=1.0), join_delay=0)
    again.recorder, again.listener = rec, rec.listener(again)
    again.tick()                                # released: no wait for the expiry
    assert all(again.held()[n] > gens[n] for n in nodes)
    rec.check()


def test_controllers_share_nodes_and_a_joining_one_gets_its_share(pg_url):
    rec = Recorder()
    made = [make_controller(pg_url, f"ctl-{i}", rec, duration=0.6, join_delay=0.3) for i in range(2)]
    nodes = add_nodes(made[0][0], 12)
    tickers = [Ticker(ms, 0.05) for _db, ms in made]
    try:
        for t in tickers:
            t.start()
        assert wait_for(lambda: len(holders([ms for _d, ms in made])) == 12)
        assert wait_for(lambda: all(len(ms.held()) == 6 for _d, ms in made))
        made.append(make_controller(pg_url, "ctl-2", rec, duration=0.6, join_delay=0.3))
        tickers.append(Ticker(made[-1][1], 0.05))
        tickers[-1].start()
        mss = [ms for _d, ms in made]
        assert wait_for(lambda: sorted(len(ms.held()) for ms in mss) == [4, 4, 4])
        assert set(holders(mss)) == set(nodes)
        assert holders(mss) == placement.assign(nodes, [ms.me for ms in mss])
    finally:
        for t in tickers:
            t.kill()
        for db, _ms in made:
            db.dispose()
    assert not any(t.errors for t in tickers)
    rec.check()


def test_a_killed_controllers_nodes_go_to_the_survivors(pg_url):
    rec = Recorder()
    made = [make_controller(pg_url, f"ctl-{i}", rec, duration=0.5) for i in range(3)]
    nodes = add_nodes(made[0][0], 9)
    tickers = [Ticker(ms, 0.05) for _db, ms in made]
    try:
        for t in tickers:
            t.start()
        mss = [ms for _d, ms in made]
        assert wait_for(lambda: sorted(len(ms.held()) for ms in mss) == [3, 3, 3])
        victim = mss[0]
        before = victim.held()
        tickers[0].kill()                         # SIGKILL: no release, the leases run out
        assert wait_for(lambda: set(holders(mss[1:])) == set(nodes))
        leases = mss[1].store.beat({}, write=False).leases
        for n, g in before.items():
            assert leases[n].holder != victim.me and leases[n].generation > g
    finally:
        for t in tickers:
            t.kill()
        for db, _ms in made:
            db.dispose()
    assert not any(t.errors for t in tickers)
    rec.check()


def test_never_two_masters_while_controllers_pause_and_resume(pg_url):
    """Four controllers tick; at random one pauses (SIGSTOP-like) for longer
    than the lease: the others take its nodes, it wakes up believing nothing,
    and no two believe in the same node at the same time."""
    rec = Recorder()
    made = [make_controller(pg_url, f"ctl-{i}", rec, duration=0.3) for i in range(4)]
    nodes = add_nodes(made[0][0], 8)
    tickers = [Ticker(ms, 0.03) for _db, ms in made]
    rnd = random.Random(17)
    try:
        for t in tickers:
            t.start()
        mss = [ms for _d, ms in made]
        assert wait_for(lambda: len(holders(mss)) == len(nodes))
        for _ in range(12):
            rnd.choice(tickers).pause_s = rnd.choice([0.1, 0.35, 0.6])
            time.sleep(0.4)
        assert wait_for(lambda: len(holders(mss)) == len(nodes))
    finally:
        for t in tickers:
            t.kill()
        for db, _ms in made:
            db.dispose()
    assert not any(t.errors for t in tickers), [t.errors for t in tickers]
    by_node = rec.check()
    # The pauses did move masters around (else the test proved nothing).
    assert sum(len(v) for v in by_node.values()) > len(nodes)


def test_a_paused_holder_stops_believing_before_anyone_takes_over(pg_url):
    rec = Recorder()
    (a_db, a), (b_db, b) = (make_controller(pg_url, n, rec, duration=0.3) for n in ("a", "b"))
    try:
        with a_db.write() as s:
            s.execute(insert(m.Node).values(id="n1", hostname="h1", role="compute", tunnel_type="gre",
                                            ovsdb="", bridge_mappings={}, bridges={}))
        a.tick()
        assert a.generation("n1") is not None
        time.sleep(0.35)                          # a "paused": its lease ran out
        assert a.generation("n1") is None         # the gate closed on its own clock
        b.tick()
        b.tick()
        assert b.generation("n1") is not None
        a.tick()                                  # a wakes: sees it lost
        assert a.generation("n1") is None and a.held() == {}
    finally:
        a_db.dispose()
        b_db.dispose()
    rec.check()


def test_a_holder_stalled_inside_its_transaction_cannot_block_a_takeover(pg_url):
    """A controller paused (SIGSTOP) in the middle of a lease transaction
    keeps its row locks until the server ends its session: half a lease."""
    a_db, b_db = Database(pg_url), Database(pg_url)
    try:
        a, b = LeaseStore(a_db, "a", duration=0.4), LeaseStore(b_db, "b", duration=0.4)
        [node] = add_nodes(a_db, 1)
        held = a.acquire(node)
        stalled = threading.Event()
        resume = threading.Event()

        def stall_in_renewal(s, held_):
            a._beat(s, held_, True)         # the renewal's row lock is taken ...
            stalled.set()
            resume.wait(10)                 # ... and the process stops before COMMIT

        t = threading.Thread(target=lambda: _swallow(a_db.run_in_transaction, stall_in_renewal,
                                                     {node: held.generation}, retries=1))
        t.start()
        stalled.wait(5)
        time.sleep(0.5)                       # a's lease runs out while it is stalled
        taken = []

        def take_over():
            deadline = time.monotonic() + 6
            while not taken and time.monotonic() < deadline:
                lease = _swallow(b.acquire, node)
                if lease:
                    taken.append(lease)
        tb = threading.Thread(target=take_over)
        tb.start()
        tb.join(8)
        still_stalled = not resume.is_set() and t.is_alive()
        resume.set()
        assert taken and still_stalled
        t.join(10)
        assert node not in a.beat({node: held.generation}).renewed
    finally:
        a_db.dispose()
        b_db.dispose()


def _swallow(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except Exception:       # noqa: BLE001 - lock timeouts and the ended session, expected here
        return None


def test_placement_gives_a_node_only_to_a_controller_that_reaches_it():
    nodes = [f"node-{i}" for i in range(6)]
    # c has just started: no switch has reconnected to it yet.
    plan = placement.assign(nodes, ["a", "b", "c"], {"a": set(nodes), "b": set(nodes), "c": set()})
    assert set(plan.values()) == {"a", "b"}
    # Once c reaches them it gets its share.
    plan = placement.assign(nodes, ["a", "b", "c"], {c: set(nodes) for c in "abc"})
    assert sorted(list(plan.values()).count(c) for c in "abc") == [2, 2, 2]
    # A node nobody reaches still has a place (its lease waits for a connection).
    assert set(placement.assign(["lonely"], ["a", "b"], {"a": set(), "b": set()})) == {"lonely"}


def test_a_new_node_waits_for_its_placed_controller_instead_of_moving_twice(pg_url):
    """Switches connect to the controllers one after the other: a node that
    reached only the controller it is not placed on is left alone until its
    placed controller reaches it too (no take-over and hand-over a moment
    later), and taken by the one that reaches it once `join_delay` passed."""
    rec = Recorder()
    made = [make_controller(pg_url, f"ctl-{i}", rec, duration=0.6, join_delay=0.5) for i in range(2)]
    (db, _), mss = made[0], [ms for _d, ms in made]
    try:
        t0 = time.monotonic()
        while time.monotonic() < t0 + 0.6:       # both heartbeat until warm
            for ms in mss:
                ms.tick(set())
            time.sleep(0.05)
        [node] = add_nodes(db, 1)
        placed = max(mss, key=lambda ms: (placement.weight(node, ms.me), ms.me))
        early = next(ms for ms in mss if ms is not placed)
        for _ in range(4):                       # 0.2 s: only `early` reaches the node
            early.tick({node})
            placed.tick(set())
            time.sleep(0.05)
        assert holders(mss) == {}
        deadline = time.monotonic() + 5
        while holders(mss) == {} and time.monotonic() < deadline:
            placed.tick({node})
            early.tick({node})
            time.sleep(0.05)
        assert holders(mss) == {node: placed.me} and early.changes == 0

        [lonely] = add_nodes(db, 1, prefix="lonely")
        t0 = time.monotonic()
        while lonely not in holders(mss) and time.monotonic() < t0 + 5:
            for ms in mss:                       # one controller only ever reaches it
                ms.tick({node, lonely} if ms is early else {node})
            time.sleep(0.05)
        assert holders(mss)[lonely] == early.me and time.monotonic() - t0 >= 0.5
    finally:
        for ms in mss:
            ms.stop()
        for d, _ms in made:
            d.dispose()
    rec.check()
