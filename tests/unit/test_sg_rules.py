"""Security-group rule validation and normalisation (pure)."""
import pytest

from controller.api import sg_rules as R


def rule(**kw):
    base = {"security_group_id": "sg", "direction": "ingress", "ethertype": "IPv4",
            "protocol": None, "port_range_min": None, "port_range_max": None,
            "remote_ip_prefix": None, "remote_group_id": None}
    base.update(kw)
    return base


@pytest.mark.parametrize("given,expected", [
    ("TCP", "tcp"), ("udp", "udp"), ("6", "6"), (17, "17"), ("0", "0"), ("255", "255"),
    ("any", None), (None, None), ("icmpv6", "icmpv6"),
])
def test_protocol_converter_accepts_names_and_numbers(given, expected):
    assert R.convert_protocol(given) == expected


@pytest.mark.parametrize("bad", ["tcpx", "256", "-1", True, []])
def test_protocol_converter_refuses_unknown(bad):
    with pytest.raises(R.SecurityGroupRuleInvalidProtocol) as e:
        R.convert_protocol(bad)
    assert e.value.status == 400


@pytest.mark.parametrize("bad", ["x", -1, 65536, 1.5])
def test_port_converter_refuses_out_of_range(bad):
    with pytest.raises(R.SecurityGroupInvalidPortValue):
        R.convert_port(bad)


def test_ip_prefix_is_canonicalised():
    assert R.convert_ip_prefix("10.0.0.5/24") == "10.0.0.0/24"
    assert R.convert_ip_prefix("10.0.0.5") == "10.0.0.5/32"
    assert R.convert_ip_prefix("2001:db8::1/64") == "2001:db8::/64"
    with pytest.raises(R.InvalidCIDR):
        R.convert_ip_prefix("10.0.0.300/24")


def test_tcp_needs_both_ports_in_order():
    assert R.normalise(rule(protocol="tcp", port_range_min=22, port_range_max=22))["port_range_min"] == 22
    with pytest.raises(R.SecurityGroupInvalidPortRange):
        R.normalise(rule(protocol="tcp", port_range_min=80, port_range_max=22))
    with pytest.raises(R.SecurityGroupInvalidPortRange):
        R.normalise(rule(protocol="udp", port_range_min=80))
    with pytest.raises(R.SecurityGroupInvalidPortValue):
        R.normalise(rule(protocol="tcp", port_range_min=0, port_range_max=10))


def test_full_port_range_becomes_no_range():
    r = R.normalise(rule(protocol="6", port_range_min=1, port_range_max=65535))
    assert r["port_range_min"] is None and r["port_range_max"] is None


def test_ports_need_a_protocol_that_has_ports():
    with pytest.raises(R.SecurityGroupProtocolRequiredWithPorts):
        R.normalise(rule(port_range_min=22, port_range_max=22))
    with pytest.raises(R.SecurityGroupInvalidProtocolForPort):
        R.normalise(rule(protocol="gre", port_range_min=22, port_range_max=22))


def test_icmp_type_and_code():
    assert R.normalise(rule(protocol="icmp", port_range_min=8, port_range_max=0))["port_range_min"] == 8
    assert R.normalise(rule(protocol="icmp", port_range_min=8))["port_range_max"] is None
    with pytest.raises(R.SecurityGroupInvalidIcmpValue):
        R.normalise(rule(protocol="icmp", port_range_min=256))
    with pytest.raises(R.SecurityGroupMissingIcmpType):
        R.normalise(rule(protocol="icmp", port_range_max=0))


def test_icmp_on_ipv6_becomes_ipv6_icmp_and_ipv6_protocols_need_ipv6():
    assert R.normalise(rule(ethertype="IPv6", protocol="icmp"))["protocol"] == "ipv6-icmp"
    with pytest.raises(R.SecurityGroupEthertypeConflictWithProtocol):
        R.normalise(rule(ethertype="IPv4", protocol="ipv6-icmp"))


def test_prefix_version_must_match_ethertype():
    with pytest.raises(R.SecurityGroupRuleParameterConflict):
        R.normalise(rule(ethertype="IPv6", remote_ip_prefix="10.0.0.0/8"))
    assert R.normalise(rule(ethertype="IPv6", remote_ip_prefix="2001:db8::/32"))


def test_only_one_remote():
    with pytest.raises(R.SecurityGroupMultipleRemoteEntites):
        R.normalise(rule(remote_ip_prefix="10.0.0.0/8", remote_group_id="g"))


def test_duplicate_keys_compare_protocol_numbers_and_any_prefix():
    assert R.rule_key(rule(protocol="tcp")) == R.rule_key(rule(protocol="6"))
    assert R.rule_key(rule(remote_ip_prefix="0.0.0.0/0")) == R.rule_key(rule())
    assert R.rule_key(rule(direction="egress")) != R.rule_key(rule())


def test_default_rules_are_neutrons_four():
    rules = R.default_rules("g1")
    assert sorted((r["direction"], r["ethertype"], r["remote_group_id"]) for r in rules) == [
        ("egress", "IPv4", None), ("egress", "IPv6", None),
        ("ingress", "IPv4", "g1"), ("ingress", "IPv6", "g1")]
