"""The DHCP server's decisions, as one pure function.

    decide(request, port facts, settings) -> Decision

The controller is authoritative: every port has exactly the addresses the
model gives it, so there is no pool and no lease database. A request for any
other address is refused (NAK); a request that selected another server is
ignored. REQUEST states are told apart as in RFC 2131 4.3.2:

    state        server id   requested IP   ciaddr
    SELECTING    ours        set            0
    INIT-REBOOT  -           set            0
    RENEWING     -           -              set     (unicast to us)
    REBINDING    -           -              set     (broadcast)
"""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from controller.dhcp import options as opt
from controller.dhcp import reply
from controller.dhcp.facts import PortFacts, Settings, SubnetFacts
from controller.dhcp.packet import DhcpRequest

ZERO = "0.0.0.0"
# Sent whatever the parameter request list says: without them a client has
# no working network (the MTU matters on tunnels, docs/PIPELINE.md "MTU").
ALWAYS = (opt.SUBNET_MASK, opt.ROUTER, opt.DNS_SERVERS, opt.DOMAIN_NAME,
          opt.BROADCAST_ADDRESS, opt.INTERFACE_MTU)
# Never dropped to fit a client's maximum message size.
ESSENTIAL = frozenset({opt.SERVER_ID, opt.LEASE_TIME, opt.RENEWAL_TIME, opt.REBINDING_TIME,
                       opt.SUBNET_MASK, opt.ROUTER})
MIN_MESSAGE = 576        # every client must accept this (RFC 2131 2)
METADATA_IP = "169.254.169.254"


@dataclass(frozen=True)
class Decision:
    reply: str | None           # "offer" | "ack" | "nak" | None (send nothing)
    reason: str                 # why: "discover", "selecting", "renewing", "other_server", ...
    frame: bytes | None = None
    ip: str | None = None       # the address offered / acknowledged / refused

    def __str__(self) -> str:
        return f"{self.reply or 'no reply'} ({self.reason}{', ' + self.ip if self.ip else ''})"


def decide(req: DhcpRequest, port: PortFacts, settings: Settings) -> Decision:
    if req.chaddr != port.mac:
        return Decision(None, "unknown_client")
    if req.giaddr != ZERO:
        return Decision(None, "relayed")
    leasable = port.dhcp_addresses()
    if not leasable:
        return Decision(None, "dhcp_disabled")

    t = req.msg_type
    if t == opt.DISCOVER:
        subnet, ip = port.find(req.requested_ip) or leasable[0]
        return _answer(req, port, settings, opt.OFFER, "discover", subnet, ip)
    if t == opt.REQUEST:
        return _request(req, port, settings, leasable)
    if t == opt.INFORM:
        addr = req.ciaddr if req.ciaddr != ZERO else req.ip_src
        hit = port.find(addr)
        if hit is None:
            return Decision(None, "inform_unknown_address", ip=addr)
        return _answer(req, port, settings, opt.ACK, "inform", hit[0], addr)
    if t == opt.RELEASE:
        return Decision(None, "release", ip=req.ciaddr)
    if t == opt.DECLINE:
        return Decision(None, "decline", ip=req.requested_ip)
    return Decision(None, "bad_message_type")


def _request(req, port, settings, leasable) -> Decision:
    sid, rip, ciaddr = req.server_id, req.requested_ip, req.ciaddr
    if sid is not None:
        if sid not in {s.server_ip for s, _ in leasable}:
            return Decision(None, "other_server")
        state, want = "selecting", rip or (ciaddr if ciaddr != ZERO else None)
    elif rip is not None and ciaddr == ZERO:
        state, want = "init_reboot", rip
    elif ciaddr != ZERO:
        state = "rebinding" if req.ip_dst == reply.BROADCAST_IP else "renewing"
        want = ciaddr
    else:
        state, want = "no_address", None
    if want is None:
        return Decision(None, "request_without_address")
    hit = port.find(want)
    if hit is None:
        return _nak(req, port, leasable, state, want)
    return _answer(req, port, settings, opt.ACK, state, hit[0], hit[1])


def _answer(req, port: PortFacts, settings: Settings, msg_type: int, reason: str,
            subnet: SubnetFacts, ip: str) -> Decision:
    inform = req.msg_type == opt.INFORM
    options = _options(subnet, port.mtu, settings.domain, 0 if inform else settings.lease_time,
                       req.parameter_request_list, req.max_message_size)
    frame = reply.build(req, msg_type, yiaddr=ZERO if inform else ip,
                        ciaddr=req.ciaddr, server_ip=subnet.server_ip,
                        server_mac=port.server_mac, options=options)
    return Decision(opt.MESSAGE_TYPE_NAMES[msg_type], reason, frame, ip)


def _nak(req, port: PortFacts, leasable, state: str, wanted: str) -> Decision:
    # Speak as the server of the subnet the client thinks it is on, if any.
    subnet = next((s for s, _ in leasable if _contains(s, wanted)), leasable[0][0])
    options = opt.encode_options({opt.SERVER_ID: opt.ip4(subnet.server_ip),
                                  opt.MESSAGE: b"requested address is not this port's address"})
    frame = reply.build(req, opt.NAK, yiaddr=ZERO, ciaddr=ZERO, server_ip=subnet.server_ip,
                        server_mac=port.server_mac, options=options)
    return Decision("nak", state, frame, wanted)


@functools.lru_cache(maxsize=4096)
def _options(subnet: SubnetFacts, mtu: int, domain: str, lease_time: int,
             request_list: tuple[int, ...], max_size: int | None) -> bytes:
    """The encoded options of an OFFER/ACK (lease_time 0: an INFORM's ACK,
    no lease): server id and lease first, then what the client asked for in
    its order, then the rest of ALWAYS. Memoized: every argument is a frozen
    value (a changed subnet is a new key), and a client asks the same way
    each time, so a reply's options are encoded once."""
    available = _available(subnet, mtu, domain)
    out: dict[int, bytes] = {opt.SERVER_ID: opt.ip4(subnet.server_ip)}
    if lease_time:
        out.update(_lease_options(lease_time))
    for code in (*request_list, *ALWAYS):
        if code in available and code not in out:
            out[code] = available[code]
    return opt.encode_options(_fit(out, max_size))


@functools.lru_cache(maxsize=4096)
def _available(subnet: SubnetFacts, mtu: int, domain: str) -> dict[int, bytes]:
    """Every option value this subnet can give, encoded. Memoized on the
    frozen facts (a changed subnet is a new key). Callers must not modify the
    result."""
    net = subnet.network
    available: dict[int, bytes] = {
        opt.SUBNET_MASK: net.netmask.packed,
        opt.BROADCAST_ADDRESS: net.broadcast_address.packed,
    }
    if subnet.gateway_ip:
        available[opt.ROUTER] = opt.ip4(subnet.gateway_ip)
    dns = [d for d in subnet.dns_nameservers if _is_ipv4(d)]
    if dns:
        available[opt.DNS_SERVERS] = opt.ip4_list(dns)
    if domain:
        available[opt.DOMAIN_NAME] = domain.encode("ascii", "ignore")
    if mtu >= 68:
        available[opt.INTERFACE_MTU] = opt.u16(mtu)
    routes = classless_routes(subnet)
    if routes:
        available[opt.CLASSLESS_ROUTES] = available[opt.MS_CLASSLESS_ROUTES] = \
            opt.classless_routes(routes)
    return available


@functools.lru_cache(maxsize=64)
def _lease_options(lease: int) -> dict[int, bytes]:
    return {opt.LEASE_TIME: opt.u32(lease), opt.RENEWAL_TIME: opt.u32(lease // 2),
            opt.REBINDING_TIME: opt.u32(lease * 7 // 8)}


def classless_routes(subnet: SubnetFacts) -> list[tuple[str, str]]:
    """Host routes plus the default route via the gateway: a client that gets
    option 121 ignores option 3 (RFC 3442), so 121 must carry the default."""
    routes = [(d, n) for d, n in subnet.host_routes if _is_ipv4_net(d) and _is_ipv4(n)]
    has_default = any(ipaddress.IPv4Network(d, strict=False).prefixlen == 0 for d, _ in routes)
    if subnet.gateway_ip and not has_default:
        routes.insert(0, ("0.0.0.0/0", subnet.gateway_ip))
    metadata = ipaddress.IPv4Network(METADATA_IP + "/32")
    if subnet.metadata_route and subnet.server_ip and not any(
            ipaddress.IPv4Network(d, strict=False) == metadata for d, _ in routes):
        routes.append((str(metadata), subnet.server_ip))
    return routes


def _fit(options: dict[int, bytes], max_size: int | None) -> dict[int, bytes]:
    """Drop optional options from the end until the reply fits the client's
    maximum DHCP message size (IP + UDP + BOOTP)."""
    limit = max(MIN_MESSAGE, max_size or MIN_MESSAGE) - 28 - 240
    out = dict(options)
    while len(opt.encode_options(out)) + 3 > limit:      # + option 53
        optional = [c for c in out if c not in ESSENTIAL]
        if not optional:
            break
        del out[optional[-1]]
    return out


def _contains(subnet: SubnetFacts, ip: str) -> bool:
    try:
        return ipaddress.IPv4Address(ip) in subnet.network
    except ValueError:
        return False


def _is_ipv4(a: str) -> bool:
    try:
        ipaddress.IPv4Address(a)
        return True
    except ValueError:
        return False


def _is_ipv4_net(n: str) -> bool:
    try:
        ipaddress.IPv4Network(n, strict=False)
        return True
    except ValueError:
        return False
