"""Moved to controller/openflow/wire.py (os-ken patches: osken_patches.py).
A re-export for branches started before the move; remove once none imports it."""
from controller.openflow.wire import *  # noqa: F401,F403
from controller.openflow.osken_patches import lean_packet_in as install_lean_packet_in  # noqa: F401
from controller.openflow.osken_patches import raw_flow_stats as install_raw_flow_stats  # noqa: F401
