"""All flow compilers of a node, in one list. Add a concern by appending its
`(world, node) -> list[Flow | Meter]` function to COMPILERS."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from controller.flows.arp_responder import compile_arp_responder
from controller.flows.br_phys import compile_br_phys
from controller.flows.br_tun import compile_br_tun
from controller.flows.dhcp import compile_dhcp
from controller.flows.flow import Flow, Meter
from controller.flows.l2 import compile_l2
from controller.flows.l3 import compile_l3
from controller.flows.metadata import compile_metadata
from controller.flows.nat import compile_nat
from controller.flows.pipeline import compile_pipeline
from controller.flows.world import NodeInfo, World

LOG = logging.getLogger(__name__)

COMPILERS = [
    compile_pipeline,
    compile_l2,
    compile_arp_responder,
    compile_dhcp,
    compile_br_tun,
    compile_br_phys,
    compile_l3,
    compile_nat,
    compile_metadata,
]


@dataclass
class Compiled:
    flows: list[Flow]
    meters: list[Meter]
    complete: bool = True     # False: a compiler failed; do not delete anything this round


def compile_node(world: World, node: NodeInfo, compilers=None) -> Compiled:
    """Desired flows and meters of one node. Two flows with the same key
    (bridge, table, priority, match) are a compiler bug: the first one wins
    and the clash is logged. A compiler that raises is logged and marks the
    result incomplete, so the reconciler adds and modifies but deletes nothing
    (a bug must not wipe a switch)."""
    complete = True
    flows: dict[tuple, Flow] = {}
    meters: dict[tuple, Meter] = {}
    for fn in compilers or COMPILERS:
        try:
            items = fn(world, node)
        except Exception:
            LOG.exception("flow compiler %s failed for node %s", fn.__name__, node.hostname)
            complete = False
            continue
        for it in items:
            if isinstance(it, Meter):
                meters.setdefault((it.bridge, it.meter_id), it)
            elif it.key in flows:
                if flows[it.key] != it:
                    LOG.warning("flow key clash, keeping the first: %s / %s", flows[it.key], it)
            else:
                flows[it.key] = it
    return Compiled(list(flows.values()), list(meters.values()), complete)
