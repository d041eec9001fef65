"""Neutron-style API errors.

Every error the API returns is a `NeutronError` subclass: the class name is the
`type` in the body, `status` the HTTP code, `message` a template filled from the
keyword arguments. The body is always

    {"NeutronError": {"type": <class name>, "message": <text>, "detail": ""}}

Add new errors by subclassing the family that gives the right status
(NotFound 404, Conflict 409, BadRequest 400, ...), as neutron-lib does.
"""
from __future__ import annotations

from controller import domain_errors


class NeutronError(Exception):
    status = 500
    message = "An unknown exception occurred."

    def __init__(self, message: str | None = None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.message % kwargs
            except (KeyError, TypeError, ValueError):
                message = self.message
        self.msg = message
        super().__init__(message)

    @property
    def type(self) -> str:
        return self.__class__.__name__

    def body(self) -> dict:
        return {"NeutronError": {"type": self.type, "message": self.msg, "detail": ""}}


# --- families (status by isinstance, like neutron's FAULT_MAP) -------------------

class BadRequestBase(NeutronError):
    status = 400


class NotFound(NeutronError):
    status = 404


class Conflict(NeutronError):
    status = 409


class InUse(Conflict):
    pass


class NotAuthorized(NeutronError):
    status = 403


class ServiceUnavailable(NeutronError):
    status = 503


# --- webob-style structural errors -------------------------------------------------

class HTTPBadRequest(BadRequestBase):
    message = "Bad request"


class HTTPNotFound(NotFound):
    message = "The resource could not be found."


class HTTPMethodNotAllowed(NeutronError):
    status = 405
    message = "The server could not comply with the request since it is either malformed or otherwise incorrect."


class HTTPRequestEntityTooLarge(NeutronError):
    status = 413
    message = "Request is too large."


class HTTPUnauthorized(NeutronError):
    status = 401
    message = "Unauthorized"


class HTTPNotImplemented(NeutronError):
    status = 501
    message = "The requested method is not implemented."


class InternalError(NeutronError):
    status = 500
    message = "Request Failed: internal server error while processing your request."


# --- neutron-lib / neutron exceptions ---------------------------------------------

class BadRequest(BadRequestBase):
    message = "Bad %(resource)s request: %(msg)s."


class InvalidInput(BadRequestBase):
    message = "Invalid input for operation: %(error_message)s."


class PolicyNotAuthorized(NotAuthorized):
    message = "rule:%(action)s is disallowed by policy"


class NetworkNotFound(NotFound):
    message = "Network %(net_id)s could not be found."


class SubnetNotFound(NotFound):
    message = "Subnet %(subnet_id)s could not be found."


class PortNotFound(NotFound):
    message = "Port %(port_id)s could not be found."


class NodeNotFound(NotFound):
    message = "Node %(node_id)s could not be found."


class TenantQuotaNotFound(NotFound):
    message = "Quota for project %(tenant_id)s could not be found."


class QuotaResourceUnknown(NotFound):
    message = "Unknown quota resources %(unknown)s."


class ExtensionNotFound(NotFound):
    message = "Extension with alias %(alias)s does not exist"


class TagNotFound(NotFound):
    message = "Tag %(tag)s could not be found."


class InvalidIpForSubnet(BadRequestBase):
    message = "IP address %(ip_address)s is not a valid IP for the specified subnet."


class InvalidIpForNetwork(BadRequestBase):
    message = "IP address %(ip_address)s is not a valid IP for any of the subnets on the specified network."


class InvalidAllocationPool(BadRequestBase):
    message = "The allocation pool %(pool)s is not valid."


class OutOfBoundsAllocationPool(BadRequestBase):
    message = "The allocation pool %(pool)s spans beyond the subnet cidr %(subnet_cidr)s."


class DNSNameServersExhausted(BadRequestBase):
    message = "Unable to complete operation for %(subnet_id)s. The number of DNS nameservers exceeds the limit %(quota)s."


class HostRoutesExhausted(BadRequestBase):
    message = "Unable to complete operation for %(subnet_id)s. The number of host routes exceeds the limit %(quota)s."


class NetworkInUse(InUse):
    message = "Unable to complete operation on network %(net_id)s. %(reason)s."


class SubnetInUse(InUse):
    message = ("Unable to complete operation on subnet %(subnet_id)s: "
               "One or more ports have an IP allocation from this subnet.")


class MacAddressInUse(InUse):
    message = "Unable to complete operation for network %(net_id)s. The mac address %(mac)s is in use."


class IpAddressAlreadyAllocated(Conflict):
    message = "IP address %(ip)s already allocated in subnet %(subnet_id)s"


class IpAddressGenerationFailure(Conflict):
    message = "No more IP addresses available on network %(net_id)s."


class IpAddressGenerationFailureForSubnet(Conflict):
    message = "No more IP addresses available for subnet %(subnet_id)s."

    @property
    def type(self) -> str:
        return "IpAddressGenerationFailure"


class GatewayConflictWithAllocationPools(InUse):
    message = "Gateway ip %(ip_address)s conflicts with allocation pool %(pool)s."


class OverlappingAllocationPools(Conflict):
    message = "Found overlapping allocation pools: %(pool_1)s %(pool_2)s for subnet %(subnet_cidr)s."


class GatewayIpInUse(InUse):
    message = "Current gateway ip %(ip_address)s already in use by port %(port_id)s. Unable to update."


class InvalidSharedSetting(Conflict):
    message = ("Unable to reconfigure sharing settings for network %(network)s. "
               "Multiple projects are using it.")


class UnsupportedPortDeviceOwner(Conflict):
    message = ("Operation %(op)s is not supported for device_owner %(device_owner)s "
               "on port %(port_id)s.")


class OverQuota(Conflict):
    message = "Quota exceeded for resources: %(overs)s."


class RevisionNumberConstraintFailed(NeutronError):
    status = 412
    message = "Constrained to %(expected)s, but current revision is %(current)s"


class VlanIdInUse(InUse):
    message = ("Unable to create the network. The VLAN %(vlan_id)s on physical network "
               "%(physical_network)s is in use.")


class TunnelIdInUse(InUse):
    message = "Unable to create the network. The tunnel ID %(tunnel_id)s is in use."


class FlatNetworkInUse(InUse):
    message = "Unable to create the flat network. Physical network %(physical_network)s is in use."


class NoNetworkAvailable(ServiceUnavailable):
    message = "Unable to create the network. No tenant network is available for allocation."


class NetworkMacAddressGenerationFailure(ServiceUnavailable):
    message = "Unable to generate unique mac on network %(net_id)s."


# --- domain errors (controller/domain_errors.py) as the API answers them -------------

def from_domain(e: domain_errors.DomainError) -> NeutronError:
    """The Neutron error for a refusal of the domain code, same facts."""
    return _FROM_DOMAIN[type(e)](**e.details)

_FROM_DOMAIN = {
    domain_errors.InvalidAllocationPool: InvalidAllocationPool,
    domain_errors.OutOfBoundsAllocationPool: OutOfBoundsAllocationPool,
    domain_errors.OverlappingAllocationPools: OverlappingAllocationPools,
    domain_errors.GatewayConflictWithAllocationPools: GatewayConflictWithAllocationPools,
    domain_errors.InvalidSegment: InvalidInput,
    domain_errors.NoSegmentAvailable: NoNetworkAvailable,
    domain_errors.VlanIdInUse: VlanIdInUse,
    domain_errors.FlatNetworkInUse: FlatNetworkInUse,
    domain_errors.TunnelIdInUse: TunnelIdInUse,
}
