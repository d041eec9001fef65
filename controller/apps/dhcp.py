"""DHCP answered in the packet-in handler: the controller replaces Quantum's
DHCP agent (one dnsmasq per network, reloaded on every port change).

A VM's DHCP packet reaches us through the punt flow of controller/flows/dhcp.py
(table DHCP, the port's cookie, already metered per port by the switch), and
is handled in the receive thread of the switch it came from
(controller/apps/packet_in.py). Here:

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
import json
import logging
import threading
import time

from os_ken.base import app_manager
from os_ken.ofproto import ofproto_v1_3 as ofp
from sqlalchemy import bindparam, text

from controller.apps import switch_session
from controller.apps.guard import guarded
from controller.dhcp import options as opt
from controller.dhcp import server
from controller.dhcp.facts import PortFacts, Settings, SubnetFacts
from controller.dhcp.packet import Malformed, parse
from controller.model.owners import DHCP as DHCP_OWNER
from controller.openflow import wire
from controller.runtime import Runtime

LOG = logging.getLogger(__name__)

CACHE_TTL_S = 10.0          # bounds staleness for changes made by another process
RECENT_LEASES = 200
CACHE_KINDS = {"port", "subnet", "network", "node", "router"}   # router: metadata route


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
        self._lock = threading.Lock()            # the cache, against the bus's flushes
        self._handle_lock = threading.Lock()     # counters and buckets: one receive thread per switch calls us
        self._cache: dict[tuple[int, int], tuple[float, PortFacts | None, str | None]] = {}
        self._generation = 0
        self._reader = self.rt.db.new_read_engine()   # its own pool: never waits for the API's
        self.rt.bus.subscribe(self._on_changes)

    def close(self):
        self.rt.bus.unsubscribe(self._on_changes)
        if self._reader is not self.rt.db.engine:
            self._reader.dispose()
        super().close()

    # --- the packet-in path -------------------------------------------------------

    @guarded
    def on_packet_in(self, msg, prefix: str) -> None:
        """A packet-in from the DHCP table with a port cookie (controller/apps/packet_in.py)."""
        dp = msg.datapath
        in_port = msg.match.get("in_port")
        with self._handle_lock:
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
        if req.msg_type == opt.REQUEST:           # selecting / init_reboot / renewing / rebinding
            self.counters[f"request_{decision.reason}"] += 1
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
        switch_session.send(dp, wire.packet_out_bytes(in_port, frame))   # the write gate

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
        # A miss loads every port of the switch: after a flush (any change to
        # a port anywhere) the next ports to ask usually share the switch,
        # and a few queries for all cost about what they cost for one.
        self.counters["cache_miss"] += 1
        with self._reader.connect() as conn:
            loaded = load_switch_facts(conn, dpid)
            conn.rollback()
        loaded.setdefault(in_port, (None, None))
        with self._lock:
            if gen == self._generation:     # no change was committed while we read
                for port, (facts, network_id) in loaded.items():
                    self._cache[(dpid, port)] = (now, facts, network_id)
        return loaded[in_port]


# Plain SQL built once: on the packet-in path (after a cache flush) SQLAlchemy's
# statement building costs more than SQLite's answer.
def _sql(statement: str, *lists: str):
    return text(statement).bindparams(*(bindparam(name, expanding=True) for name in lists))


_NODES = _sql("SELECT hostname, bridges FROM nodes")
_PORTS = _sql("SELECT id, network_id, mac_address, admin_state_up, ofport FROM ports "
              "WHERE host_id = :host AND ofport IS NOT NULL AND vif_type != 'unbound'")
_NETWORKS = _sql("SELECT id, mtu, admin_state_up FROM networks WHERE id IN :nets", "nets")
_DHCP_PORTS = _sql("SELECT id, network_id, mac_address FROM ports WHERE network_id IN :nets "
                   "AND device_owner = :owner ORDER BY created_at DESC", "nets")
_ALLOCS = _sql("SELECT a.port_id, a.subnet_id, a.ip_address FROM ipallocations a "
               "JOIN ports p ON p.id = a.port_id WHERE p.host_id = :host OR p.id IN :dhcp", "dhcp")
_SUBNETS = _sql("SELECT id, network_id, cidr, gateway_ip, enable_dhcp, ip_version, dns_nameservers, "
                "host_routes FROM subnets WHERE network_id IN :nets ORDER BY created_at, id", "nets")
_ROUTED = _sql("SELECT DISTINCT a.subnet_id FROM ipallocations a JOIN ports p ON p.id = a.port_id "
               "WHERE a.network_id IN :nets AND p.device_owner LIKE 'network:router_interface%'", "nets")


def load_switch_facts(conn, dpid: int) -> dict[int, tuple[PortFacts | None, str | None]]:
    """{ofport: (facts, network id)} for every port bound on the switch `dpid`:
    what DHCP needs to answer each. Facts are None for a port that gets no
    answer (its network has no DHCP port, or it or its network is down)."""
    hostname = next((h for h, bridges in conn.execute(_NODES)
                     if int((_json(bridges) or {}).get("br-int", -1)) == dpid), None)
    if hostname is None:
        return {}
    ports = conn.execute(_PORTS, {"host": hostname}).all()
    nets = sorted({p.network_id for p in ports})
    if not nets:
        return {}
    networks = {n.id: n for n in conn.execute(_NETWORKS, {"nets": nets})}
    # The oldest DHCP port of each network (rows newest first: the last one wins).
    dhcp_ports = {d.network_id: d for d in conn.execute(_DHCP_PORTS, {"nets": nets, "owner": DHCP_OWNER})}
    allocs: dict[str, list] = {}
    for a in conn.execute(_ALLOCS, {"host": hostname, "dhcp": [d.id for d in dhcp_ports.values()]}):
        allocs.setdefault(a.port_id, []).append(a)
    routed = {r[0] for r in conn.execute(_ROUTED, {"nets": nets})}
    server_ips = {d.network_id: {a.subnet_id: a.ip_address for a in allocs.get(d.id, ())}
                  for d in dhcp_ports.values()}
    # Per network, {subnet id: (its rank, its facts)}: in the network's subnet
    # order, so a DISCOVER is offered the address on the oldest DHCP-enabled subnet.
    subnets: dict[str, dict] = {}
    for sn in conn.execute(_SUBNETS, {"nets": nets}):
        ranked = subnets.setdefault(sn.network_id, {})
        ranked[sn.id] = (len(ranked), SubnetFacts(
            id=sn.id, cidr=sn.cidr, gateway_ip=sn.gateway_ip, enable_dhcp=bool(sn.enable_dhcp),
            ip_version=sn.ip_version, dns_nameservers=tuple(_json(sn.dns_nameservers) or ()),
            host_routes=tuple((r["destination"], r["nexthop"]) for r in (_json(sn.host_routes) or ())),
            # No router interface on the subnet: option 121 routes the metadata
            # address via the DHCP port (SubnetFacts.metadata_route).
            server_ip=server_ips.get(sn.network_id, {}).get(sn.id), metadata_route=sn.id not in routed))
    out = {}
    for port in ports:
        net, dhcp_port = networks.get(port.network_id), dhcp_ports.get(port.network_id)
        if net is None or dhcp_port is None or not net.admin_state_up or not port.admin_state_up:
            out[port.ofport] = (None, port.network_id)
            continue
        ranked = subnets.get(port.network_id, {})
        addresses = tuple((ranked[a.subnet_id][1], a.ip_address)
                          for a in sorted((a for a in allocs.get(port.id, ()) if a.subnet_id in ranked),
                                          key=lambda a: ranked[a.subnet_id][0]))
        out[port.ofport] = (PortFacts(id=port.id, mac=port.mac_address.lower(), mtu=net.mtu,
                                      addresses=addresses, server_mac=dhcp_port.mac_address.lower()),
                            port.network_id)
    return out


def _json(v):
    """JSON columns read with plain SQL: text on SQLite, decoded on PostgreSQL."""
    return json.loads(v) if isinstance(v, (str, bytes)) else v
