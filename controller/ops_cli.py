"""Operators' terminal commands, the analogue of ovn-trace / ovn-detrace,
talking to a running controller (its console's JSON, controller/console/ops_api.py;
the same data as the console's pages):

    quantum-controller flows --port vm1            # the flows serving a port, on each switch, with owners
    quantum-controller flows --network net1 --desired
    quantum-controller flows --router r1
    quantum-controller trace --port vm1 --dst 10.0.0.7 [--protocol tcp --dst-port 80] [--installed]
    quantum-controller drift                       # desired vs installed; exit 1 when they differ

Common options: --url (default $QUANTUM_URL or http://127.0.0.1:9696),
--user (X-User-Id), --json (the raw answer). With auth_strategy = keystone:
an admin's token in OS_TOKEN, or OS_AUTH_URL, OS_USERNAME, OS_PASSWORD,
OS_PROJECT_NAME (default admin) and the domains (default Default), from
which a token is fetched, as the openstack CLI does. Objects by id, id prefix or
unique name. Exit status: 0 fine, 1 drift found, 2 error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class Failure(Exception):
    pass


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("QUANTUM_URL", "http://127.0.0.1:9696"),
                   help="the controller's API base URL (env QUANTUM_URL)")
    p.add_argument("--user", default=os.environ.get("USER") or "operator",
                   help="user id sent as X-User-Id (noauth; an admin role is sent)")
    p.add_argument("--json", action="store_true", help="print the controller's JSON answer")


def keystone_token() -> str | None:
    """A token for the OS_* password credentials, when OS_AUTH_URL is set."""
    env = os.environ.get
    if not env("OS_AUTH_URL"):
        return None
    from keystoneauth1 import exceptions, session
    from keystoneauth1.identity import v3
    auth = v3.Password(auth_url=env("OS_AUTH_URL"), username=env("OS_USERNAME"),
                       password=env("OS_PASSWORD"), project_name=env("OS_PROJECT_NAME", "admin"),
                       user_domain_name=env("OS_USER_DOMAIN_NAME", "Default"),
                       project_domain_name=env("OS_PROJECT_DOMAIN_NAME", "Default"))
    try:
        return session.Session(auth=auth).get_token()
    except exceptions.ClientException as e:
        raise Failure(f"Keystone at {env('OS_AUTH_URL')}: {e}") from None


def fetch(args, path: str, params: dict) -> dict:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v not in (None, "")})
    headers = {"X-User-Id": args.user, "X-Project-Id": "admin", "X-Roles": "admin,member,reader",
               "Accept": "application/json"}
    token = os.environ.get("OS_TOKEN") or keystone_token()
    if token:
        headers["X-Auth-Token"] = token
    req = urllib.request.Request(f"{args.url.rstrip('/')}/console/api/{path}?{query}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("error") or e.reason
        except ValueError:
            message = e.reason
        raise Failure(f"{e.code}: {message}") from None
    except (urllib.error.URLError, OSError) as e:
        raise Failure(f"cannot reach {args.url}: {getattr(e, 'reason', e)}") from None


def _flow_line(f: dict, counters: bool) -> str:
    owner = (f.get("owner") or {}).get("label", "")
    line = (f"  table {f['table']:>2} {f['table_name']:<14} priority={f['priority']:<4} "
            f"{f['match']}  actions={f['actions']}  [{owner}]")
    if counters and f.get("packets") is not None:
        line += f"  n_packets={f['packets']}"
    return line


def flows(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="quantum-controller flows",
                                description="The flows serving a port, network or router on each "
                                "switch, each with the Quantum object that owns it.")
    what = p.add_mutually_exclusive_group(required=True)
    for kind in ("port", "network", "router"):
        what.add_argument(f"--{kind}", metavar="ID_OR_NAME")
    p.add_argument("--desired", action="store_true",
                   help="the flows the controller computes, not those on the switches")
    _common(p)
    args = p.parse_args(argv)
    kind = next(k for k in ("port", "network", "router") if getattr(args, k))
    data = fetch(args, "flows", {"kind": kind, "id": getattr(args, kind),
                                 "source": "desired" if args.desired else "installed"})
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    where = "computed (desired)" if args.desired else "on the switches now"
    print(f"{kind} {data['name'] or data['id']} ({data['id']}): flows {where}")
    if not data["switches"]:
        print("  none")
    for sw in data["switches"]:
        print(f"{sw['name']} (dpid {sw['dpid']:016x})" + (f": {sw['error']}" if sw.get("error") else ""))
        for f in sw["flows"]:
            print(_flow_line(f, not args.desired))
    return 0


def trace(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="quantum-controller trace",
                                description="Walk a packet from a port through the pipeline of every "
                                "node it reaches; each step names the object that put the flow there.")
    p.add_argument("--port", required=True, metavar="ID_OR_NAME", help="the sending port")
    p.add_argument("--dst", required=True, metavar="IP", help="destination IPv4 address")
    p.add_argument("--protocol", default="icmp", choices=["icmp", "tcp", "udp", "arp"])
    p.add_argument("--dst-port", type=int, help="TCP/UDP destination port (default 80)")
    p.add_argument("--installed", action="store_true",
                   help="through the flows on the switches now, not the desired ones")
    _common(p)
    args = p.parse_args(argv)
    data = fetch(args, "trace", {"port": args.port, "dst": args.dst, "protocol": args.protocol,
                                 "dst_port": args.dst_port,
                                 "source": "installed" if args.installed else "desired"})
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"packet: {data['packet']}")
    print(f"through the {data['source']} flows")
    for note in data["notes"]:
        print(f"note: {note}")
    for e in data["events"]:
        pad = "  " * e["depth"]
        if e["type"] == "step":
            if e["match"] is None:
                print(f"{pad}{e['node']} {e['bridge']} table {e['table']} {e['table_name']}: no flow matched")
                continue
            owner = (e.get("owner") or {}).get("label", "")
            print(f"{pad}{e['node']} {e['bridge']} table {e['table']} {e['table_name']}: "
                  f"priority={e['priority']},{e['match']}")
            print(f"{pad}    actions={e['actions']}  [{owner}]")
        else:
            dest = f" port {e['port']}" if e["port"] is not None and e["kind"] != "controller" else ""
            to = f" -> {e['to']}" if e.get("to") else ""
            why = f": {e['reason']}" if e.get("reason") else ""
            print(f"{pad}=> {e['kind']} on {e['node']} {e['bridge']}{dest}{to}{why}")
    return 0


def drift(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="quantum-controller drift",
                                description="Compare each switch's flows with the desired ones. "
                                "Exit status 1 when any switch differs.")
    _common(p)
    args = p.parse_args(argv)
    data = fetch(args, "drift", {})
    if args.json:
        print(json.dumps(data, indent=2))
        return 0 if data["clean"] else 1
    for sw in data["switches"]:
        if sw.get("unmapped"):
            print(f"{sw['name']}: no registered node has this switch")
            continue
        if sw.get("error"):
            print(f"{sw['name']}: {sw['error']}")
            continue
        n = {k: len(sw[k]) for k in ("missing", "extra", "differing")}
        state = "no drift" if not any(n.values()) else ", ".join(f"{v} {k}" for k, v in n.items() if v)
        print(f"{sw['name']}: {state}" + (f" ({sw['foreign']} flows not ours)" if sw["foreign"] else ""))
        for f in sw["missing"]:
            print("  missing" + _flow_line(f, False)[1:])
        for f in sw["extra"]:
            print("  extra  " + _flow_line(f, False)[1:])
        for want, have in sw["differing"]:
            print("  wanted " + _flow_line(want, False)[1:])
            print("  found  " + _flow_line(have, False)[1:])
    print("clean" if data["clean"] else "DRIFT")
    return 0 if data["clean"] else 1


COMMANDS = {"flows": flows, "trace": trace, "drift": drift}


def run(argv: list[str]) -> int:
    try:
        return COMMANDS[argv[0]](argv[1:])
    except Failure as e:
        print(f"quantum-controller {argv[0]}: {e}", file=sys.stderr)
        return 2
