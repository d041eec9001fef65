"""Moved to controller/openflow/reference.py (decode_flow_stats: wire.py).
A re-export for branches started before the move; remove once none imports it."""
from controller.openflow.reference import *  # noqa: F401,F403
from controller.openflow.wire import decode_flow_stats  # noqa: F401
