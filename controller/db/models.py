"""The database schema: the single source of truth.

API resources (networks, subnets, ports, routers, floating IPs, security groups,
quotas) and the controller's own state (nodes, port bindings, per-node local
VLANs, the change log). Schema changes go through alembic migrations in
controller/db/migrations; `tests/unit/test_migrations.py` checks that the
migrations produce exactly these models.
"""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer,
                        String, Text, UniqueConstraint, Index)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


class Base(DeclarativeBase):
    pass


class StandardAttrs:
    """Neutron's standard attributes: description, revision, timestamps.
    Tags live in the `tags` table keyed by resource id."""
    description: Mapped[str] = mapped_column(String(255), default="")
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Tag(Base):
    __tablename__ = "tags"
    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)


class Network(StandardAttrs, Base):
    __tablename__ = "networks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)  # router:external
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The single segment (provider extension).
    network_type: Mapped[str] = mapped_column(String(32))          # flat vlan gre vxlan local
    physical_network: Mapped[str | None] = mapped_column(String(64), nullable=True)
    segmentation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)

    subnets = relationship("Subnet", back_populates="network", lazy="selectin",
                           order_by="Subnet.created_at")


class SegmentAllocation(Base):
    """One row per segment in use; the unique key makes a taken segment a 409.
    Flat networks use segmentation_id 0; GRE/VXLAN use physical_network ''."""
    __tablename__ = "segment_allocations"
    network_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    physical_network: Mapped[str] = mapped_column(String(64), primary_key=True)
    segmentation_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"))


class Subnet(StandardAttrs, Base):
    __tablename__ = "subnets"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ipv6_address_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    allocation_pools: Mapped[list] = mapped_column(JSON, default=list)   # [{"start","end"}]
    dns_nameservers: Mapped[list] = mapped_column(JSON, default=list)    # ["8.8.8.8"]
    host_routes: Mapped[list] = mapped_column(JSON, default=list)        # [{"destination","nexthop"}]

    network = relationship("Network", back_populates="subnets")


class Port(StandardAttrs, Base):
    __tablename__ = "ports"
    __table_args__ = (UniqueConstraint("network_id", "mac_address", name="uniq_ports_network_mac"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    mac_address: Mapped[str] = mapped_column(String(32))
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(255), default="")
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    allowed_address_pairs: Mapped[list] = mapped_column(JSON, default=list)  # [{"ip_address","mac_address"}]
    # Binding, written by the controller (read-only in the API).
    host_id: Mapped[str] = mapped_column(String(255), default="")
    vif_type: Mapped[str] = mapped_column(String(64), default="unbound")
    ofport: Mapped[int | None] = mapped_column(Integer, nullable=True)

    fixed_ips = relationship("IPAllocation", back_populates="port", lazy="selectin",
                             cascade="all, delete-orphan", order_by="IPAllocation.ip_address")
    security_groups = relationship("PortSecurityGroup", lazy="selectin",
                                   cascade="all, delete-orphan")


class IPAllocation(Base):
    """One fixed IP. The primary key (subnet, address) makes a double allocation
    impossible, whatever the concurrency."""
    __tablename__ = "ipallocations"
    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"), index=True)
    network_id: Mapped[str] = mapped_column(String(36), index=True)

    port = relationship("Port", back_populates="fixed_ips")


class Router(StandardAttrs, Base):
    __tablename__ = "routers"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    gw_port_id: Mapped[str | None] = mapped_column(ForeignKey("ports.id"), nullable=True)
    enable_snat: Mapped[bool] = mapped_column(Boolean, default=True)
    routes: Mapped[list] = mapped_column(JSON, default=list)  # extraroute [{"destination","nexthop"}]


class FloatingIP(StandardAttrs, Base):
    __tablename__ = "floatingips"
    # One floating IP per fixed IP and external network, whatever the concurrency
    # (NULLs, i.e. unassociated FIPs, never collide).
    __table_args__ = (UniqueConstraint("floating_network_id", "port_id", "fixed_ip_address",
                                       name="uniq_floatingips_port_fixed_ip"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    floating_network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"))
    floating_ip_address: Mapped[str] = mapped_column(String(64))
    floating_port_id: Mapped[str] = mapped_column(ForeignKey("ports.id"))
    port_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    fixed_ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    router_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")


class SecurityGroup(StandardAttrs, Base):
    __tablename__ = "securitygroups"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    stateful: Mapped[bool] = mapped_column(Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class DefaultSecurityGroup(Base):
    """One row per project: makes creating the default group race-free."""
    __tablename__ = "default_security_groups"
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(ForeignKey("securitygroups.id", ondelete="CASCADE"))


class SecurityGroupRule(StandardAttrs, Base):
    __tablename__ = "securitygrouprules"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    security_group_id: Mapped[str] = mapped_column(ForeignKey("securitygroups.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(16))
    ethertype: Mapped[str] = mapped_column(String(8), default="IPv4")
    protocol: Mapped[str | None] = mapped_column(String(40), nullable=True)
    port_range_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    port_range_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    remote_group_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class PortSecurityGroup(Base):
    __tablename__ = "port_security_groups"
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(ForeignKey("securitygroups.id"), primary_key=True)


class Quota(Base):
    __tablename__ = "quotas"
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    limit: Mapped[int] = mapped_column(Integer)


# --- The controller's own state -------------------------------------------------

class Node(Base):
    """A hypervisor or gateway registered by node-bootstrap."""
    __tablename__ = "nodes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    hostname: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[str] = mapped_column(String(32), default="compute")   # compute | gateway | compute,gateway
    tunnel_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tunnel_type: Mapped[str] = mapped_column(String(16), default="gre")
    ovsdb: Mapped[str] = mapped_column(String(255), default="")       # e.g. tcp:192.0.2.5:6640 or unix:/run/.../db.sock
    bridge_mappings: Mapped[dict] = mapped_column(JSON, default=dict)  # {"physnet1": "br-eth1"}
    bridges: Mapped[dict] = mapped_column(JSON, default=dict)          # {"br-int": dpid(int), "br-tun": dpid, ...}
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class LocalVlan(Base):
    """The local VLAN a network uses on br-int of one node (Quantum's lvm).
    Stored so that a controller restart computes the very same flows."""
    __tablename__ = "local_vlans"
    __table_args__ = (UniqueConstraint("node_id", "vlan", name="uniq_local_vlans_node_vlan"),)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True)
    vlan: Mapped[int] = mapped_column(Integer)


class Neighbour(Base):
    """A MAC the controller resolved by ARP: an external network's gateway
    (controller/model/neighbours.py). Stored so that a restarted controller
    compiles the same NAT flows at once instead of removing them until it
    has resolved the gateway again."""
    __tablename__ = "neighbours"
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    mac_address: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class MetadataAddress(Base):
    """The index of the address a VM port's metadata requests come from
    (controller/model/metadata_addresses.py): the proxy maps it back to the port.
    Stored so the address stays the same across controller restarts."""
    __tablename__ = "metadata_addresses"
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True)
    address_index: Mapped[int] = mapped_column(Integer, unique=True)


class ChangeLog(Base):
    """Monotonic log of committed changes: other controller processes follow it
    (by revision) to learn what to recompute."""
    __tablename__ = "changelog"
    revision: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                          primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Generation(Base):
    """Shared monotonic counters (e.g. OpenFlow role generation ids)."""
    __tablename__ = "generations"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)



class ControllerMember(Base):
    """A running quantum-controller process of the cluster (controller/ha):
    it renews `expires_at` while it lives. Times are seconds on the
    database's clock, so controllers on hosts with skewed clocks agree."""
    __tablename__ = "controllers"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    api_url: Mapped[str] = mapped_column(String(255), default="")
    reachable: Mapped[list] = mapped_column(JSON, default=list)   # node ids whose switches are connected to it
    started_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class Mastership(Base):
    """Which controller programs a node's switches (the OpenFlow MASTER), as a
    lease: `holder` until `expires_at` (database clock) unless renewed.
    `generation` is the role request's generation id; every change of
    holder takes a new, larger one from the `generations` counter
    (controller/ha/leases.py). Rows are not tied to `nodes`: a node id that
    comes back must still get a larger generation than its switches saw."""
    __tablename__ = "masterships"
    node_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128), nullable=True)
    generation: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)


Index("ix_ports_host", Port.host_id)
