"""Router services that need the controller: resolve the MAC of each external network's gateway (the next hop of the
routers' SNAT and floating-IP traffic), the way a router would: an ARP
request sent from the router's gateway port on the gateway node, the reply
punted back by a flow (controller/flows/nat.py, learn_gateway_mac).

The MAC goes into controller/model/neighbours.py, which the World snapshot
reads, and into the database (restored at start: a restart changes no
flow); a new or changed MAC publishes a router change, so the reconciler
recompiles the NAT flows that need it. Requests repeat every REFRESH_S (a
replaced upstream router is noticed), every RETRY_S while some MAC is still
unknown, and at once when a gateway node connects or a router changes.

It also answers ICMP time exceeded, from the router's address on the
sender's subnet, for the TTL 0/1 packets the routing flows punt to the
controller with the router's cookie (controller/flows/l3.py punt_expiring;
an `invalid_ttl` packet-in from dec_ttl is answered the same way). The
answer is built by `time_exceeded_reply` (pure, unit-tested).
"""
from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Callable

from os_ken.base import app_manager
from os_ken.lib.packet import arp, ethernet, icmp, ipv4, packet
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from sqlalchemy import select

from controller import protocols as proto
from controller.apps import switch_session
from controller.apps.guard import guarded
from controller.db import models as m
from controller.events import Change
from controller.model import neighbours
from controller.flows import tables as t
from controller.model.router_snapshot import load_router_world
from controller.flows.uplink import tagged, uplink_of
from controller.model.world import World
from controller.runtime import Runtime

LOG = logging.getLogger(__name__)

REFRESH_S = 30.0
RETRY_S = 1.0
WAKE_ON = ("router", "floatingip", "node", "network", "subnet")


class L3Arp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rt = Runtime.current()
        self.datapaths: dict[int, object] = {}
        self.requests_sent = 0
        self.time_exceeded_sent = 0
        self._world: World | None = None
        self._wake = threading.Event()
        self._stopping = False
        self.rt.bus.subscribe(self._on_changes)
        self._thread = threading.Thread(target=self._worker, name="l3-arp", daemon=True)
        self._thread.start()

    def close(self):
        self._stopping = True
        self._wake.set()
        self.rt.bus.unsubscribe(self._on_changes)

    # --- events --------------------------------------------------------------------

    def _on_changes(self, changes) -> None:
        if any(c.kind in WAKE_ON for c in changes):
            self._wake.set()

    @switch_session.on_connection
    def _on_state(self, dp, up: bool):
        if up:
            self.datapaths[dp.id] = dp
            self._wake.set()
        elif self.datapaths.get(dp.id) is dp:
            del self.datapaths[dp.id]

    @guarded
    def on_packet_in(self, msg, prefix: str) -> None:
        """A packet-in with a router cookie (controller/apps/packet_in.py)."""
        pkt = packet.Packet(msg.data)
        reply = pkt.get_protocol(arp.arp)
        if reply is not None and reply.opcode == arp.ARP_REPLY:
            self.learn_reply(reply.src_ip, reply.src_mac, reply.dst_ip)
        elif pkt.get_protocol(ipv4.ipv4) is not None:
            self.time_exceeded(msg, pkt, prefix)

    def learn_reply(self, src_ip: str, src_mac: str, dst_ip: str) -> None:
        """An ARP reply from src_ip to a router gateway address dst_ip."""
        world = self._world
        if world is None:
            return
        routers = [r for r in world.routers.values()
                   if r.gateway and r.gateway.ip == dst_ip and r.gateway.nexthop == src_ip]
        changed = []
        for net in sorted({r.gateway.network_id for r in routers}):
            if neighbours.learn(net, src_ip, src_mac):
                neighbours.store(self.rt.db, net, src_ip, src_mac)     # kept across restarts
                changed += [r.id for r in routers if r.gateway.network_id == net]
        if changed:
            LOG.info("external gateway %s is at %s (routers %s)", src_ip, src_mac, changed)
            self.rt.bus.publish([Change("router", rid, "update") for rid in changed])

    def time_exceeded(self, msg, pkt, router_prefix: str) -> None:
        """ICMP time exceeded back to the sender, a VM port on this switch,
        for a packet a TTL punt flow (controller/flows/l3.py punt_expiring)
        or an `invalid_ttl` packet-in handed over."""
        in_port = msg.match.get("in_port")
        if in_port is None or in_port >= t.INT_PATCH_TUN_OFPORT:
            return                       # from another host or the outside: not our sender
        data = time_exceeded_reply(self._world, router_prefix, bytes(msg.data), self._port_mac)
        if data is None:
            return
        dp = msg.datapath
        out = parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                                  actions=[parser.OFPActionOutput(in_port)], data=data)
        switch_session.send_msg(dp, out)
        self.time_exceeded_sent += 1

    def _port_mac(self, network_id: str, ip: str) -> str | None:
        """The MAC of the port holding ip on the network (the router World
        has no VM ports)."""
        with self.rt.db.read() as s:
            mac = s.scalar(select(m.Port.mac_address).join(m.IPAllocation)
                           .where(m.IPAllocation.network_id == network_id,
                                  m.IPAllocation.ip_address == ip))
        return mac.lower() if mac else None

    # --- resolving -----------------------------------------------------------------

    def _worker(self):
        while not self._stopping:
            unresolved = True
            try:
                unresolved = self.resolve_all()
            except Exception:
                LOG.exception("external gateway resolution failed; retrying")
            self._wake.wait(RETRY_S if unresolved else REFRESH_S)
            self._wake.clear()

    def resolve_all(self) -> bool:
        """Send one ARP request per (router gateway, next hop) from the
        router's gateway node; -> True while some next hop is unknown.
        Reads only routers and what they sit on (router_snapshot), not the
        whole World: this runs every RETRY_S while a MAC is unknown."""
        with self.rt.db.read() as s:
            world = load_router_world(s)
        self._world = world
        unresolved = False
        for r in world.routers.values():
            gw = r.gateway
            host = world.nodes.get(world.router_host(r.id) or "")
            if gw is None or not gw.nexthop or host is None:
                continue
            if (gw.network_id, gw.nexthop) not in world.neighbours:
                unresolved = True
            self._send_request(world, host, gw)
        return unresolved

    def _send_request(self, world: World, host, gw) -> None:
        ext = world.networks.get(gw.network_id)
        vlan = world.local_vlan(host.id, gw.network_id)
        up = uplink_of(host, ext) if ext else None
        dp = self.datapaths.get(dict(host.bridges).get("br-int"))
        if dp is None or vlan is None or up is None:
            return
        pkt = packet.Packet()
        pkt.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=gw.mac,
                                           ethertype=proto.ETH_TYPE_ARP))
        pkt.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=gw.mac, src_ip=gw.ip,
                                 dst_mac="00:00:00:00:00:00", dst_ip=gw.nexthop))
        pkt.serialize()
        # Into br-int's patch to the external bridge, tagged with the local
        # VLAN like every frame br-int sends there (br-ex translates it).
        actions = [parser.OFPActionPushVlan(proto.ETH_TYPE_8021Q),
                   parser.OFPActionSetField(vlan_vid=tagged(vlan)),
                   parser.OFPActionOutput(up.ofport)]
        out = parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                                  actions=actions, data=pkt.data)
        switch_session.send_msg(dp, out)
        self.requests_sent += 1


def time_exceeded_reply(world: World | None, router_prefix: str, frame: bytes,
                        port_mac: Callable[[str, str], str | None] | None = None) -> bytes | None:
    """The ICMP time exceeded (RFC 792) frame answering `frame`, an untagged
    IPv4 frame a VM sent to the router whose cookie prefix is
    `router_prefix`, from that router's address on the sender's subnet;
    None when there is nothing to answer. Whatever the flow did to the frame
    before punting it, the router is told by its cookie and the sender's
    subnet, and the MACs by the router interface on that subnet (or, when
    the frame's MACs were already rewritten, port_mac(network, sender ip),
    by default looked up in the world's ports)."""
    if world is None:
        return None
    pkt = packet.Packet(frame)
    eth, ip = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv4.ipv4)
    if eth is None or ip is None or eth.ethertype != proto.ETH_TYPE_IP or ip.offset:
        return None                      # only about first fragments
    inner = pkt.get_protocol(icmp.icmp)
    if ip.proto == proto.IPPROTO_ICMP and (inner is None or inner.type not in (icmp.ICMP_ECHO_REPLY,
                                                              icmp.ICMP_ECHO_REQUEST)):
        return None                      # never an ICMP error about an ICMP error
    sender = ipaddress.ip_address(ip.src)
    iface = next((i for r in world.routers.values() if r.id.startswith(router_prefix)
                  and r.admin_state_up for i in r.interfaces
                  if sender in ipaddress.ip_network(i.cidr)), None)
    if iface is None:
        return None
    vm_mac = eth.src if eth.dst == iface.mac else None
    if vm_mac is None:                   # MACs already rewritten (dec_ttl's invalid_ttl)
        vm_mac = (port_mac or _world_port_mac(world))(iface.network_id, ip.src)
    if vm_mac is None:
        return None
    original = frame[14:14 + ip.header_length * 4 + 8]      # the header + 8 bytes (RFC 792)
    out = packet.Packet()
    out.add_protocol(ethernet.ethernet(dst=vm_mac, src=iface.mac, ethertype=proto.ETH_TYPE_IP))
    out.add_protocol(ipv4.ipv4(src=iface.ip, dst=ip.src, proto=proto.IPPROTO_ICMP, ttl=64))
    out.add_protocol(icmp.icmp(type_=icmp.ICMP_TIME_EXCEEDED, code=0, csum=0,
                               data=icmp.TimeExceeded(data_len=0, data=original)))
    out.serialize()
    return bytes(out.data)


def _world_port_mac(world: World) -> Callable[[str, str], str | None]:
    def find(network_id: str, ip: str) -> str | None:
        return next((p.mac for p in world.ports_of_network(network_id)
                     if any(a == ip for _s, a in p.fixed_ips)), None)
    return find
