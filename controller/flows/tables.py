"""Every OpenFlow table and well-known port number, named in one place.

Each table is declared once below (name, purpose, next tables, miss); the
table list of docs/PIPELINE.md is generated from it (`python -m
controller.flows.tables`) and a test keeps the two in step.
node-bootstrap requests the port numbers below with ofport_request, and
tests/lab checks that a bootstrapped node really has them.
"""
from enum import IntEnum

DROP, NORMAL = "drop", "normal"      # what a table-miss does, unless it goes to a table


class Stage(IntEnum):
    """A table number with its declaration, one line per table:

        NAME = number, "purpose", ("NEXT", ...), miss

    next: the tables its flows may continue in (goto, conntrack
    recirculation), by name; miss: DROP, NORMAL, or the name of the table a
    miss continues in (pipeline glue: a concern with nothing to say about a
    packet lets it through). controller/flows/pipeline.py compiles the
    misses from this; tests/unit/test_pipeline.py checks every compiler's
    flows against it and docs/PIPELINE.md's table list against
    `markdown()`."""

    def __new__(cls, number: int, purpose: str = "", next: tuple = (), miss: str = DROP):
        obj = int.__new__(cls, number)
        obj._value_ = number
        obj.purpose, obj.next_names, obj.miss_name = purpose, tuple(next), miss
        return obj

    @property
    def next_tables(self) -> tuple:
        return tuple(type(self)[n] for n in self.next_names)

    @property
    def miss(self):
        """DROP, NORMAL or the table a miss goes to."""
        return self.miss_name if self.miss_name in (DROP, NORMAL) else type(self)[self.miss_name]


class IntTable(Stage):
    """br-int: classify -> port security -> services -> L3 -> L2 -> output."""
    CLASSIFY = 0, "in_port -> network (metadata = local VLAN), logical in-port (reg5)", \
        ("PORT_SECURITY", "METADATA", "L3", "L2_LOOKUP"), DROP
    PORT_SECURITY = 10, "anti-spoofing: eth_src / arp_sha / arp_spa / ipv4_src of the port", \
        ("ARP_RESPONDER", "DHCP"), DROP
    ARP_RESPONDER = 20, "answer ARP for known addresses in flows", ("DHCP",), "DHCP"
    DHCP = 21, "punt DHCP client packets to the controller (metered); ping the DHCP address", \
        ("METADATA",), "METADATA"
    METADATA = 22, "169.254.169.254 redirection to the metadata proxy", ("INGRESS_ACL",), "INGRESS_ACL"
    INGRESS_ACL = 30, "security groups, from a VM port: its IP into the port's conntrack zone", \
        ("INGRESS_ACL_CT", "L3"), "L3"
    INGRESS_ACL_CT = 31, "security groups, from the port: conntrack state, the port's egress rules", \
        ("L3",), DROP
    L3 = 40, "router MACs -> reg6 = router; external ingress: ARP, floating IPs, SNAT replies", \
        ("L3_ROUTE", "NAT"), "NAT"
    L3_ROUTE = 41, "(router, destination) -> rewrite MACs, dec_ttl, destination network; default route", \
        ("NAT", "L2_LOOKUP"), DROP
    NAT = 45, "SNAT / floating IP (gateway node)", ("L2_LOOKUP",), "L2_LOOKUP"
    L2_LOOKUP = 50, "(network, eth_dst) -> reg7 = local port or uplink; flooding", ("EGRESS_ACL",), DROP
    EGRESS_ACL = 60, "security groups, to a VM port: its IP into the port's conntrack zone", \
        ("EGRESS_ACL_CT", "OUTPUT"), "OUTPUT"
    EGRESS_ACL_CT = 61, "security groups, to the port: conntrack state, the port's ingress rules", \
        ("OUTPUT",), DROP
    OUTPUT = 70, "deliver reg7: untagged to VM ports, tagged with the local VLAN to patch ports", (), DROP


class TunTable(Stage):
    """br-tun: local VLAN <-> tunnel key, unicast to the exact remote host."""
    CLASSIFY = 0, "from patch-int -> TO_TUNNEL; from the tunnel port -> FROM_TUNNEL", \
        ("TO_TUNNEL", "FROM_TUNNEL"), DROP
    TO_TUNNEL = 1, "(local VLAN, eth_dst) -> tunnel key + remote IP; flood to the network's hosts", (), DROP
    FROM_TUNNEL = 10, "tunnel key -> local VLAN -> patch-int", (), DROP


class PhysTable(Stage):
    """br-ethX / br-ex: local VLAN <-> provider VLAN (or untagged for flat)."""
    CLASSIFY = 0, "from br-int: local -> provider VLAN (or untagged); the rest NORMAL", (), NORMAL


def stages(bridge: str) -> type[Stage]:
    """The declared tables of a bridge: br-int, br-tun, or any br-ethX / br-ex."""
    return IntTable if bridge == "br-int" else TunTable if bridge == "br-tun" else PhysTable


# br-int tables whose miss continues to another table (derived from the declarations).
INT_PASS_THROUGH = tuple((table, table.miss) for table in IntTable if isinstance(table.miss, IntTable))


def markdown() -> str:
    """The table list of docs/PIPELINE.md, generated from the declarations
    (`python -m controller.flows.tables` prints it)."""
    rows = ["| bridge | table | name | purpose | next tables | miss |", "|---|---|---|---|---|---|"]
    for bridge, enum in (("br-int", IntTable), ("br-tun", TunTable), ("br-ethX, br-ex", PhysTable)):
        for table in enum:
            miss = table.miss if isinstance(table.miss, str) else f"goto {table.miss.name}"
            nxt = ", ".join(n.name for n in table.next_tables) or "-"
            rows.append(f"| {bridge} | {int(table)} | {table.name} | {table.purpose} | {nxt} | {miss} |")
    return "\n".join(rows) + "\n"


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


DOC_BEGIN = "<!-- tables: generated by `python -m controller.flows.tables`, do not edit -->\n"
DOC_END = "<!-- end of generated tables -->\n"


def doc_with_tables(text: str) -> str:
    """docs/PIPELINE.md's text with the generated list replaced by markdown()."""
    head, rest = text.split(DOC_BEGIN, 1)
    return head + DOC_BEGIN + markdown() + DOC_END + rest.split(DOC_END, 1)[1]


if __name__ == "__main__":
    # python -m controller.flows.tables [docs/PIPELINE.md]: print the list, or rewrite it in the doc.
    import sys
    if len(sys.argv) > 1:
        with open(sys.argv[1]) as f:
            text = doc_with_tables(f.read())
        with open(sys.argv[1], "w") as f:
            f.write(text)
    else:
        print(markdown(), end="")
