"""Moved to controller/model/neighbours.py. This alias keeps branches started before
the move importing; remove it once none imports controller.flows.neighbours."""
import sys

from controller.model import neighbours as _moved

sys.modules[__name__] = _moved
