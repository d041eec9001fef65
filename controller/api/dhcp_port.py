"""The network's DHCP port: one `network:dhcp` port per network that has a
DHCP-enabled subnet, holding the first free address of each such subnet
(10.0.0.2 in 10.0.0.0/24 with gateway .1, as Quantum did). It is the address
the controller answers DHCP from. `sync()` is called after every subnet change
and keeps the port in step (create, add or drop addresses, delete)."""
from __future__ import annotations

from sqlalchemy import bindparam, delete, select

from controller import ipam
from controller.api import errors
from controller.db import models
from controller.model.owners import DHCP as DHCP_OWNER



def device_id(network_id: str) -> str:
    return f"dhcp{network_id}"


def new_mac(s, network_id: str, base_mac: str) -> str:
    """A MAC not used on the network (the unique key guards against races)."""
    for _ in range(16):
        mac = ipam.generate_mac(base_mac)
        if not mac_in_use(s, network_id, mac):
            return mac
    raise errors.NetworkMacAddressGenerationFailure(net_id=network_id)


_MAC_IN_USE = (select(models.Port.id)
               .where(models.Port.network_id == bindparam("net"), models.Port.mac_address == bindparam("mac"))
               .limit(1))


def mac_in_use(s, network_id: str, mac: str) -> bool:
    # Core on the session's connection (hot path of every port create); pending
    # ORM rows are flushed first so they count.
    s.flush()
    return s.connection().execute(_MAC_IN_USE, {"net": network_id, "mac": mac}).first() is not None


def sync(tx, network_id: str) -> None:
    s = tx.s
    subnets = [r._mapping for r in s.execute(
        select(models.Subnet.__table__).where(models.Subnet.network_id == network_id,
                                              models.Subnet.enable_dhcp.is_(True))
        .order_by(models.Subnet.created_at, models.Subnet.id))]
    port = s.execute(select(models.Port).where(models.Port.network_id == network_id,
                                               models.Port.device_owner == DHCP_OWNER)
                     .order_by(models.Port.created_at)).scalars().first()
    if not subnets:
        if port is not None:
            from controller.api.resources.networks import delete_port_rows
            pid = port.id
            s.expunge(port)
            delete_port_rows(s, pid)
            tx.changed("port", pid, "delete")
        return
    op = "update"
    if port is None:
        net = s.get(models.Network, network_id)
        port = models.Port(id=models.new_id(), project_id=net.project_id, network_id=network_id,
                           mac_address=new_mac(s, network_id, tx.cfg.get("DEFAULT.base_mac")),
                           device_id=device_id(network_id), device_owner=DHCP_OWNER,
                           admin_state_up=True, status="DOWN", port_security_enabled=False)
        s.add(port)
        s.flush()
        op = "create"
    have = {a.subnet_id: a for a in s.execute(select(models.IPAllocation).where(
        models.IPAllocation.port_id == port.id)).scalars()}
    wanted = {sn["id"] for sn in subnets}
    changed = op == "create"
    for sid in set(have) - wanted:
        s.execute(delete(models.IPAllocation).where(models.IPAllocation.port_id == port.id,
                                                    models.IPAllocation.subnet_id == sid))
        changed = True
    for sn in subnets:
        if sn["id"] in have:
            continue
        if sn["ip_version"] == 6 and sn["ipv6_address_mode"] in ("slaac", "dhcpv6-stateless"):
            ip = ipam.eui64_address(sn["cidr"], port.mac_address)
            if ipam.is_allocated(s, sn["id"], ip):
                continue
        else:
            ip = ipam.allocate_first(s, dict(sn))
        if ip is None:
            continue     # a full pool: no DHCP address on this subnet
        s.add(models.IPAllocation(subnet_id=sn["id"], ip_address=ip, port_id=port.id,
                                  network_id=network_id))
        changed = True
    if changed:
        if op == "update":
            port.revision_number = (port.revision_number or 0) + 1
            port.updated_at = models.utcnow()
        s.flush()
        tx.changed("port", port.id, op)
