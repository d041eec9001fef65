"""The server's decisions (controller/dhcp/server.py): every message type and
REQUEST state, the NAK and ignore rules, options and where replies go. The
replies are decoded by scapy, not by our own parser."""
from __future__ import annotations

import dataclasses

from scapy.layers.dhcp import BOOTP
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from controller.dhcp import options as opt
from controller.dhcp.facts import Settings
from controller.dhcp.packet import parse
from controller.dhcp.server import decide
from tests.unit.test_dhcp_helpers import (SERVER_IP, SERVER_MAC, SETTINGS, VM_IP, VM_MAC,
                                          client_frame, port, scapy_options, subnet)

ALL_PRL = [("param_req_list", [1, 3, 6, 15, 26, 28, 121, 249, 51, 54])]


def run(msg="discover", facts=None, settings=SETTINGS, **kw):
    return decide(parse(client_frame(msg, **kw)), facts or port(), settings)


def test_discover_gets_an_offer_with_everything_a_client_needs():
    d = run("discover", xid=0xabcdef01)
    assert (d.reply, d.reason, d.ip) == ("offer", "discover", VM_IP)
    p = Ether(d.frame)
    assert p[BOOTP].op == 2 and p[BOOTP].xid == 0xabcdef01 and p[BOOTP].yiaddr == VM_IP
    assert p[BOOTP].chaddr[:6] == bytes.fromhex(VM_MAC.replace(":", ""))
    o = scapy_options(d.frame)
    assert o["message-type"] == 2
    assert o["server_id"] == SERVER_IP
    assert o["subnet_mask"] == "255.255.255.0"
    assert o["router"] == "10.0.0.1"
    assert o["name_server"] == ("192.0.2.53", "192.0.2.54")
    assert o["domain"] == b"openstacklocal"
    assert o["broadcast_address"] == "10.0.0.255"
    assert o["interface-mtu"] == 1458
    assert o["lease_time"] == 86400
    assert o["renewal_time"] == 43200 and o["rebinding_time"] == 75600
    # Not asked for: no classless routes (what dnsmasq does too).
    assert "classless_static_routes" not in o and 121 not in o


def test_lease_time_and_domain_come_from_settings():
    o = scapy_options(run(settings=Settings(lease_time=600, domain="")).frame)
    assert (o["lease_time"], o["renewal_time"], o["rebinding_time"]) == (600, 300, 525)
    assert "domain" not in o


def test_no_router_and_no_default_route_without_gateway():
    facts = port((subnet(gateway_ip=None), VM_IP))
    o = scapy_options(run(facts=facts, options=ALL_PRL).frame)
    assert "router" not in o
    assert "classless_static_routes" not in o      # nothing to route


def test_option_121_carries_host_routes_and_the_default_route():
    facts = port((subnet(host_routes=(("192.168.0.0/16", "10.0.0.254"),
                                       ("172.16.5.0/24", "10.0.0.253"))), VM_IP))
    d = run(facts=facts, options=[("param_req_list", [1, 3, 121, 249])])
    raw = _raw_options(d.frame)
    routes = opt.decode_classless_routes(raw[121])
    assert routes == [("0.0.0.0/0", "10.0.0.1"), ("192.168.0.0/16", "10.0.0.254"),
                      ("172.16.5.0/24", "10.0.0.253")]
    assert raw[249] == raw[121]
    # A host route for 0.0.0.0/0 replaces the gateway default.
    facts = port((subnet(host_routes=(("0.0.0.0/0", "10.0.0.9"),)), VM_IP))
    raw = _raw_options(run(facts=facts, options=[("param_req_list", [121])]).frame)
    assert opt.decode_classless_routes(raw[121]) == [("0.0.0.0/0", "10.0.0.9")]
    assert raw[3] == opt.ip4("10.0.0.1")     # option 3 still sent for clients ignoring 121


def test_parameter_request_list_order_is_honoured():
    d = run(options=[("param_req_list", [26, 6, 3, 1])])
    codes = list(_raw_options(d.frame))
    assert codes[:5] == [53, 54, 51, 58, 59]
    assert codes[5:9] == [26, 6, 3, 1]
    assert {15, 28} <= set(codes)                # always sent anyway


def test_reply_fits_the_clients_maximum_message_size():
    many = tuple((f"172.16.{i}.0/24", "10.0.0.254") for i in range(60))
    facts = port((subnet(host_routes=many), VM_IP))
    d = run(facts=facts, options=[("param_req_list", [1, 3, 121, 249]), ("max_dhcp_size", 576)])
    assert len(Ether(d.frame)[IP]) <= 576
    raw = _raw_options(d.frame)
    assert {53, 54, 51, 1, 3} <= set(raw)
    big = run(facts=facts, options=[("param_req_list", [1, 3, 121, 249]), ("max_dhcp_size", 1500)])
    assert 121 in _raw_options(big.frame)


def test_addressing_rfc2131_4_1():
    # no broadcast bit, no ciaddr: unicast to chaddr / yiaddr
    p = Ether(run("discover").frame)
    assert (p.dst, p[IP].dst, p.src, p[IP].src) == (VM_MAC, VM_IP, SERVER_MAC, SERVER_IP)
    # broadcast bit: broadcast, flags echoed
    p = Ether(run("discover", flags=0x8000).frame)
    assert (p.dst, p[IP].dst, p[BOOTP].flags) == ("ff:ff:ff:ff:ff:ff", "255.255.255.255", 0x8000)
    # ciaddr set (renewing): unicast to ciaddr even with the broadcast bit
    p = Ether(run("request", ciaddr=VM_IP, src=VM_IP, dst=SERVER_IP, flags=0x8000).frame)
    assert (p.dst, p[IP].dst, p[BOOTP].ciaddr) == (VM_MAC, VM_IP, VM_IP)


def test_request_selecting_init_reboot_renewing_rebinding_are_acked():
    sel = run("request", options=[("server_id", SERVER_IP), ("requested_addr", VM_IP)])
    reboot = run("request", options=[("requested_addr", VM_IP)])
    renew = run("request", ciaddr=VM_IP, src=VM_IP, dst=SERVER_IP)
    rebind = run("request", ciaddr=VM_IP, src=VM_IP, dst="255.255.255.255")
    for d, state in [(sel, "selecting"), (reboot, "init_reboot"), (renew, "renewing"),
                     (rebind, "rebinding")]:
        assert (d.reply, d.reason, d.ip) == ("ack", state, VM_IP)
        p = Ether(d.frame)
        assert p[BOOTP].yiaddr == VM_IP
        assert scapy_options(d.frame)["message-type"] == 5
        assert scapy_options(d.frame)["lease_time"] == 86400


def test_wrong_address_is_naked_in_every_state_and_naks_are_broadcast():
    cases = {
        "selecting": dict(options=[("server_id", SERVER_IP), ("requested_addr", "10.0.0.77")]),
        "init_reboot": dict(options=[("requested_addr", "10.0.0.77")]),
        "renewing": dict(ciaddr="10.0.0.77", src="10.0.0.77", dst=SERVER_IP),
        "rebinding": dict(ciaddr="10.0.0.77", src="10.0.0.77"),
    }
    for state, kw in cases.items():
        d = run("request", **kw)
        assert (d.reply, d.reason, d.ip) == ("nak", state, "10.0.0.77"), state
        p = Ether(d.frame)
        assert (p.dst, p[IP].dst) == ("ff:ff:ff:ff:ff:ff", "255.255.255.255")
        assert (p[BOOTP].yiaddr, p[BOOTP].ciaddr) == ("0.0.0.0", "0.0.0.0")
        o = scapy_options(d.frame)
        assert o["message-type"] == 6 and o["server_id"] == SERVER_IP
        assert "lease_time" not in o and "router" not in o


def test_port_ip_changed_means_nak_on_renewal():
    moved = port((subnet(), "10.0.0.50"))
    d = run("request", facts=moved, ciaddr=VM_IP, src=VM_IP, dst=SERVER_IP)
    assert (d.reply, d.ip) == ("nak", VM_IP)
    d = run("discover", facts=moved)
    assert (d.reply, d.ip) == ("offer", "10.0.0.50")


def test_another_servers_selection_is_ignored():
    d = run("request", options=[("server_id", "10.0.0.3"), ("requested_addr", VM_IP)])
    assert (d.reply, d.reason, d.frame) == (None, "other_server", None)


def test_request_without_any_address_is_dropped():
    assert run("request").reason == "request_without_address"


def test_inform_gets_an_ack_without_lease_or_yiaddr():
    d = run("inform", ciaddr=VM_IP, src=VM_IP, dst=SERVER_IP, options=ALL_PRL)
    assert (d.reply, d.reason) == ("ack", "inform")
    p = Ether(d.frame)
    assert p[BOOTP].yiaddr == "0.0.0.0" and p[BOOTP].ciaddr == VM_IP and p[IP].dst == VM_IP
    o = scapy_options(d.frame)
    assert o["message-type"] == 5 and o["router"] == "10.0.0.1"
    assert not {"lease_time", "renewal_time", "rebinding_time"} & set(o)
    assert run("inform", ciaddr="10.0.0.99", src="10.0.0.99").reason == "inform_unknown_address"


def test_release_and_decline_are_recorded_not_answered():
    r = run("release", ciaddr=VM_IP, src=VM_IP, dst=SERVER_IP)
    assert (r.reply, r.reason, r.ip, r.frame) == (None, "release", VM_IP, None)
    d = run("decline", options=[("requested_addr", VM_IP), ("server_id", SERVER_IP)])
    assert (d.reply, d.reason, d.ip) == (None, "decline", VM_IP)


def test_enable_dhcp_false_means_no_reply():
    facts = port((subnet(enable_dhcp=False), VM_IP))
    for msg in ("discover", "request", "inform"):
        d = run(msg, facts=facts, ciaddr=VM_IP, src=VM_IP)
        assert (d.reply, d.reason) == (None, "dhcp_disabled")


def test_another_mac_gets_nothing():
    d = run("discover", mac="fa:16:3e:99:99:99")
    assert (d.reply, d.reason) == (None, "unknown_client")


def test_several_subnets_serve_the_ipv4_dhcp_enabled_address():
    v6 = subnet(id="v6", cidr="2001:db8::/64", ip_version=6, gateway_ip="2001:db8::1",
                dns_nameservers=())
    off = subnet(id="off", cidr="10.9.0.0/24", gateway_ip="10.9.0.1", enable_dhcp=False)
    b = subnet(id="b", cidr="10.1.0.0/24", gateway_ip="10.1.0.1", server_ip="10.1.0.2",
               dns_nameservers=("192.0.2.99",))
    facts = port((v6, "2001:db8::5"), (off, "10.9.0.5"), (subnet(), VM_IP), (b, "10.1.0.5"))
    d = run("discover", facts=facts)
    assert d.ip == VM_IP                                   # first DHCP-enabled IPv4 address
    # A client asking for its other address gets it, with that subnet's options.
    d = run("discover", facts=facts, options=[("requested_addr", "10.1.0.5")])
    o = scapy_options(d.frame)
    assert d.ip == "10.1.0.5" and o["server_id"] == "10.1.0.2" and o["router"] == "10.1.0.1"
    assert o["name_server"] == "192.0.2.99"
    d = run("request", facts=facts, options=[("server_id", "10.1.0.2"), ("requested_addr", "10.1.0.5")])
    assert (d.reply, d.ip) == ("ack", "10.1.0.5")
    # The disabled subnet's address is not leased: NAK, spoken by a serving subnet.
    d = run("request", facts=facts, options=[("requested_addr", "10.9.0.5")])
    assert d.reply == "nak"


def test_subnet_without_a_dhcp_port_is_not_served():
    facts = port((subnet(server_ip=None), VM_IP))
    assert run(facts=facts).reason == "dhcp_disabled"


def test_changed_facts_change_the_answer_immediately():
    before = port()
    after = dataclasses.replace(before, addresses=((subnet(dns_nameservers=("198.51.100.1",),
                                                           host_routes=(("10.5.0.0/16", "10.0.0.9"),)),
                                                    VM_IP),))
    assert scapy_options(run(facts=before).frame)["name_server"] == ("192.0.2.53", "192.0.2.54")
    o = _raw_options(run(facts=after, options=[("param_req_list", [121])]).frame)
    assert o[6] == opt.ip4("198.51.100.1")
    assert ("10.5.0.0/16", "10.0.0.9") in opt.decode_classless_routes(o[121])


def _raw_options(frame: bytes) -> dict[int, bytes]:
    """Option code -> value, in wire order, read with a minimal independent walk."""
    assert frame[14 + 20 + 8 + 236:14 + 20 + 8 + 240] == b"\x63\x82\x53\x63"
    data = frame[14 + 20 + 8 + 240:]
    out, i = {}, 0
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        code, n = data[i], data[i + 1]
        out[code] = out.get(code, b"") + data[i + 2:i + 2 + n]
        i += 2 + n
    return out
