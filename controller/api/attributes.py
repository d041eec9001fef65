"""Attribute definitions: one declarative `Attr` per API attribute, in the
spirit of neutron-lib's attribute maps.

A resource module lists its attributes as a dict {api name: Attr(...)}; the
framework (controller/api/resource.py) uses the table for everything:

* POST: `allow_post`, `default` (REQUIRED if absent), `convert_to` then
  `validate` (in that order, as neutron does);
* PUT: `allow_put`;
* responses: `is_visible` (False = never returned), policy `get_<res>:<attr>`;
* queries: `is_filter` (?attr=v, repeated = OR), `is_sort_key`, and `column`,
  the model column that backs the attribute (defaults to the attribute name).
* policy: when a rule `<action>_<res>:<attr>` exists (controller/api/policy.py)
  it is checked for every attribute explicitly set in the request.

Converters raise `ConvertError(msg)` (-> 400 InvalidInput); validators return
None or a reason (-> 400 "Invalid input for <attr>. Reason: <reason>.").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import netaddr

# Sentinels: a required attribute has no default; ATTR_NOT_SPECIFIED lets the
# handler choose (e.g. provider attributes, cidr).
REQUIRED = object()


class _NotSpecified:
    def __repr__(self):
        return "ATTR_NOT_SPECIFIED"

    def __bool__(self):
        return False


ATTR_NOT_SPECIFIED = _NotSpecified()

NAME_MAX_LEN = 255
_WHITESPACE = re.compile(r"\s")

# PostgreSQL's INTEGER: a number outside this range in a body or a filter could
# never be stored or match, and the database driver would fail on it (a 500).
DB_INT_MIN, DB_INT_MAX = -2 ** 31, 2 ** 31 - 1
DESCRIPTION_MAX_LEN = 255


class ConvertError(ValueError):
    """A converter refused the value: 400 InvalidInput."""


@dataclass
class Attr:
    allow_post: bool = False
    allow_put: bool = False
    default: Any = REQUIRED
    convert_to: Callable[[Any], Any] | None = None
    validate: Callable[[Any], str | None] | None = None
    is_visible: bool = True
    is_filter: bool = False
    is_sort_key: bool = False
    column: str | None = None            # model column name (None: same as the attribute)
    filter_convert: Callable[[str], Any] | None = None   # for query strings (else convert_to)
    # Integers in the value fit a 32-bit INTEGER column (else 400). False for
    # values kept as JSON, e.g. a node's 48-bit datapath ids.
    db_integer: bool = True


# --- converters ---------------------------------------------------------------------

def convert_to_boolean(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("true", "1"):
            return True
        if s in ("false", "0"):
            return False
    raise ConvertError(f"'{v}' cannot be converted to boolean")


def convert_to_int(v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            pass
    raise ConvertError(f"'{v}' is not an integer")


def convert_to_int_or_none(v):
    return None if v is None else convert_to_int(v)


def convert_to_lowercase(v):
    if isinstance(v, str):
        return v.lower()
    raise ConvertError(f"'{v}' cannot be converted to lowercase string")


def _written_as_mac(v) -> bool:
    # netaddr.EUI reads "1" as the integer 1 (00:00:00:00:00:01); a MAC must be
    # written as one (colons, dashes, dots or 12 hex digits), without whitespace.
    return isinstance(v, str) and not _WHITESPACE.search(v) and netaddr.valid_mac(v)


def convert_mac(v):
    """Canonical lower-case xx:xx:xx:xx:xx:xx for a MAC written as one; anything
    else is left as it is for the validator to refuse."""
    if _written_as_mac(v):
        try:
            return str(netaddr.EUI(v, dialect=netaddr.mac_unix_expanded)).lower()
        except (netaddr.AddrFormatError, TypeError, ValueError, IndexError):
            return v
    return v


def convert_cidr(v):
    """Canonical cidr text (host bits kept: the subnet handler zeroes them, as
    Neutron's create_subnet does). Whitespace anywhere is refused."""
    if v is None or v is ATTR_NOT_SPECIFIED:
        return v
    if not isinstance(v, str) or not v or _WHITESPACE.search(v):
        raise ConvertError(f"{v} is not in a CIDR format")
    try:
        net = netaddr.IPNetwork(v)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ConvertError(f"{v} is not in a CIDR format") from None
    return str(net)   # an address without /len becomes /32 or /128


def convert_none_to_empty_list(v):
    return [] if v is None else v


def convert_kvp_list(values: list[str]) -> dict[str, list[str]]:
    """['ip_address=10.0.0.5', 'subnet_id=x'] -> {'ip_address': [...], 'subnet_id': [...]}"""
    out: dict[str, list[str]] = {}
    for item in values:
        if "=" not in item:
            raise ConvertError(f"'{item}' is not of the form <key>=[value]")
        k, v = item.split("=", 1)
        out.setdefault(k, []).append(v)
    return out


# --- validators (return None or a reason) --------------------------------------------

def _bad_text(s: str) -> str | None:
    # Lone surrogates cannot be stored as UTF-8 and NUL is refused by PostgreSQL.
    if "\x00" in s:
        return "NUL characters are not allowed"
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return "invalid unicode (lone surrogate)"
    return None


def validate_string(max_len: int | None = NAME_MAX_LEN, nullable: bool = False):
    def check(v):
        if v is None and nullable:
            return None
        if not isinstance(v, str):
            return f"'{v}' is not a valid string"
        if max_len is not None and len(v) > max_len:
            return f"'{v}' exceeds maximum length of {max_len}"
        return _bad_text(v)
    return check


validate_name = validate_string(NAME_MAX_LEN)


def validate_boolean(v):
    return None if isinstance(v, bool) else f"'{v}' is not a valid boolean value"


def validate_range(lo: int, hi: int, nullable: bool = False):
    def check(v):
        if v is None and nullable:
            return None
        if not isinstance(v, int) or isinstance(v, bool):
            return f"'{v}' is not an integer"
        if v < lo:
            return f"'{v}' is too small - must be at least '{lo}'"
        if v > hi:
            return f"'{v}' is too large - must be no larger than '{hi}'"
        return None
    return check


def validate_values(values):
    def check(v):
        return None if v in values else f"{v} is not in {list(values)}"
    return check


_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def is_uuid(v) -> bool:
    return isinstance(v, str) and bool(_UUID_RE.match(v))


def validate_uuid(v):
    return None if is_uuid(v) else f"'{v}' is not a valid UUID"


def validate_uuid_or_none(v):
    return None if v is None else validate_uuid(v)


def validate_uuid_list(v):
    if not isinstance(v, list):
        return f"'{v}' is not a list"
    for item in v:
        r = validate_uuid(item)
        if r:
            return r
    if len(set(v)) != len(v):
        return f"Duplicate items in the list: '{', '.join(v)}'"
    return None


def out_of_range_int(v):
    """The first integer in v (nested lists and dicts too) the database cannot
    hold, else None."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v if not DB_INT_MIN <= v <= DB_INT_MAX else None
    if isinstance(v, dict):
        v = list(v.values())
    if isinstance(v, list):
        for item in v:
            bad = out_of_range_int(item)
            if bad is not None:
                return bad
    return None


def validate_mac(v):
    if not _written_as_mac(v):
        return f"'{v}' is not a valid MAC address"
    try:
        mac = netaddr.EUI(v, dialect=netaddr.mac_unix_expanded)
    except (netaddr.AddrFormatError, TypeError, ValueError, IndexError):
        return f"'{v}' is not a valid MAC address"
    if int(mac) in (0, 0xFFFFFFFFFFFF):
        return f"'{v}' is not a valid MAC address"
    return None


def parse_ip(v):
    """netaddr.IPAddress for a strictly written address, else None."""
    if not isinstance(v, str) or not v or v.strip() != v:
        return None
    try:
        ip = netaddr.IPAddress(v)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None
    if ip.version == 4 and v.count(".") != 3:     # refuse '10.1' style shorthand
        return None
    return ip


def validate_ip(v):
    return None if parse_ip(v) is not None else f"'{v}' is not a valid IP address"


def validate_ip_or_none(v):
    return None if v is None else validate_ip(v)


def parse_cidr(v):
    if not isinstance(v, str) or "/" not in v:
        return None
    try:
        return netaddr.IPNetwork(v)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None


def validate_subnet(v):
    net = parse_cidr(v)
    if net is None:
        return f"'{v}' is not a valid IP subnet"
    return None


def validate_subnet_or_none(v):
    return None if v is None or v is ATTR_NOT_SPECIFIED else validate_subnet(v)


def validate_nameservers(v):
    if not isinstance(v, list):
        return f"Invalid data format for nameserver: '{v}'"
    seen = set()
    for ns in v:
        if parse_ip(ns) is None:
            return f"'{ns}' is not a valid nameserver"
        if ns in seen:
            return f"Duplicate nameserver '{ns}'"
        seen.add(ns)
    return None


def validate_hostroutes(v):
    if not isinstance(v, list):
        return f"Invalid data format for hostroute: '{v}'"
    seen = set()
    for hr in v:
        if not isinstance(hr, dict) or set(hr) != {"destination", "nexthop"}:
            return f"Invalid data format for hostroute: '{hr}'"
        if validate_subnet(hr["destination"]) or validate_ip(hr["nexthop"]):
            return f"Invalid data format for hostroute: '{hr}'"
        key = (str(netaddr.IPNetwork(hr["destination"]).cidr), hr["nexthop"])
        if key in seen:
            return f"Duplicate hostroute '{hr}'"
        seen.add(key)
    return None


def validate_pools(v):
    if not isinstance(v, list):
        return f"Invalid data format for IP pool: '{v}'"
    for pool in v:
        if not isinstance(pool, dict) or set(pool) != {"start", "end"}:
            return f"Invalid data format for IP pool: '{pool}'"
        for k in ("start", "end"):
            if validate_ip(pool[k]):
                return f"'{pool[k]}' is not a valid IP address"
    return None


def validate_fixed_ips(v):
    if not isinstance(v, list):
        return f"Invalid data format for fixed IP: '{v}'"
    seen = set()
    for fip in v:
        if not isinstance(fip, dict):
            return f"Invalid data format for fixed IP: '{fip}'"
        unknown = set(fip) - {"ip_address", "subnet_id"}
        if unknown:
            return f"Invalid data format for fixed IP: '{fip}'"
        if "ip_address" in fip:
            if validate_ip(fip["ip_address"]):
                return f"'{fip['ip_address']}' is not a valid IP address"
            if fip["ip_address"] in seen:
                return f"Duplicate IP address '{fip['ip_address']}'"
            seen.add(fip["ip_address"])
        if "subnet_id" in fip and validate_uuid(fip["subnet_id"]):
            return validate_uuid(fip["subnet_id"])
    return None


def validate_tags(v):
    if not isinstance(v, list):
        return f"'{v}' is not a list"
    if len(v) > 50:
        return "Too many tags (at most 50)"
    for t in v:
        if not isinstance(t, str) or not t or len(t) > 255 or "," in t or "/" in t:
            return f"'{t}' is not a valid tag"
        bad = _bad_text(t)
        if bad:
            return bad
    return None


def validate_dict_of_strings(v):
    if not isinstance(v, dict):
        return f"'{v}' is not a dictionary"
    for k, val in v.items():
        if not isinstance(val, str) or _bad_text(k) or _bad_text(val):
            return f"'{v}' is not a dictionary of strings"
    return None


# --- the standard attributes every resource carries ----------------------------------

def project_attrs() -> dict[str, Attr]:
    return {
        "tenant_id": Attr(allow_post=True, default=ATTR_NOT_SPECIFIED, column="project_id",
                          validate=validate_string(NAME_MAX_LEN), is_filter=True, is_sort_key=True),
        "project_id": Attr(allow_post=True, default=ATTR_NOT_SPECIFIED,
                           validate=validate_string(NAME_MAX_LEN), is_filter=True, is_sort_key=True),
    }


def standard_attrs() -> dict[str, Attr]:
    """description, revision_number, created_at, updated_at, tags."""
    return {
        "description": Attr(allow_post=True, allow_put=True, default="",
                            validate=validate_string(DESCRIPTION_MAX_LEN), is_filter=True, is_sort_key=True),
        "revision_number": Attr(is_filter=True, is_sort_key=True, filter_convert=convert_to_int),
        "created_at": Attr(is_sort_key=True),
        "updated_at": Attr(is_sort_key=True),
        "tags": Attr(default=[], validate=validate_tags),
    }
