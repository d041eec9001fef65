"""Moved to controller/model/world.py. This alias keeps branches started before
the move importing; remove it once none imports controller.flows.world."""
import sys

from controller.model import world as _moved

sys.modules[__name__] = _moved
