"""Network segments: which (network_type, physical_network, segmentation_id)
a network uses, allocated from the ml2.* configuration.

* tenant networks take the first type of `ml2.tenant_network_types` that has
  a free id (gre: `tunnel_id_ranges`, vxlan: `vni_ranges`, vlan:
  `network_vlan_ranges` per physnet, local: nothing to allocate);
* provider networks (admin) are validated against the configuration; a
  provider segment without an id gets one from the ranges;
* a segment in use is refused (VlanIdInUse, FlatNetworkInUse, TunnelIdInUse
  of controller/domain_errors.py, a 409 from the API; the SegmentAllocation
  primary key guards against races, the caller's transaction retries on
  IntegrityError).

MTU: flat/vlan/local networks get `global_physnet_mtu`; tunnels subtract the
encapsulation overhead (GRE 42, VXLAN 50, IPv4 underlay) from `ml2.path_mtu`
(or `global_physnet_mtu` when path_mtu is 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, select

from controller import domain_errors as errors
from controller.db import models

TYPES = ("flat", "vlan", "gre", "vxlan", "local")
OVERHEAD = {"gre": 42, "vxlan": 50}
MAX_ID = {"vlan": 4094, "gre": 2 ** 32 - 1, "vxlan": 2 ** 24 - 1}


@dataclass
class SegmentConfig:
    tenant_types: list[str]
    flat_networks: list[str]                       # ["*"] = any physnet
    vlan_ranges: dict[str, list[tuple[int, int]]]  # physnet -> ranges ([] = provider only)
    tunnel_ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # gre/vxlan
    global_mtu: int = 1500
    path_mtu: int = 0

    @classmethod
    def from_cfg(cls, cfg) -> "SegmentConfig":
        vlans: dict[str, list[tuple[int, int]]] = {}
        for entry in cfg.get("ml2.network_vlan_ranges"):
            parts = entry.split(":")
            vlans.setdefault(parts[0], [])
            if len(parts) == 3:
                vlans[parts[0]].append(_range(parts[1], parts[2], "vlan"))
        return cls(
            tenant_types=[t.lower() for t in cfg.get("ml2.tenant_network_types")],
            flat_networks=list(cfg.get("ml2.flat_networks")),
            vlan_ranges=vlans,
            tunnel_ranges={"gre": [_range(*r.split(":"), "gre") for r in cfg.get("ml2.tunnel_id_ranges")],
                           "vxlan": [_range(*r.split(":"), "vxlan") for r in cfg.get("ml2.vni_ranges")]},
            global_mtu=int(cfg.get("DEFAULT.global_physnet_mtu")),
            path_mtu=int(cfg.get("ml2.path_mtu")))

    def mtu(self, network_type: str) -> int:
        if network_type in OVERHEAD:
            return (self.path_mtu or self.global_mtu) - OVERHEAD[network_type]
        return self.global_mtu

    def ranges(self, network_type: str, physnet: str) -> list[tuple[int, int]]:
        if network_type == "vlan":
            return self.vlan_ranges.get(physnet, [])
        return self.tunnel_ranges.get(network_type, [])


def _range(lo, hi, kind) -> tuple[int, int]:
    a, b = int(lo), int(hi)
    if a > b:
        a, b = b, a
    return max(a, 1), min(b, MAX_ID[kind])


@dataclass(frozen=True)
class Segment:
    network_type: str
    physical_network: str | None
    segmentation_id: int | None


def _invalid(msg: str) -> errors.InvalidSegment:
    return errors.InvalidSegment(error_message=msg)


def validate_provider(conf: SegmentConfig, ntype, physnet, seg_id) -> Segment:
    """Check a provider request; seg_id None means 'allocate one'."""
    if ntype not in TYPES:
        raise _invalid(f"network_type value '{ntype}' not supported")
    if ntype == "flat":
        if not physnet:
            raise _invalid("physical_network required for flat provider network")
        if "*" not in conf.flat_networks and physnet not in conf.flat_networks:
            raise _invalid(f"physical_network '{physnet}' unknown for flat provider network")
        if seg_id is not None:
            raise _invalid("segmentation_id specified for flat provider network")
        return Segment("flat", physnet, None)
    if ntype == "local":
        if physnet or seg_id is not None:
            raise _invalid("physical_network and segmentation_id prohibited for local provider network")
        return Segment("local", None, None)
    if ntype == "vlan":
        if not physnet:
            raise _invalid("physical_network required for VLAN provider network")
        if physnet not in conf.vlan_ranges:
            raise _invalid(f"physical_network '{physnet}' unknown for VLAN provider network")
    elif physnet:
        raise _invalid(f"provider:physical_network specified for {ntype} network")
    if seg_id is not None and not 1 <= seg_id <= MAX_ID[ntype]:
        raise _invalid(f"segmentation_id out of range (1 through {MAX_ID[ntype]})")
    return Segment(ntype, physnet or None, seg_id)


def allocate(s, conf: SegmentConfig, network_id: str, requested: Segment | None) -> Segment:
    """Reserve a segment for a network (in the caller's transaction)."""
    if requested is None:
        for ntype in conf.tenant_types:
            if ntype == "local":
                return Segment("local", None, None)
            if ntype == "vlan":
                for physnet in conf.vlan_ranges:
                    seg_id = _free_id(s, conf, "vlan", physnet)
                    if seg_id is not None:
                        return _reserve(s, Segment("vlan", physnet, seg_id), network_id)
            elif ntype in MAX_ID:
                seg_id = _free_id(s, conf, ntype, "")
                if seg_id is not None:
                    return _reserve(s, Segment(ntype, None, seg_id), network_id)
        raise errors.NoSegmentAvailable()
    seg = requested
    if seg.network_type == "local":
        return seg
    if seg.network_type == "flat":
        return _reserve(s, seg, network_id)
    if seg.segmentation_id is None:
        seg_id = _free_id(s, conf, seg.network_type, seg.physical_network or "")
        if seg_id is None:
            raise errors.NoSegmentAvailable()
        seg = Segment(seg.network_type, seg.physical_network, seg_id)
    return _reserve(s, seg, network_id)


def _free_id(s, conf: SegmentConfig, ntype: str, physnet: str) -> int | None:
    used = set(s.execute(select(models.SegmentAllocation.segmentation_id).where(
        models.SegmentAllocation.network_type == ntype,
        models.SegmentAllocation.physical_network == physnet)).scalars())
    for lo, hi in conf.ranges(ntype, physnet):
        if hi - lo + 1 <= sum(1 for u in used if lo <= u <= hi):
            continue
        for candidate in range(lo, hi + 1):
            if candidate not in used:
                return candidate
    return None


def _reserve(s, seg: Segment, network_id: str) -> Segment:
    key = (seg.network_type, seg.physical_network or "", seg.segmentation_id or 0)
    if s.get(models.SegmentAllocation, key) is not None:
        if seg.network_type == "vlan":
            raise errors.VlanIdInUse(vlan_id=seg.segmentation_id, physical_network=seg.physical_network)
        if seg.network_type == "flat":
            raise errors.FlatNetworkInUse(physical_network=seg.physical_network)
        raise errors.TunnelIdInUse(tunnel_id=seg.segmentation_id)
    s.add(models.SegmentAllocation(network_type=key[0], physical_network=key[1],
                                   segmentation_id=key[2], network_id=network_id))
    return seg


def release(s, network_id: str) -> None:
    s.execute(delete(models.SegmentAllocation).where(models.SegmentAllocation.network_id == network_id))
