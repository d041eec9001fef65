"""Which flows serve an object, and the flow filters of the switch page.

A flow serves a port when the port owns it (cookie) or when it mentions the
port: its ofport (in_port, reg5, reg7, output), its MAC or one of its IPs. A
flow serves a network when the network or one of its ports owns it, or when
it carries the network's marks on that node: metadata = local VLAN on br-int,
vlan_vid = local VLAN (patch ports) or provider VLAN, tunnel_id = its key.
"""
from __future__ import annotations

from dataclasses import dataclass

from controller.flows import cookies
from controller.flows.flow import Flow
from controller.flows import tables as t

VLAN_PRESENT = 0x1000


@dataclass(frozen=True)
class PortMarks:
    """What identifies a port in the flows of one switch."""
    cookies: frozenset
    ofport: int | None          # only on the br-int it is plugged into
    addresses: frozenset        # MAC and IPs, lower case


@dataclass(frozen=True)
class NetworkMarks:
    cookies: frozenset
    metadata: int | None        # local VLAN on this node's br-int
    vlan_vids: frozenset        # tagged values: local VLAN, provider VLAN
    tunnel_id: int | None


def port_marks(port: dict, owners, node_id: str | None, bridge: str | None,
               port_node_id: str | None) -> PortMarks:
    here = port["ofport"] if (bridge == "br-int" and node_id and node_id == port_node_id) else None
    return PortMarks(frozenset(owners.cookies_of("port", port["id"])), here,
                     frozenset([port["mac"].lower()] + [ip.lower() for ip in port["ips"]]))


def network_marks(net: dict, port_cookies: set[int], world, node_id: str | None,
                  bridge: str | None) -> NetworkMarks:
    vlan = world.local_vlan(node_id, net["id"]) if node_id else None
    vids = set()
    if vlan is not None:
        vids.add(VLAN_PRESENT | vlan)
    if net["type"] in ("vlan",) and net["segmentation_id"] is not None and bridge not in ("br-int", "br-tun"):
        vids.add(VLAN_PRESENT | net["segmentation_id"])
    tunnel = net["segmentation_id"] if net["type"] in ("gre", "vxlan") else None
    return NetworkMarks(frozenset({cookies.cookie("network", net["id"])} | port_cookies),
                        vlan if bridge == "br-int" else None, frozenset(vids),
                        tunnel if bridge == "br-tun" else None)


def _values(f: Flow):
    """(field, value) of the match and of every set_field, plus outputs."""
    for k, v in f.match:
        yield k, v[0] if isinstance(v, tuple) else v
    for a in f.actions:
        if a[0] == "set_field":
            yield a[1], a[2]
        elif a[0] == "output":
            yield "output", a[1]
        elif a[0] == "write_metadata":
            yield "metadata", a[1]


def serves_port(f: Flow, pm: PortMarks) -> bool:
    if f.cookie in pm.cookies:
        return True
    for k, v in _values(f):
        if pm.ofport is not None and k in ("in_port", t.REG_IN_PORT, t.REG_OUT_PORT, "output") \
                and v == pm.ofport:
            return True
        if isinstance(v, str) and v.lower() in pm.addresses:
            return True
    return False


def serves_network(f: Flow, nm: NetworkMarks) -> bool:
    if f.cookie in nm.cookies:
        return True
    for k, v in _values(f):
        if k == "metadata" and nm.metadata is not None and v == nm.metadata:
            return True
        if k == "vlan_vid" and v in nm.vlan_vids:
            return True
        if k == "tunnel_id" and nm.tunnel_id is not None and v == nm.tunnel_id:
            return True
    return False


def mentions(f: Flow, text: str) -> bool:
    """A free-text address filter: some match or set_field value equals it."""
    text = text.strip().lower()
    return any(isinstance(v, str) and v.lower() == text for _k, v in _values(f))
