"""Configuration: one declarative table of options, read from an INI file
(in the spirit of quantum.conf) and overridden by command-line flags.

Every option is `section.name`; the flag is `--name` (or `--section-name` when
the name alone would be ambiguous). `quantum-controller --help` prints them all.
"""
from __future__ import annotations

import argparse
import configparser
import os
from dataclasses import dataclass
from typing import Any, Callable


def _bool(v: str | bool) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{v!r} is not a boolean")


def _list(v: str | list) -> list[str]:
    if isinstance(v, list):
        return v
    return [x.strip() for x in str(v).split(",") if x.strip()]


AUTH_STRATEGIES = ("keystone", "noauth")


def _strategy(v: str) -> str:
    s = str(v).strip().lower()
    if s not in AUTH_STRATEGIES:
        raise ValueError(f"{v!r} is not one of {', '.join(AUTH_STRATEGIES)}")
    return s


@dataclass(frozen=True)
class Opt:
    section: str
    name: str
    default: Any
    help: str
    type: Callable[[Any], Any] = str
    flag: str | None = None  # defaults to --name

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"


OPTS: list[Opt] = [
    # [DEFAULT]
    Opt("DEFAULT", "state_dir", "/var/lib/quantum-controller",
        "Directory for the embedded SQLite database and other state."),
    Opt("DEFAULT", "bind_host", "0.0.0.0", "Address the REST API listens on."),
    Opt("DEFAULT", "bind_port", 9696, "Port of the REST API (Quantum's 9696).", int),
    Opt("DEFAULT", "auth_strategy", "noauth",
        "keystone (tokens validated by keystonemiddleware, [keystone_authtoken]) or noauth "
        "(development only: project/user/roles from X-Project-Id, X-User-Id, X-Roles).",
        _strategy),
    Opt("DEFAULT", "base_mac", "fa:16:3e:00:00:00", "Base of generated MAC addresses."),
    Opt("DEFAULT", "global_physnet_mtu", 1500, "MTU of the physical network underneath.", int),
    Opt("DEFAULT", "max_body_size", 1048576, "Largest accepted request body in bytes (413 above).", int),
    Opt("DEFAULT", "max_dns_nameservers", 5, "Most DNS servers per subnet.", int),
    Opt("DEFAULT", "max_subnet_host_routes", 20, "Most host routes per subnet.", int),
    Opt("DEFAULT", "max_fixed_ips_per_port", 5,
        "Most fixed IPs a port may ask for (ports of network:* owners are exempt).", int),
    Opt("DEFAULT", "pagination_max_limit", -1, "Largest page size (-1: unlimited).", int),
    Opt("DEFAULT", "policy_file", "", "JSON policy file overriding the default rules."),
    Opt("DEFAULT", "debug", False, "Log at DEBUG level.", _bool),
    Opt("DEFAULT", "log_file", "", "Log to this file instead of stderr."),
    # [keystone_authtoken]: keystonemiddleware's auth_token (auth_strategy = keystone)
    Opt("keystone_authtoken", "www_authenticate_uri", "",
        "Keystone's public URL, told to clients in WWW-Authenticate and used by the "
        "console's login (empty: auth_url).", flag="keystone-www-authenticate-uri"),
    Opt("keystone_authtoken", "auth_url", "",
        "Keystone URL the controller's service user authenticates at "
        "(e.g. http://keystone:5000/v3).", flag="keystone-auth-url"),
    Opt("keystone_authtoken", "auth_type", "password",
        "keystoneauth plugin of the service user.", flag="keystone-auth-type"),
    Opt("keystone_authtoken", "username", "",
        "Service user that validates tokens (needs the service or admin role).",
        flag="keystone-username"),
    Opt("keystone_authtoken", "password", "", "Its password.", flag="keystone-password"),
    Opt("keystone_authtoken", "project_name", "service", "Its project.",
        flag="keystone-project-name"),
    Opt("keystone_authtoken", "user_domain_name", "Default", "Its user's domain.",
        flag="keystone-user-domain-name"),
    Opt("keystone_authtoken", "project_domain_name", "Default", "Its project's domain.",
        flag="keystone-project-domain-name"),
    Opt("keystone_authtoken", "region_name", "", "Region of the identity endpoint.",
        flag="keystone-region-name"),
    Opt("keystone_authtoken", "interface", "internal",
        "Catalog interface of the identity endpoint used to validate tokens.",
        flag="keystone-interface"),
    Opt("keystone_authtoken", "memcached_servers", "",
        "host:port list of memcached servers caching validated tokens (several "
        "controllers share it); empty: a cache in the controller's memory.", _list,
        flag="keystone-memcached-servers"),
    Opt("keystone_authtoken", "token_cache_time", 300,
        "Seconds a validated token is cached (a token revoked meanwhile is still "
        "accepted for up to this long); -1: no caching.", int, flag="keystone-token-cache-time"),
    Opt("keystone_authtoken", "cafile", "", "CA bundle to verify Keystone's HTTPS certificate.",
        flag="keystone-cafile"),
    Opt("keystone_authtoken", "insecure", False, "Do not verify Keystone's HTTPS certificate.",
        _bool, flag="keystone-insecure"),
    # [database]
    Opt("database", "connection", "",
        "SQLAlchemy URL; empty means sqlite:///<state_dir>/quantum.db. "
        "Example: postgresql://user:pw@db/quantum", flag="database-connection"),
    # [openflow]
    Opt("openflow", "listen_host", "0.0.0.0", "Address the OpenFlow listener binds.", flag="ofp-listen-host"),
    Opt("openflow", "listen_port", 6653, "OpenFlow listen port.", int, flag="ofp-listen-port"),
    Opt("openflow", "echo_interval", 2, "Seconds between OpenFlow echo requests.", int),
    Opt("openflow", "listen_backlog", 1024,
        "Pending connections the OpenFlow listener queues (os-ken's own is 50; the "
        "kernel caps it at net.core.somaxconn): all hypervisors reconnect at once "
        "after a controller restart.", int),
    Opt("openflow", "handshake_timeout", 10,
        "Seconds a connecting switch has to send its first bytes and, with [ssl], to "
        "complete its TLS handshake; a failure is logged, shown and counted.", int,
        flag="ofp-handshake-timeout"),
    # [ha]
    Opt("ha", "controller_id", "",
        "This controller's name in the cluster (unique per process); empty: "
        "<host name>:<OpenFlow listen port>.", flag="ha-controller-id"),
    Opt("ha", "lease_duration", 0.8,
        "Seconds a node's mastership lease lasts unless renewed: a dead "
        "controller's nodes are taken over after at most this plus renew_interval.",
        float, flag="ha-lease-duration"),
    Opt("ha", "renew_interval", 0.1,
        "Seconds between two looks at the leases (failure detection); the "
        "heartbeat and renewal are written every lease_duration / 3.",
        float, flag="ha-renew-interval"),
    Opt("ha", "join_delay", 2.0,
        "Seconds a controller runs before nodes are handed over to it (its "
        "switches connect first).", float, flag="ha-join-delay"),
    # [ssl]
    Opt("ssl", "private_key", "",
        "PEM private key of the controller. With certificate and ca_cert set, the OpenFlow "
        "listener accepts only TLS from switches whose certificate ca_cert signed (no plain "
        "TCP), and nodes' ssl: OVSDB addresses are dialled with this key.",
        flag="ssl-private-key"),
    Opt("ssl", "certificate", "", "PEM certificate of the controller (signed by ca_cert's CA).",
        flag="ssl-certificate"),
    Opt("ssl", "ca_cert", "", "PEM certificate of the deployment's CA: the only issuer "
        "accepted for switches and nodes.", flag="ssl-ca-cert"),
    # [ml2]
    Opt("ml2", "tenant_network_types", "gre",
        "Ordered list of segment types for tenant networks (gre, vxlan, vlan, local).", _list),
    Opt("ml2", "flat_networks", "*", "Physical networks usable as flat networks (* = any).", _list),
    Opt("ml2", "network_vlan_ranges", "physnet1:100:199",
        "physnet[:min:max] list; a physnet without range is provider-only.", _list),
    Opt("ml2", "tunnel_id_ranges", "1:65535", "GRE key ranges for tenant networks.", _list),
    Opt("ml2", "vni_ranges", "1:65535", "VXLAN VNI ranges for tenant networks.", _list),
    Opt("ml2", "path_mtu", 0, "MTU of the tunnel underlay (0: global_physnet_mtu).", int),
    # [quotas]
    Opt("quotas", "quota_network", 100, "Networks per project (-1: unlimited).", int),
    Opt("quotas", "quota_subnet", 100, "Subnets per project.", int),
    Opt("quotas", "quota_port", 500, "Ports per project.", int),
    Opt("quotas", "quota_router", 10, "Routers per project.", int),
    Opt("quotas", "quota_floatingip", 50, "Floating IPs per project.", int),
    Opt("quotas", "quota_security_group", 10, "Security groups per project.", int),
    Opt("quotas", "quota_security_group_rule", 100, "Security group rules per project.", int),
    # [dhcp]
    Opt("dhcp", "lease_duration", 86400, "DHCP lease time in seconds.", int),
    Opt("dhcp", "dns_domain", "openstacklocal", "Domain name sent in DHCP option 15."),
    Opt("dhcp", "packet_in_rate", 50, "DHCP packet-ins per second allowed per port.", int),
    # [metadata]
    Opt("metadata", "nova_metadata_url", "http://127.0.0.1:8775", "Nova metadata API base URL."),
    Opt("metadata", "metadata_proxy_shared_secret", "", "Secret for X-Instance-ID-Signature."),
    Opt("metadata", "timeout", 10, "Seconds to wait for Nova's metadata API.", int),
    Opt("metadata", "proxy_address", "",
        "IPv4 address where the nodes reach the metadata proxy over their management "
        "network (node-bootstrap --metadata-bridge); empty: no metadata flows."),
    Opt("metadata", "proxy_port", 9697, "TCP port of the metadata proxy.", int),
    Opt("metadata", "proxy_mac", "",
        "MAC the nodes send metadata requests to (the proxy host's, or the router's "
        "towards it); empty: the local interface holding proxy_address."),
    Opt("metadata", "source_range", "100.64.0.0/10",
        "Addresses the proxy sees as sources: one per VM port, never routed elsewhere."),
    Opt("metadata", "listen_host", "",
        "Start the metadata proxy inside quantum-controller, bound to this address "
        "(port proxy_port); empty: run it elsewhere with python -m controller.proxy.",
        flag="metadata-listen-host"),
]

OPTS_BY_KEY = {o.key: o for o in OPTS}


class ConfigError(ValueError):
    pass


class Config:
    """Resolved configuration: `cfg.get('ml2.tenant_network_types')` or attribute
    access by section (`cfg.ml2.tenant_network_types`, `cfg.DEFAULT.bind_port`)."""

    def __init__(self, values: dict[str, Any]):
        self._values = dict(values)

    def get(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, section: str):
        if section.startswith("_"):
            raise AttributeError(section)
        prefix = section + "."
        found = {k[len(prefix):]: v for k, v in self._values.items() if k.startswith(prefix)}
        if not found:
            raise AttributeError(section)
        return _Section(found)

    @property
    def database_url(self) -> str:
        url = self.get("database.connection")
        if url:
            return url
        return "sqlite:///" + os.path.join(self.get("DEFAULT.state_dir"), "quantum.db")

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


class _Section:
    def __init__(self, values):
        self.__dict__.update(values)


def _flag(o: Opt) -> str:
    return "--" + (o.flag or o.name).replace("_", "-")


def build_parser(prog: str = "quantum-controller") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Central OpenFlow controller serving the Quantum v2.0 API. "
        "With no options it keeps an SQLite database in --state-dir, serves the "
        "API on :9696 and accepts Open vSwitch bridges on :6653.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config-file", action="append", default=[],
                   help="INI file(s) (quantum.conf style); later files and flags override earlier ones.")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for o in OPTS:
        g = groups.setdefault(o.section, p.add_argument_group(f"[{o.section}]"))
        g.add_argument(_flag(o), dest=o.key, default=None, metavar=o.name.upper(),
                       help=f"{o.help} (default: {o.default})")
    return p


def load(argv: list[str] | None = None, environ: dict | None = None) -> Config:
    """Defaults, then each --config-file in order, then flags."""
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {o.key: o.default for o in OPTS}
    for path in args.config_file:
        values.update(read_ini(path))
    for o in OPTS:
        v = getattr(args, o.key)
        if v is not None:
            values[o.key] = v
    return Config(_convert(values))


def from_dict(overrides: dict[str, Any] | None = None) -> Config:
    """Configuration for embedding and tests: defaults plus `{'section.name': value}`."""
    values: dict[str, Any] = {o.key: o.default for o in OPTS}
    for k, v in (overrides or {}).items():
        if k not in OPTS_BY_KEY:
            raise ConfigError(f"unknown option {k}")
        values[k] = v
    return Config(_convert(values))


def read_ini(path: str) -> dict[str, Any]:
    cp = configparser.ConfigParser(interpolation=None)
    if not cp.read(path):
        raise ConfigError(f"cannot read config file {path}")
    out = {}
    for section in ["DEFAULT", *cp.sections()]:
        items = cp.defaults() if section == "DEFAULT" else {
            k: v for k, v in cp.items(section) if k not in cp.defaults()}
        for name, value in items.items():
            key = f"{section}.{name}"
            if key not in OPTS_BY_KEY:
                raise ConfigError(f"{path}: unknown option [{section}] {name}")
            out[key] = value
    return out


def _convert(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, v in values.items():
        o = OPTS_BY_KEY[key]
        try:
            out[key] = o.type(v) if v is not None else None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"[{o.section}] {o.name}: {e}") from None
    return out
