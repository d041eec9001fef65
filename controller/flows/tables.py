"""Every OpenFlow table and well-known port number, named in one place.

The pipeline is documented in docs/PIPELINE.md; keep the two in step.
node-bootstrap requests the port numbers below with ofport_request, and
tests/lab checks that a bootstrapped node really has them.
"""
from enum import IntEnum


class IntTable(IntEnum):
    """br-int: classify -> port security -> services -> L3 -> L2 -> output."""
    CLASSIFY = 0          # in_port -> network (metadata = local VLAN), logical in-port (reg5)
    PORT_SECURITY = 10    # anti-spoofing: eth_src / arp_sha / arp_spa / ipv4_src of the port
    ARP_RESPONDER = 20    # answer ARP for known addresses in flows
    DHCP = 21             # punt DHCP client packets to the controller (metered)
    METADATA = 22         # 169.254.169.254 redirection
    INGRESS_ACL = 30      # security groups (from-port direction)
    L3 = 40               # router MACs -> reg6 = router; external ingress: ARP, floating IPs, SNAT replies
    L3_ROUTE = 41         # (router, destination) -> rewrite MACs, dec_ttl, destination network; default route
    NAT = 45              # SNAT / floating IP
    L2_LOOKUP = 50        # (network, eth_dst) -> reg7 = local port or uplink; flooding
    EGRESS_ACL = 60       # security groups (to-port direction)
    OUTPUT = 70           # deliver reg7: untagged to VM ports, tagged with the local VLAN to patch ports


# Tables whose table-miss continues to the next table ("glue"): a concern that
# has nothing to say about a packet lets it through. Packets from VM ports walk
# PORT_SECURITY -> ... -> L2_LOOKUP; L2_LOOKUP and OUTPUT drop on a miss.
INT_PASS_THROUGH = (
    (IntTable.ARP_RESPONDER, IntTable.DHCP),
    (IntTable.DHCP, IntTable.METADATA),
    (IntTable.METADATA, IntTable.INGRESS_ACL),
    (IntTable.INGRESS_ACL, IntTable.L3),
    (IntTable.L3, IntTable.NAT),
    (IntTable.NAT, IntTable.L2_LOOKUP),
    (IntTable.EGRESS_ACL, IntTable.OUTPUT),
)


class TunTable(IntEnum):
    """br-tun: local VLAN <-> tunnel key, unicast to the exact remote host."""
    CLASSIFY = 0          # from patch-int -> TO_TUNNEL; from the tunnel port -> FROM_TUNNEL
    TO_TUNNEL = 1         # (local VLAN, eth_dst) -> tunnel key + remote IP; flood to the network's hosts
    FROM_TUNNEL = 10      # tunnel key -> local VLAN -> patch-int


class PhysTable(IntEnum):
    """br-ethX / br-ex: local VLAN <-> provider VLAN (or untagged for flat)."""
    CLASSIFY = 0


# Well-known OpenFlow port numbers (ofport_request in node-bootstrap).
INT_PATCH_TUN_OFPORT = 60001          # br-int: patch-tun
INT_PATCH_META_OFPORT = 60002         # br-int: patch-meta, the metadata uplink (--metadata-bridge)
INT_PATCH_PHYS_OFPORT_BASE = 60010    # br-int: int-<bridge>, in the order of bridge_mappings
TUN_PATCH_INT_OFPORT = 1              # br-tun: patch-int
TUN_TUNNEL_OFPORT = 2                 # br-tun: the one flow-based tunnel port (gre0 / vxlan0)
PHYS_PATCH_INT_OFPORT = 1             # br-ethX: phy-<bridge>


def int_patch_phys_ofport(index: int) -> int:
    """ofport of int-<bridge> on br-int for the index-th bridge mapping."""
    return INT_PATCH_PHYS_OFPORT_BASE + index


# Registers (Nicira extensions) used inside br-int. The network of a packet is
# carried in the OpenFlow metadata (= its local VLAN on this node, whole 64 bits).
REG_IN_PORT = "reg5"      # logical ingress port (ofport of the VM port, or of the patch port)
REG_OUT_PORT = "reg7"     # chosen egress port (set by L2_LOOKUP, used by OUTPUT)
REG_ROUTER = "reg6"       # the router routing the packet (its conntrack zone), set by L3

# Priorities used by more than one module.
PRIO_MISS = 0
PRIO_DEFAULT = 100
