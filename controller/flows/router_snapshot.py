"""Moved to controller/model/router_snapshot.py. This alias keeps branches started before
the move importing; remove it once none imports controller.flows.router_snapshot."""
import sys

from controller.model import router_snapshot as _moved

sys.modules[__name__] = _moved
