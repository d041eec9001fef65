"""Security groups compiled to conntrack flows (controller/flows/security_groups.py),
checked by sending packets through the fake flow tables of two hosts, with
the trace's conntrack model (controller/flows/conntrack_model.py)."""
import dataclasses
import random
import uuid

from controller.flows import tables as t
from controller.flows.compiler import compile_node
from controller.flows.security_groups import port_range_masks
from controller.flows.trace import DROPPED
from tests.unit.fakeoftable import DEFAULT_SG, compile_all, default_group, fabric, group, make_world
from tests.unit.test_flows_l2 import H1, H2, mknet, port

WEB = str(uuid.uuid5(uuid.NAMESPACE_DNS, "sg-web"))
MAC = "fa:16:3e:00:00:%02x"


def tcp(src, dst, sport=40000, dport=22, proto=6):
    s, d = src if isinstance(src, tuple) else (src.mac, src.fixed_ips[0][1]), (dst.mac, dst.fixed_ips[0][1])
    pkt = {"eth_src": s[0], "eth_dst": d[0], "eth_type": 0x0800, "ipv4_src": s[1], "ipv4_dst": d[1],
           "ip_proto": proto}
    if proto == 6:
        pkt.update(tcp_src=sport, tcp_dst=dport)
    elif proto == 17:
        pkt.update(udp_src=sport, udp_dst=dport)
    return pkt


def icmp(src, dst, typ=8, code=0):
    pkt = tcp(src, dst, proto=1)
    pkt.update(icmpv4_type=typ, icmpv4_code=code)
    return pkt


def reply(pkt):
    r = dict(pkt)
    for a, b in (("eth_src", "eth_dst"), ("ipv4_src", "ipv4_dst"), ("tcp_src", "tcp_dst"),
                 ("udp_src", "udp_dst")):
        if a in pkt:
            r[a], r[b] = pkt[b], pkt[a]
    if pkt.get("icmpv4_type") == 8:
        r["icmpv4_type"] = 0
    return r


def delivered(fab, p, pkt):
    return [(n, o) for n, o, _ in fab.send(p.node_id, p.ofport, pkt)]


class Lab:
    """a, b on hv1; c on hv2; all in one network; groups as given."""

    def __init__(self, groups=(), a_groups=(DEFAULT_SG,), b_groups=(DEFAULT_SG,), c_groups=(DEFAULT_SG,),
                 mode="gre", **c_kw):
        self.n = mknet(mode)
        self.a = port(self.n, H1, 5, MAC % 1, "10.0.0.1", sgs=a_groups)
        self.b = port(self.n, H1, 6, MAC % 2, "10.0.0.2", sgs=b_groups)
        self.c = port(self.n, H2, 5, MAC % 3, "10.0.0.3", sgs=c_groups, **c_kw)
        self.groups = list(groups)
        self.world = make_world([H1, H2], [self.n], [self.a, self.b, self.c], security_groups=self.groups)
        self.fab = fabric(self.world)

    def recompile(self, world):
        """The switches get the new world's flows; conntrack stays."""
        ct = self.fab.conntrack
        self.world, self.fab = world, fabric(world)
        self.fab.conntrack = ct


def test_default_group_members_talk_and_replies_come_back():
    for mode in ("gre", "vlan"):
        lab = Lab(mode=mode)
        for src, dst in ((lab.a, lab.b), (lab.a, lab.c), (lab.c, lab.b)):
            pkt = tcp(src, dst)
            assert delivered(lab.fab, src, pkt) == [(dst.node_id, dst.ofport)]
            assert delivered(lab.fab, dst, reply(pkt)) == [(src.node_id, src.ofport)]
            assert delivered(lab.fab, src, icmp(src, dst)) == [(dst.node_id, dst.ofport)]


def test_ingress_from_outside_the_group_is_dropped_and_the_trace_says_why():
    web = group(WEB, {"direction": "egress", "ethertype": "IPv4"}, name="web")
    lab = Lab([web], b_groups=(WEB,))
    # b is not in the default group: a only accepts ingress from its own group.
    tr = lab.fab.trace(H1.id, 6, tcp(lab.b, lab.a, dport=22))
    assert tr.delivered() == []
    reason = tr.outcomes[-1].reason
    assert "security group default" in reason and "tcp/22 from 10.0.0.2" in reason, reason
    # b's group has no ingress rule; c (default) does not admit b either.
    assert delivered(lab.fab, lab.a, tcp(lab.a, lab.b)) == []
    assert delivered(lab.fab, lab.b, tcp(lab.b, lab.c, sport=1234, dport=5555)) == []


def test_rules_by_protocol_port_range_icmp_and_prefix():
    web = group(WEB,
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                 "port_range_min": 1000, "port_range_max": 1999},
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "udp",
                 "port_range_min": 53, "port_range_max": 53, "remote_ip_prefix": "10.0.0.2/32"},
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
                 "port_range_min": 8, "port_range_max": 0},
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "132"},
                name="web")
    lab = Lab([web], c_groups=(WEB,))
    to_c = [(H2.id, 5)]
    for dport, ok in ((999, False), (1000, True), (1500, True), (1999, True), (2000, False)):
        assert (delivered(lab.fab, lab.a, tcp(lab.a, lab.c, dport=dport)) == to_c) is ok, dport
    assert delivered(lab.fab, lab.b, tcp(lab.b, lab.c, dport=53, proto=17)) == to_c
    assert delivered(lab.fab, lab.a, tcp(lab.a, lab.c, dport=53, proto=17)) == []     # not from 10.0.0.2
    assert delivered(lab.fab, lab.b, tcp(lab.b, lab.c, dport=54, proto=17)) == []
    assert delivered(lab.fab, lab.a, icmp(lab.a, lab.c, 8, 0)) == to_c
    assert delivered(lab.fab, lab.a, icmp(lab.a, lab.c, 13, 0)) == []                 # timestamp
    assert delivered(lab.fab, lab.a, tcp(lab.a, lab.c, proto=132)) == to_c            # by number
    assert delivered(lab.fab, lab.a, tcp(lab.a, lab.c, proto=47)) == []


def test_port_ranges_become_the_fewest_masked_matches():
    assert port_range_masks(22, 22) == [22]
    assert port_range_masks(1024, 2047) == [(1024, 0xFC00)]
    assert len(port_range_masks(1, 65535)) == 16
    rng = random.Random(7)
    for _ in range(200):
        lo = rng.randint(1, 65535)
        hi = rng.randint(lo, min(65535, lo + rng.choice((1, 10, 1000, 70000))))
        covered = set()
        for m in port_range_masks(lo, hi):
            v, mask = m if isinstance(m, tuple) else (m, 0xFFFF)
            size = (~mask & 0xFFFF) + 1
            assert v & ~mask & 0xFFFF == 0
            covered |= set(range(v, v + size))
        assert covered == set(range(lo, hi + 1))
        assert len(port_range_masks(lo, hi)) <= 2 * 16


def test_remote_group_membership_follows_ports_joining_and_leaving():
    web = group(WEB, {"direction": "ingress", "ethertype": "IPv4", "remote_group_id": DEFAULT_SG},
                name="web")
    lab = Lab([web], a_groups=(WEB,), b_groups=(), c_groups=(DEFAULT_SG,))
    assert delivered(lab.fab, lab.c, tcp(lab.c, lab.a)) == [(H1.id, 5)]         # c is a member
    b_in = dataclasses.replace(lab.b, security_groups=(DEFAULT_SG,))
    assert delivered(lab.fab, lab.b, tcp(lab.b, lab.a, sport=1)) == []
    w = make_world([H1, H2], [lab.n], [lab.a, b_in, lab.c], security_groups=[web])
    lab.recompile(w)
    assert delivered(lab.fab, b_in, tcp(b_in, lab.a, sport=1)) == [(H1.id, 5)]   # b joined
    c_out = dataclasses.replace(lab.c, security_groups=())
    lab.recompile(make_world([H1, H2], [lab.n], [lab.a, b_in, c_out], security_groups=[web]))
    assert delivered(lab.fab, lab.c, tcp(lab.c, lab.a, sport=2)) == []          # c left


def test_remote_group_flows_grow_as_ports_plus_members_not_their_product():
    def sg_flows(n):
        net = mknet("gre")
        ports = [port(net, H1, 10 + i, "fa:16:3e:01:%02x:%02x" % divmod(i, 256), f"10.0.{i // 250}.{i % 250 + 1}")
                 for i in range(n)]
        flows = compile_all(make_world([H1], [net], ports))[H1.id]
        return sum(1 for f in flows if f.table in (t.IntTable.INGRESS_ACL, t.IntTable.INGRESS_ACL_CT,
                                                   t.IntTable.EGRESS_ACL, t.IntTable.EGRESS_ACL_CT))
    f10, f20, f40 = sg_flows(10), sg_flows(20), sg_flows(40)
    assert f40 - f20 == 2 * (f20 - f10)          # linear in N
    assert (f40 - f20) / 20 < 20                 # a handful of flows per port


def test_conjunctions_have_every_clause_and_are_never_mixed_with_other_actions():
    lab = Lab()
    for flows in compile_all(lab.world).values():
        clauses = {}
        for f in flows:
            conj = [a for a in f.actions if a[0] == "conjunction"]
            assert not conj or len(conj) == len(f.actions)
            for _op, cid, k, n in conj:
                clauses.setdefault((f.table, cid), set()).add((k, n, f.priority))
        assert clauses
        accepts = {(f.table, dict(f.match)["conj_id"]) for f in flows if "conj_id" in dict(f.match)}
        for key, ks in clauses.items():
            # (the IPv6 rule of the default group has no IPv6 member: its clause 1 is empty)
            assert {(k, n) for k, n, _ in ks} <= {(1, 2), (2, 2)} and len({p for *_x, p in ks}) == 1
            assert key in accepts
        assert any(len(ks) == 2 for ks in clauses.values())


def test_removing_a_rule_cuts_its_connections_and_an_unrelated_change_does_not():
    ssh = {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
           "port_range_min": 22, "port_range_max": 22}
    http = dict(ssh, port_range_min=80, port_range_max=80)
    egress = {"direction": "egress", "ethertype": "IPv4"}
    lab = Lab([group(WEB, egress, ssh, http, name="web")], c_groups=(WEB,))
    s22, s80 = tcp(lab.a, lab.c, sport=1022, dport=22), tcp(lab.a, lab.c, sport=1080, dport=80)
    for pkt in (s22, s80):
        assert delivered(lab.fab, lab.a, pkt) == [(H2.id, 5)]
        assert delivered(lab.fab, lab.c, reply(pkt)) == [(H1.id, 5)]
    # Remove the http rule: ssh (established) goes on, http is cut both ways.
    lab.recompile(make_world([H1, H2], [lab.n], [lab.a, lab.b, lab.c],
                             security_groups=[group(WEB, egress, ssh, name="web")]))
    assert delivered(lab.fab, lab.a, s22) == [(H2.id, 5)]
    assert delivered(lab.fab, lab.c, reply(s22)) == [(H1.id, 5)]
    tr = lab.fab.trace(H1.id, 5, s80)
    assert tr.delivered() == [] and "connection cut" in tr.outcomes[-1].reason
    assert delivered(lab.fab, lab.c, reply(s80)) == []
    # Put it back: the cut connection stays cut, a new one works.
    lab.recompile(make_world([H1, H2], [lab.n], [lab.a, lab.b, lab.c],
                             security_groups=[group(WEB, egress, ssh, http, name="web")]))
    assert delivered(lab.fab, lab.c, reply(s80)) == []
    assert delivered(lab.fab, lab.a, tcp(lab.a, lab.c, sport=2080, dport=80)) == [(H2.id, 5)]


def test_same_host_traffic_passes_both_ports_rules():
    """a and b share a host: b's ingress rules still judge a's connection
    (each port has its own conntrack zone)."""
    egress_only = group(WEB, {"direction": "egress", "ethertype": "IPv4"}, name="web")
    lab = Lab([egress_only], b_groups=(WEB,))
    pkt = tcp(lab.a, lab.b)
    tr = lab.fab.trace(H1.id, 5, pkt)
    assert tr.delivered() == [] and "security group web" in tr.outcomes[-1].reason
    # twice: the first try committed a's side; b's side still says no
    assert delivered(lab.fab, lab.a, pkt) == []


def test_port_security_disabled_and_no_groups():
    lab = Lab(c_groups=(), ps=False)
    spoofed = tcp(("fa:16:3e:99:99:99", "10.9.9.9"), lab.a)
    assert delivered(lab.fab, lab.c, spoofed) == []          # a's group does not know 10.9.9.9
    # c without port security: no filtering of c's traffic, in or out
    assert delivered(lab.fab, lab.a, tcp(lab.a, lab.c)) == [(H2.id, 5)]
    lab_ps_no_groups = Lab(c_groups=())
    assert delivered(lab_ps_no_groups.fab, lab_ps_no_groups.a, tcp(lab.a, lab.c)) == []
    flows = compile_all(lab.world)[H2.id]
    assert not [f for f in flows if f.match and dict(f.match).get(t.REG_IN_PORT) == 5
                and f.table in (t.IntTable.INGRESS_ACL, t.IntTable.EGRESS_ACL)]


def test_allowed_address_pairs_widen_membership():
    vip = "10.0.0.100"
    lab = Lab(c_groups=(DEFAULT_SG,), allowed_address_pairs=((vip, MAC % 3),))
    from_vip = tcp((lab.c.mac, vip), lab.a)
    assert delivered(lab.fab, lab.c, from_vip) == [(H1.id, 5)]
    lab2 = Lab(c_groups=(DEFAULT_SG,))
    assert delivered(lab2.fab, lab2.c, from_vip) == []          # spoofed without the pair
    # a CIDR pair next to plain addresses: members of both forms compile
    lab3 = Lab(c_groups=(DEFAULT_SG,), allowed_address_pairs=(("10.0.1.0/24", MAC % 3),))
    assert all(compile_node(lab3.world, h).complete for h in (H1, H2))
    assert delivered(lab3.fab, lab3.c, tcp((lab3.c.mac, "10.0.1.7"), lab3.a)) == [(H1.id, 5)]


def test_a_vm_cannot_be_a_dhcp_server():
    lab = Lab()
    offer = tcp(lab.a, lab.b, sport=67, dport=68, proto=17)
    tr = lab.fab.trace(H1.id, 5, offer)
    assert tr.delivered() == [] and "DHCP server" in tr.outcomes[-1].reason
    ra = {"eth_src": lab.a.mac, "eth_dst": "33:33:00:00:00:01", "eth_type": 0x86DD,
          "ipv6_src": "fe80::1", "ipv6_dst": "ff02::1", "ip_proto": 58, "icmpv6_type": 134}
    assert [o.kind for o in lab.fab.trace(H1.id, 5, ra).outcomes] == [DROPPED]


def test_a_security_group_change_that_swaps_flows_goes_in_one_bundle():
    from controller.apps.switch_session import _swaps_acl
    from controller.flows.flow import Flow, match
    from controller.flows.plan import SwitchPlan
    acl = Flow("br-int", t.IntTable.EGRESS_ACL_CT, 100, match(reg7=5, eth_type=0x0800), (("goto", 70),))
    l2 = Flow("br-int", t.IntTable.L2_LOOKUP, 100, match(metadata=1), (("goto", 60),))
    assert _swaps_acl(SwitchPlan(adds=[acl], dels=[dataclasses.replace(acl, priority=90)]))
    assert _swaps_acl(SwitchPlan(adds=[l2], mods=[acl]))
    assert not _swaps_acl(SwitchPlan(adds=[acl]))             # only adds: never half a rule set
    assert not _swaps_acl(SwitchPlan(dels=[acl]))
    assert not _swaps_acl(SwitchPlan(adds=[l2], dels=[l2]))   # no security-group flow


def test_ipv6_rules_are_installed_too():
    ssh6 = {"direction": "ingress", "ethertype": "IPv6", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "fe80::/10"}
    lab = Lab([group(WEB, {"direction": "egress", "ethertype": "IPv6"}, ssh6, name="web")], c_groups=(WEB,))

    def tcp6(dport):
        return {"eth_src": lab.a.mac, "eth_dst": lab.c.mac, "eth_type": 0x86DD, "ipv6_src": "fe80::1",
                "ipv6_dst": "fe80::3", "ip_proto": 6, "tcp_src": 40000, "tcp_dst": dport}
    assert delivered(lab.fab, lab.a, tcp6(22)) == [(H2.id, 5)]
    assert delivered(lab.fab, lab.a, tcp6(23)) == []
    back = dict(tcp6(22), eth_src=lab.c.mac, eth_dst=lab.a.mac, ipv6_src="fe80::3", ipv6_dst="fe80::1",
                tcp_src=22, tcp_dst=40000)
    assert delivered(lab.fab, lab.c, back) == [(H1.id, 5)]        # the reply, through a's zone
