"""Source address of a metadata request -> the Quantum port -> the instance.

The flows rewrite every request to come from the port's own address in the
source range (controller/model/metadata_addresses.py), so this is one indexed query
and never depends on the (possibly overlapping) tenant addresses.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from controller.db import models as m
from controller.model.metadata_addresses import index_of, primary_ipv4


@dataclass(frozen=True)
class Instance:
    port_id: str
    instance_id: str       # the port's device_id (Nova's instance UUID)
    project_id: str
    fixed_ip: str          # what the VM sent from; X-Forwarded-For


def find_instance(db, source_ip: str, source_range: str) -> tuple[Instance | None, str]:
    """-> (instance, "") or (None, why not) for the log line."""
    index = index_of(source_ip, source_range)
    if index is None:
        return None, f"source {source_ip} is outside {source_range}"
    with db.read() as s:
        port = s.scalar(select(m.Port).join(m.MetadataAddress, m.MetadataAddress.port_id == m.Port.id)
                        .where(m.MetadataAddress.address_index == index))
        if port is None:
            return None, f"no port has metadata address {source_ip}"
        fixed_ip = primary_ipv4(a.ip_address for a in port.fixed_ips)
        if not port.device_id:
            return None, f"port {port.id} has no device_id"
        if fixed_ip is None:
            return None, f"port {port.id} has no IPv4 address"
        return Instance(port.id, port.device_id, port.project_id, fixed_ip), ""
