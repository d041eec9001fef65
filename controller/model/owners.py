"""Port `device_owner` values the controller gives meaning to, named once
(the API creates such ports, the flows and the DHCP server read them)."""

DHCP = "network:dhcp"
ROUTER_INTERFACE = "network:router_interface"
ROUTER_GATEWAY = "network:router_gateway"
FLOATINGIP = "network:floatingip"

# Every owner a router's interface port may have (DVR and HA variants too).
ROUTER_INTERFACES = (ROUTER_INTERFACE, "network:router_interface_distributed",
                     "network:ha_router_replicated_interface")
ROUTER_PORTS = ROUTER_INTERFACES + (ROUTER_GATEWAY,)

NETWORK_PREFIX = "network:"      # any owner under it is infrastructure, not a VM


def is_infrastructure(device_owner: str) -> bool:
    """A port the network itself owns (DHCP, router, ...), not a VM's."""
    return device_owner.startswith(NETWORK_PREFIX)
