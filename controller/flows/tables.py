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
    L3 = 40               # router MACs: route, rewrite MACs, dec_ttl
    NAT = 45              # SNAT / floating IP
    L2_LOOKUP = 50        # (network, eth_dst) -> local port, or the tunnel / physical bridge
    EGRESS_ACL = 60       # security groups (to-port direction)
    OUTPUT = 70           # deliver: untagged to VM ports, tagged with the local VLAN to patch ports


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
INT_PATCH_PHYS_OFPORT_BASE = 60010    # br-int: int-<bridge>, in the order of bridge_mappings
TUN_PATCH_INT_OFPORT = 1              # br-tun: patch-int
TUN_TUNNEL_OFPORT = 2                 # br-tun: the one flow-based tunnel port (gre0 / vxlan0)
PHYS_PATCH_INT_OFPORT = 1             # br-ethX: phy-<bridge>

# Registers (Nicira extensions) used inside br-int.
REG_IN_PORT = "reg5"      # logical ingress port (ofport of the VM port)
REG_OUT_PORT = "reg7"     # chosen egress port
