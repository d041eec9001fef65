"""DHCP answered in the packet-in handler: the controller replaces Quantum's
DHCP agent (one dnsmasq per network, reloaded on every port change).

A VM's DHCP packet reaches us through the punt flow of controller/flows/dhcp.py
(table DHCP, the port's cookie, already metered per port by the switch). Here:

  token bucket per (switch, in_port)  -> second line of defence after the meter
  controller.dhcp.packet.parse        -> drop and count malformed frames by reason
  port facts from the DB (cached)     -> which port, its fixed IPs, subnets, DHCP port
  controller.dhcp.server.decide       -> OFFER / ACK / NAK / nothing
  packet-out to the in_port           -> only the asking VM ever sees the reply

The cache maps (dpid, in_port) to the port's facts. Any committed change to
ports, subnets, networks or nodes (runtime.bus) empties it, so what the API
changed is served on the very next request; a short TTL covers changes made by
other controller processes (they reach us only through the DB).

Counters for metrics and the console: `replies` (by message type),
`counters` (requests by type, drops by reason, rate-limited), and
`recent_leases()`.
"""
from __future__ import annotations

import collections
import logging
import threading
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from sqlalchemy import select

from controller.apps.guard import guarded
from controller.db import models as m
from controller.dhcp import options as opt
from controller.dhcp import server
from controller.dhcp.facts import PortFacts, Settings, SubnetFacts
from controller.dhcp.packet import Malformed, parse
from controller.flows import cookies
from controller.flows.tables import IntTable
from controller.runtime import Runtime

LOG = logging.getLogger(__name__)

DHCP_OWNER = "network:dhcp"
CACHE_TTL_S = 10.0          # bounds staleness for changes made by another process
RECENT_LEASES = 200
CACHE_KINDS = {"port", "subnet", "network", "node"}


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float, now: float):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class DhcpResponder(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rt = Runtime.current()
        cfg = self.rt.cfg
        self.settings = Settings(lease_time=int(cfg.get("dhcp.lease_duration")),
                                 domain=cfg.get("dhcp.dns_domain") or "")
        self.rate = max(1, int(cfg.get("dhcp.packet_in_rate")))
        self.replies: dict[str, int] = collections.Counter()
        self.counters: dict[str, int] = collections.Counter()
        self._leases: collections.deque = collections.deque(maxlen=RECENT_LEASES)
        self._buckets: dict[tuple[int, int], TokenBucket] = {}
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, int], tuple[float, PortFacts | None, str | None]] = {}
        self._generation = 0
        self.rt.bus.subscribe(self._on_changes)

    # --- the packet-in path -------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def _on_packet_in(self, ev):
        msg = ev.msg
        kind, prefix = cookies.decode(msg.cookie)
        if msg.table_id != IntTable.DHCP or kind != "port":
            return                      # someone else's packet-in
        dp = msg.datapath
        in_port = msg.match.get("in_port")
        frame = self.handle(dp.id, in_port, prefix, bytes(msg.data))
        if frame is not None:
            self._send(dp, in_port, frame)

    def handle(self, dpid: int, in_port: int, cookie_prefix: str, data: bytes) -> bytes | None:
        """One client frame -> the reply frame, or None. Counts everything."""
        now = time.monotonic()
        if not self._allow(dpid, in_port, now):
            self.counters["rate_limited"] += 1
            return None
        try:
            req = parse(data)
        except Malformed as e:
            self.counters[f"dropped_{e.reason}"] += 1
            return None
        self.counters[f"received_{req.type_name}"] += 1
        facts, network_id = self._facts(dpid, in_port, now)
        if facts is None or not facts.id.startswith(cookie_prefix.rstrip("-")):
            self.counters["dropped_unknown_port"] += 1
            return None
        decision = server.decide(req, facts, self.settings)
        self._record(req, facts, network_id, decision)
        if decision.frame is None:
            self.counters[f"no_reply_{decision.reason}"] += 1
            return None
        self.replies[decision.reply] += 1
        return decision.frame

    def _allow(self, dpid: int, in_port: int, now: float) -> bool:
        b = self._buckets.get((dpid, in_port))
        if b is None:
            b = self._buckets[(dpid, in_port)] = TokenBucket(self.rate, self.rate, now)
        return b.take(now)

    def _send(self, dp, in_port: int, frame: bytes) -> None:
        out = parser.OFPPacketOut(datapath=dp, buffer_id=ofp.OFP_NO_BUFFER,
                                  in_port=ofp.OFPP_CONTROLLER,
                                  actions=[parser.OFPActionOutput(in_port, 0)], data=frame)
        dp.send_msg(out)

    def _record(self, req, facts: PortFacts, network_id, decision: server.Decision) -> None:
        if decision.reply in ("ack", "nak") or decision.reason in ("release", "decline"):
            hostname = req.options.get(opt.HOSTNAME, b"").decode("ascii", "replace")
            self._leases.append({"time": time.time(), "type": decision.reply or decision.reason,
                                 "state": decision.reason, "mac": req.chaddr, "ip": decision.ip,
                                 "port_id": facts.id, "network_id": network_id,
                                 "hostname": hostname,
                                 "lease": self.settings.lease_time if decision.reply == "ack"
                                 and req.msg_type != opt.INFORM else None})
        if decision.reply == "nak" or decision.reason in ("release", "decline", "other_server"):
            LOG.info("DHCP %s from %s (port %s): %s", req.type_name, req.chaddr, facts.id, decision)
        else:
            LOG.debug("DHCP %s from %s (port %s): %s", req.type_name, req.chaddr, facts.id, decision)

    def recent_leases(self) -> list[dict]:
        """Oldest first: ACKs, NAKs, releases and declines with port, MAC, IP, time."""
        return list(self._leases)

    # --- port facts: DB + cache --------------------------------------------------

    def _on_changes(self, changes) -> None:
        if any(c.kind in CACHE_KINDS for c in changes):
            with self._lock:
                self._generation += 1
                self._cache.clear()

    def _facts(self, dpid: int, in_port: int, now: float):
        key = (dpid, in_port)
        with self._lock:
            hit = self._cache.get(key)
            gen = self._generation
        if hit is not None and now - hit[0] < CACHE_TTL_S:
            return hit[1], hit[2]
        self.counters["cache_miss"] += 1
        with self.rt.db.read() as s:
            facts, network_id = load_port_facts(s, dpid, in_port)
        with self._lock:
            if gen == self._generation:     # no change was committed while we read
                self._cache[key] = (now, facts, network_id)
        return facts, network_id


def load_port_facts(s, dpid: int, in_port: int) -> tuple[PortFacts | None, str | None]:
    """The port bound at (switch dpid, ofport) and what DHCP needs to answer it."""
    node = next((n for n in s.scalars(select(m.Node))
                 if int((n.bridges or {}).get("br-int", -1)) == dpid), None)
    if node is None:
        return None, None
    port = s.scalars(select(m.Port).where(m.Port.host_id == node.hostname,
                                          m.Port.ofport == in_port,
                                          m.Port.vif_type != "unbound")).first()
    if port is None:
        return None, None
    net = s.get(m.Network, port.network_id)
    dhcp_port = s.scalars(select(m.Port).where(m.Port.network_id == port.network_id,
                                               m.Port.device_owner == DHCP_OWNER)
                          .order_by(m.Port.created_at)).first()
    if net is None or dhcp_port is None or not net.admin_state_up or not port.admin_state_up:
        return None, port.network_id
    server_ips = {a.subnet_id: a.ip_address for a in dhcp_port.fixed_ips}
    # In the network's subnet order, so a DISCOVER is offered the address on
    # the oldest DHCP-enabled subnet.
    order = {sn.id: i for i, sn in enumerate(net.subnets)}
    subnets = {sn.id: sn for sn in net.subnets}
    routed = routed_subnets(s, port.network_id)
    addresses = []
    for a in sorted(port.fixed_ips, key=lambda a: order.get(a.subnet_id, len(order))):
        sn = subnets.get(a.subnet_id)
        if sn is None:
            continue
        addresses.append((SubnetFacts(
            id=sn.id, cidr=sn.cidr, gateway_ip=sn.gateway_ip, enable_dhcp=bool(sn.enable_dhcp),
            ip_version=sn.ip_version, dns_nameservers=tuple(sn.dns_nameservers or ()),
            host_routes=tuple((r["destination"], r["nexthop"]) for r in (sn.host_routes or ())),
            server_ip=server_ips.get(sn.id), metadata_route=sn.id not in routed), a.ip_address))
    facts = PortFacts(id=port.id, mac=port.mac_address.lower(), mtu=net.mtu,
                      addresses=tuple(addresses), server_mac=dhcp_port.mac_address.lower())
    return facts, port.network_id


def routed_subnets(s, network_id: str) -> set[str]:
    """Subnets of the network with a router interface: their VMs reach
    169.254.169.254 through the router, the others get a route via the DHCP
    port (option 121, SubnetFacts.metadata_route)."""
    rows = s.execute(select(m.IPAllocation.subnet_id).join(m.Port, m.Port.id == m.IPAllocation.port_id)
                     .where(m.IPAllocation.network_id == network_id,
                            m.Port.device_owner.like("network:router_interface%")))
    return {r[0] for r in rows}
