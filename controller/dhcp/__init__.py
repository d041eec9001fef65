"""DHCPv4 served by the controller (pure: no os-ken, no database).

    packet.py   parse a client's raw Ethernet frame -> DhcpRequest, or a drop reason
    options.py  option codes and value encoders (incl. RFC 3442 classless routes)
    facts.py    what the server needs to know about a port (built from the DB by the app)
    server.py   decide(request, port facts, settings) -> OFFER / ACK / NAK / nothing
    reply.py    build the reply frame (Ethernet/IPv4/UDP/BOOTP)

The os-ken side (packet-in, DB lookups, packet-out) is controller/apps/dhcp.py;
the punt flows are controller/flows/dhcp.py.
"""
