"""Errors of the L3 and security-group resources (Neutron's names and
messages). The HTTP body is {"NeutronError": {"type": <class name>, ...}}."""
from __future__ import annotations


class NeutronError(Exception):
    status = 500
    message = "An unknown exception occurred."

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        super().__init__(self.message % kwargs if kwargs else self.message)

    @property
    def type(self) -> str:
        return type(self).__name__


class BadRequest(NeutronError):
    status = 400
    message = "Bad %(resource)s request: %(msg)s."
