"""Flow compilers read only their inputs (the World and the node): not the
running configuration, the database or the proxy. The settings they depend
on travel in World.settings (controller/model/settings.py)."""
from __future__ import annotations

import ast
import dataclasses
import pathlib

from controller import config
from controller.flows.compiler import compile_node
from controller.flows.flow import Meter
from controller.model.settings import Settings
from controller.runtime import Runtime
from tests.unit import test_dhcp_flows as dhcp
from tests.unit.test_metadata_flows import S

FLOWS = pathlib.Path(__file__).resolve().parents[2] / "controller" / "flows"
NOT_FOR_COMPILERS = ("controller.proxy", "controller.runtime", "controller.db", "controller.apps",
                     "controller.api", "controller.config", "controller.console")


def test_flows_import_nothing_of_the_running_controller():
    for path in FLOWS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(NOT_FOR_COMPILERS), f"{path.name} imports {name}"


def test_the_running_configuration_does_not_reach_a_compiler(tmp_path):
    """A Runtime configured otherwise changes nothing: what counts is the
    World's settings (before, compile_dhcp and compile_metadata read the
    Runtime's dhcp.packet_in_rate and [metadata] options themselves)."""
    world = dhcp.world()
    plain = compile_node(world, dhcp.NODE)
    cfg = config.from_dict({"dhcp.packet_in_rate": 7, "metadata.proxy_address": S.proxy_ip,
                            "metadata.proxy_mac": S.proxy_mac})
    old = Runtime._current
    Runtime.set_current(Runtime(cfg=cfg, db=None))
    try:
        assert compile_node(world, dhcp.NODE) == plain
        assert {m.rate_pps for m in plain.meters} == {Settings().dhcp_packet_in_rate}
    finally:
        Runtime._current = old
    slow = dataclasses.replace(world, settings=Settings(dhcp_packet_in_rate=7))
    assert {m.rate_pps for m in compile_node(slow, dhcp.NODE).meters if isinstance(m, Meter)} == {7}
