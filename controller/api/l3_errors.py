"""Errors of the L3 and security-group resources: Neutron's names and
messages (docs/API.md "Errors"), on the framework's families."""
from __future__ import annotations

from controller.api.errors import (BadRequest, BadRequestBase, Conflict, InUse, NeutronError,
                                   NotFound)

__all__ = ["BadRequest", "NeutronError"]


# --- routers -------------------------------------------------------------------------

class RouterNotFound(NotFound):
    message = "Router %(router_id)s could not be found"


class RouterInUse(InUse):
    message = "Router %(router_id)s %(reason)s"


class RouterInterfaceNotFound(NotFound):
    message = "Router %(router_id)s does not have an interface with id %(port_id)s"


class RouterInterfaceNotFoundForSubnet(NotFound):
    message = "Router %(router_id)s has no interface on subnet %(subnet_id)s"


class RouterInterfaceInUseByFloatingIP(InUse):
    message = ("Router interface for subnet %(subnet_id)s on router %(router_id)s cannot be "
               "deleted, as it is required by one or more floating IPs.")


class RouterExternalGatewayInUseByFloatingIp(InUse):
    message = ("Gateway cannot be updated for router %(router_id)s, since a gateway to external "
               "network %(net_id)s is required by one or more floating IPs.")


class PortInUse(InUse):
    message = ("Unable to complete operation on port %(port_id)s for network %(net_id)s. "
               "Port already has an attached device %(device_id)s.")


class ServicePortInUse(InUse):
    message = "Port %(port_id)s cannot be deleted directly via the port API: %(reason)s."


class SubnetMismatchForPort(BadRequestBase):
    message = "Subnet on port %(port_id)s does not match the requested subnet %(subnet_id)s."


class ExternalNetworkInUse(InUse):
    message = ("External network %(net_id)s cannot be updated to be made non-external, since "
               "it has existing gateway ports.")


# --- floating IPs --------------------------------------------------------------------

class FloatingIPNotFound(NotFound):
    message = "Floating IP %(floatingip_id)s could not be found"


class ExternalGatewayForFloatingIPNotFound(NotFound):
    message = ("External network %(external_network_id)s is not reachable from subnet "
               "%(subnet_id)s.  Therefore, cannot associate Port %(port_id)s with a Floating IP.")


class FloatingIPPortAlreadyAssociated(InUse):
    message = ("Cannot associate floating IP %(floating_ip_address)s (%(fip_id)s) with port "
               "%(port_id)s using fixed IP %(fixed_ip)s, as that fixed IP already has a floating "
               "IP on external network %(net_id)s.")


class FipAssociated(InUse):
    message = ("Unable to complete operation on port %(port_id)s because it has floating IP "
               "%(fip_id)s associated by another project.")


class ExternalIpAddressExhausted(BadRequestBase):
    message = "Unable to find any IP address on external network %(net_id)s."


# --- security groups -------------------------------------------------------------------

class SecurityGroupNotFound(NotFound):
    message = "Security group %(id)s does not exist"


class SecurityGroupRuleNotFound(NotFound):
    message = "Security group rule %(id)s does not exist"


class SecurityGroupInUse(InUse):
    message = "Security Group %(id)s in use."


class SecurityGroupCannotRemoveDefault(InUse):
    message = "Insufficient rights for removing default security group."


class SecurityGroupCannotUpdateDefault(InUse):
    message = "Updating default security group not allowed."


class SecurityGroupDefaultAlreadyExists(InUse):
    message = "Default security group already exists."


class PortSecurityAndIPRequiredForSecurityGroups(BadRequestBase):
    message = ("Port security must be enabled and port must have an IP address in order to "
               "use security groups.")


class PortSecurityPortHasSecurityGroup(InUse):
    message = ("Port has security group associated. Cannot disable port security or IP "
               "address until security group is removed")


class AddressPairAndPortSecurityRequired(Conflict):
    message = "Port Security must be enabled in order to have allowed address pairs on a port."
