"""The declared pipeline (controller/flows/tables.py) against what the
compilers produce and what docs/PIPELINE.md says."""
from __future__ import annotations

import dataclasses
import pathlib
import re

import pytest

from controller.flows import tables as t
from controller.flows.compiler import compile_node
from controller.flows.flow import Meter
from controller.model.settings import Settings
from tests.unit import test_dhcp_flows as dhcp
from tests.unit import test_flows_l2 as l2
from tests.unit import test_l3_flows as l3
from tests.unit.fakeoftable import make_world
from tests.unit.test_metadata_flows import S

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "PIPELINE.md"
ALL_STAGES = (t.IntTable, t.TunTable, t.PhysTable)


def worlds():
    """Worlds that make every compiler say something: L2 in each mode (with
    pairs, admin-down ports, metadata), DHCP, routers with SNAT and floating IPs."""
    for mode in ("gre", "vlan", "flat"):
        n = l2.mknet(mode)
        a = l2.port(n, l2.H1, 5, "fa:16:3e:00:00:01", "10.0.0.1",
                    allowed_address_pairs=(("10.1.0.0/24", "fa:16:3e:00:00:51"),))
        b = l2.port(n, l2.H2, 5, "fa:16:3e:00:00:02", "10.0.0.2")
        c = l2.port(n, l2.H2, 6, "fa:16:3e:00:00:03", "10.0.0.3", up=False)
        w = make_world([l2.H1, l2.H2], [n], [a, b, c])
        yield f"l2-{mode}", dataclasses.replace(w, metadata_indexes={a.id: 5, b.id: 6},
                                                settings=Settings(metadata=S))
    yield "dhcp", _dhcp_world()
    for mode in ("gre", "vlan"):
        yield f"l3-{mode}", l3.Topo(mode, gateway=True, fip=True).world
        yield f"l3-{mode}-no-snat", l3.Topo(mode, gateway=True, snat=False).world


def _dhcp_world():
    """test_dhcp_flows' world on a node with a UUID (its cookie needs one)."""
    w, nid = dhcp.world(), "00000000-0000-0000-0000-0000000000d1"
    return dataclasses.replace(
        w, nodes={nid: dataclasses.replace(dhcp.NODE, id=nid)},
        ports={k: dataclasses.replace(p, node_id=nid if p.node_id else None) for k, p in w.ports.items()},
        local_vlans={(nid, net): v for (_n, net), v in w.local_vlans.items()})


def compile_complete(world, node):
    c = compile_node(world, node)
    assert c.complete, f"a compiler failed on {node.hostname}"
    return c.flows


def compiled():
    for name, world in worlds():
        for node in world.nodes.values():
            for f in compile_complete(world, node):
                yield name, f


def _targets(f) -> list[int]:
    """Tables a flow continues in: goto, conntrack recirculation, resubmit."""
    out = []
    for a in f.actions:
        if a[0] == "goto":
            out.append(a[1])
        elif a[0] == "ct" and dict(a[1]).get("table") is not None:
            out.append(dict(a[1])["table"])
        elif a[0] == "resubmit":
            out.append(a[2])
    return out


def test_every_flow_is_in_a_declared_table_and_goes_only_where_its_table_declares():
    seen = set()
    for name, f in compiled():
        stages = t.stages(f.bridge)
        assert f.table in {int(s) for s in stages}, f"{name}: {f} is in an undeclared table"
        table = stages(f.table)
        seen.add((stages, table))
        for target in _targets(f):
            is_miss = f.priority == t.PRIO_MISS and not f.match
            allowed = {int(n) for n in table.next_tables}
            if is_miss:
                assert table.miss != t.DROP and target == int(table.miss), f"{name}: {f}"
            assert target in allowed, (f"{name}: {f} goes to table {target}, not among "
                                       f"{table.name}'s next tables {sorted(allowed)}")
    # Every declared table is in use (a stale declaration would show here).
    for stages in ALL_STAGES:
        assert {(stages, s) for s in stages} <= seen, stages.__name__


def test_every_declared_table_gets_its_declared_miss():
    for name, world in worlds():
        for node in world.nodes.values():
            flows = [f for f in compile_complete(world, node) if not isinstance(f, Meter)]
            for bridge in dict(node.bridges):
                if bridge != "br-int" and bridge != "br-tun" and \
                        bridge not in [b for _p, b in node.bridge_mappings]:
                    continue
                for table in t.stages(bridge):
                    misses = [f for f in flows if f.bridge == bridge and f.table == table
                              and not f.match and f.priority <= 1]
                    assert len(misses) == 1, f"{name} {node.hostname} {bridge} {table.name}"
                    actions = misses[0].actions
                    if table.miss == t.DROP:
                        assert actions == ()
                    elif table.miss == t.NORMAL:
                        assert actions == (("output", "normal"),)
                    else:
                        assert actions == (("goto", int(table.miss)),)


@pytest.mark.parametrize("stages", ALL_STAGES, ids=lambda s: s.__name__)
def test_declarations_are_complete_and_go_forward_only(stages):
    for table in stages:
        assert table.purpose, f"{table.name} has no purpose"
        for nxt in table.next_tables:          # resolves every name
            assert int(nxt) > int(table), f"{table.name} -> {nxt.name}: OpenFlow gotos go forward"
        if isinstance(table.miss, t.Stage):
            assert table.miss in table.next_tables, table.name
        else:
            assert table.miss in (t.DROP, t.NORMAL), table.name


def test_pass_through_glue_follows_the_declarations():
    assert t.INT_PASS_THROUGH == (
        (t.IntTable.ARP_RESPONDER, t.IntTable.DHCP), (t.IntTable.DHCP, t.IntTable.METADATA),
        (t.IntTable.METADATA, t.IntTable.INGRESS_ACL), (t.IntTable.INGRESS_ACL, t.IntTable.L3),
        (t.IntTable.L3, t.IntTable.NAT), (t.IntTable.NAT, t.IntTable.L2_LOOKUP),
        (t.IntTable.EGRESS_ACL, t.IntTable.OUTPUT))


def test_pipeline_doc_lists_the_declared_tables():
    text = DOC.read_text()
    assert t.doc_with_tables(text) == text, \
        "docs/PIPELINE.md is behind: python -m controller.flows.tables docs/PIPELINE.md"


def test_pipeline_doc_names_each_table_by_its_declared_number():
    """The per-flow tables of docs/PIPELINE.md (`| 20 | ARP_RESPONDER | ...`)
    use the declared numbers, and each declared table has its rows there."""
    sections = re.split(r"^## ", DOC.read_text(), flags=re.M)
    for heading, stages in (("br-int", t.IntTable), ("br-tun", t.TunTable)):
        body = next(s for s in sections if s.startswith(heading))
        named = {name: int(num) for num, name in re.findall(r"^\| (\d+) \| ([A-Z_0-9]+) \|", body, re.M)}
        assert named == {s.name: int(s) for s in stages}, heading
