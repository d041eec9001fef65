"""Security-group rules as Neutron validates and normalises them (pure: no DB,
no HTTP), plus Neutron's default rules.

`normalise(rule)` takes a rule dict whose attributes already went through the
attribute-map converters (ethertype 'IPv4'/'IPv6', direction checked, port
values ints or None) and returns the canonical rule, or raises one of the
errors below. `rule_key(rule)` is what makes two rules duplicates.
"""
from __future__ import annotations

import netaddr

from controller.api.l3_errors import BadRequest, NeutronError
from controller.protocols import PROTOCOLS, protocol_number  # noqa: F401 (part of this module's API)

# Protocols whose port_range_min/max are ports (1..65535).
PORT_PROTOCOLS = {6, 17, 33, 132, 136}
PORT_PROTOCOL_NAMES = ("tcp", "udp", "dccp", "sctp", "udplite")
# Protocols whose port_range_min/max are ICMP type and code (0..255).
ICMP_PROTOCOLS = {1, 58}
# Protocols that only exist for IPv6.
IPV6_ONLY = {"ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt",
             "ipv6-opts", "ipv6-route", "41", "43", "44", "58", "59", "60"}
ANY = ("any", "")


# --- errors (Neutron's names, all 400 unless noted) ------------------------------

class SecurityGroupRuleInvalidProtocol(BadRequest):
    message = ("Security group rule protocol %(protocol)s not supported. Only protocol "
               "values %(values)s and integer representations [0 to 255] are supported.")


class SecurityGroupInvalidPortValue(BadRequest):
    message = "Invalid value for port %(port)s."


class SecurityGroupInvalidPortRange(BadRequest):
    message = "For TCP/UDP protocols, port_range_min must be <= port_range_max"


class SecurityGroupProtocolRequiredWithPorts(BadRequest):
    message = "Must also specify protocol if port range is given."


class SecurityGroupInvalidProtocolForPort(BadRequest):
    message = ("Invalid protocol %(protocol)s for port range, only supported for "
               "%(valid_port_protocols)s protocols.")


class SecurityGroupInvalidIcmpValue(BadRequest):
    message = "Invalid value for ICMP %(field)s (%(attr)s) %(value)s. It must be 0 to 255."


class SecurityGroupMissingIcmpType(BadRequest):
    message = ("ICMP code (port-range-max) %(value)s is provided but ICMP type "
               "(port-range-min) is missing.")


class SecurityGroupMultipleRemoteEntites(BadRequest):
    message = ("Only one of remote_ip_prefix, remote_group_id or "
               "remote_address_group_id may be provided.")


class SecurityGroupRuleParameterConflict(BadRequest):
    message = "Conflicting value ethertype %(ethertype)s for CIDR %(cidr)s"


class SecurityGroupEthertypeConflictWithProtocol(BadRequest):
    message = "Invalid ethertype %(ethertype)s for protocol %(protocol)s."


class InvalidCIDR(BadRequest):
    message = "Invalid CIDR %(input)s for IP prefix."


class SecurityGroupRuleExists(NeutronError):
    status = 409
    message = "Security group rule already exists. Rule id is %(rule_id)s."


class DuplicateSecurityGroupRuleInPost(NeutronError):
    status = 409
    message = "Duplicate Security Group Rule in POST."


# --- converters (used by the attribute map) --------------------------------------

def convert_protocol(value):
    """Name (any case) or number 0..255 -> canonical string; 'any' -> None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _bad_protocol(value)
    if isinstance(value, str) and value.lower() in ANY:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        if isinstance(value, str) and value.lower() in PROTOCOLS:
            return value.lower()
        raise _bad_protocol(value)
    if 0 <= number <= 255:
        # Stored as a string so one column holds names and numbers alike.
        return str(number)
    raise _bad_protocol(value)


def _bad_protocol(value):
    return SecurityGroupRuleInvalidProtocol(protocol=value, values=sorted(PROTOCOLS))


def convert_port(value):
    """A port / ICMP value: int 0..65535 or None."""
    if value is None:
        return None
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        raise SecurityGroupInvalidPortValue(port=value)
    if not 0 <= number <= 65535 or isinstance(value, bool):
        raise SecurityGroupInvalidPortValue(port=value)
    return number


def convert_ip_prefix(value):
    """Canonical CIDR text: host bits cleared, a bare address becomes /32 or /128."""
    if value is None:
        return None
    try:
        return str(netaddr.IPNetwork(value, expand_partial=False).cidr)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise InvalidCIDR(input=value)


# --- the rule as a whole ----------------------------------------------------------

def normalise(rule: dict) -> dict:
    """Validate the combination of attributes and return the canonical rule."""
    rule = dict(rule)
    ethertype = rule.get("ethertype") or "IPv4"
    rule["ethertype"] = ethertype
    protocol = rule.get("protocol")
    if ethertype == "IPv6" and protocol in ("icmp", "icmpv6"):
        protocol = rule["protocol"] = "ipv6-icmp"
    if ethertype == "IPv4" and protocol in IPV6_ONLY:
        raise SecurityGroupEthertypeConflictWithProtocol(ethertype=ethertype, protocol=protocol)

    remotes = [k for k in ("remote_ip_prefix", "remote_group_id", "remote_address_group_id")
               if rule.get(k)]
    if len(remotes) > 1:
        raise SecurityGroupMultipleRemoteEntites()
    prefix = rule.get("remote_ip_prefix")
    if prefix:
        version = netaddr.IPNetwork(prefix).version
        if (version == 4) != (ethertype == "IPv4"):
            raise SecurityGroupRuleParameterConflict(ethertype=ethertype, cidr=prefix)

    _check_port_range(rule)
    number = protocol_number(protocol)
    if (number in PORT_PROTOCOLS and rule.get("port_range_min") == 1
            and rule.get("port_range_max") == 65535):
        # The full range means "any port"; Neutron stores it as no range.
        rule["port_range_min"] = rule["port_range_max"] = None
    return rule


def _check_port_range(rule: dict) -> None:
    low, high = rule.get("port_range_min"), rule.get("port_range_max")
    if low is None and high is None:
        return
    protocol = rule.get("protocol")
    if protocol is None:
        raise SecurityGroupProtocolRequiredWithPorts()
    number = protocol_number(protocol)
    if number in PORT_PROTOCOLS:
        if low == 0 or high == 0:
            raise SecurityGroupInvalidPortValue(port=0)
        if low is not None and high is not None and low <= high:
            return
        raise SecurityGroupInvalidPortRange()
    if number in ICMP_PROTOCOLS:
        for attr, field, value in (("port_range_min", "type", low),
                                   ("port_range_max", "code", high)):
            if value is not None and not 0 <= value <= 255:
                raise SecurityGroupInvalidIcmpValue(field=field, attr=attr, value=value)
        if low is None and high is not None:
            raise SecurityGroupMissingIcmpType(value=high)
        return
    raise SecurityGroupInvalidProtocolForPort(
        protocol=number, valid_port_protocols=", ".join(n.upper() for n in PORT_PROTOCOL_NAMES))


def rule_key(rule: dict) -> tuple:
    """What two rules must share to be duplicates: protocols compared by
    number, an any-address prefix the same as no prefix."""
    prefix = rule.get("remote_ip_prefix")
    if prefix in ("0.0.0.0/0", "::/0"):
        prefix = None
    return (rule["security_group_id"], rule["direction"], rule.get("ethertype") or "IPv4",
            protocol_number(rule.get("protocol")), rule.get("port_range_min"),
            rule.get("port_range_max"), prefix, rule.get("remote_group_id"))


def default_rules(group_id: str) -> list[dict]:
    """Neutron's rules for a project's default group: all egress, and ingress
    from members of the same group."""
    return ([{"direction": "egress", "ethertype": e, "remote_group_id": None}
             for e in ("IPv4", "IPv6")] +
            [{"direction": "ingress", "ethertype": e, "remote_group_id": group_id}
             for e in ("IPv4", "IPv6")])


def template_rules() -> list[dict]:
    """The rules every other new group starts with: all egress."""
    return [{"direction": "egress", "ethertype": e, "remote_group_id": None}
            for e in ("IPv4", "IPv6")]
