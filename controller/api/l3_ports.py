"""The ports L3 owns (router interfaces and gateways, floating IP ports):
made and removed here, inside the caller's transaction, never through the
/ports handler (no quota, no security groups, no ServicePortInUse check)."""
from __future__ import annotations

from sqlalchemy import select

from controller.api import dhcp_port
from controller.api.resources.networks import delete_port_rows
from controller.api.resources.ports import allocate
from controller.db import models
from controller.model.owners import FLOATINGIP, ROUTER_GATEWAY, ROUTER_INTERFACE  # noqa: F401 (used as l3_ports.X)
from controller.model.owners import ROUTER_PORTS as ROUTER_OWNERS  # noqa: F401  ports that exist only for a router


def make_port(tx, network_id: str, project_id: str, device_owner: str, device_id: str,
              fixed_ips, status: str = "DOWN") -> models.Port:
    """A port with addresses from IPAM: `fixed_ips` as in the API (a list of
    {subnet_id, ip_address}) or ATTR_NOT_SPECIFIED for automatic ones."""
    s = tx.s
    mac = dhcp_port.new_mac(s, network_id, tx.cfg.get("DEFAULT.base_mac"))
    port = models.Port(id=models.new_id(), project_id=project_id, network_id=network_id,
                       mac_address=mac, status=status, device_owner=device_owner,
                       device_id=device_id, port_security_enabled=False)
    s.add(port)
    s.flush()
    for sid, ip in allocate(s, network_id, mac, fixed_ips):
        s.add(models.IPAllocation(subnet_id=sid, ip_address=ip, port_id=port.id,
                                  network_id=network_id))
    s.flush()
    tx.changed("port", port.id, "create")
    return port


def remove_port(tx, port_id: str) -> None:
    delete_port_rows(tx.s, port_id)
    tx.changed("port", port_id, "delete")


def port_ips(s, port_id: str) -> list[tuple[str, str]]:
    """(subnet_id, ip_address) of a port, in address order."""
    a = models.IPAllocation
    return [(sid, ip) for sid, ip in s.execute(
        select(a.subnet_id, a.ip_address).where(a.port_id == port_id).order_by(a.ip_address))]
