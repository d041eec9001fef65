"""Moved to controller/model/snapshot.py. This alias keeps branches started before
the move importing; remove it once none imports controller.flows.snapshot."""
import sys

from controller.model import snapshot as _moved

sys.modules[__name__] = _moved
