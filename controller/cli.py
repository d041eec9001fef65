"""`quantum-controller <command>`: operators' commands besides running the
controller (which is `quantum-controller [options]` with no command).

    quantum-controller install-units [--dest DIR] [--config-file PATH] [--user NAME]
    quantum-controller flows | trace | drift ...   (controller/ops_cli.py)
"""
from __future__ import annotations

import argparse
import sys


def install_units(argv: list[str]) -> int:
    from controller import units
    p = argparse.ArgumentParser(
        prog="quantum-controller install-units",
        description="Write the systemd units quantum-controller.service and "
        "quantum-metadata-proxy.service, running the programs of this installation "
        "with the given config file. Then: systemctl daemon-reload; "
        "systemctl enable --now quantum-controller.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dest", default=units.DEFAULT_DEST, help="directory for the unit files")
    p.add_argument("--config-file", default=units.DEFAULT_CONFIG, help="the config file the services read")
    p.add_argument("--user", default=units.DEFAULT_USER,
                   help="system user (and group) the services run as")
    p.add_argument("--bin-dir", default=units.bin_dir(),
                   help="where quantum-controller and quantum-metadata-proxy are installed")
    args = p.parse_args(argv)
    try:
        written = units.install(args.dest, bin_dir=args.bin_dir, config_file=args.config_file,
                                user=args.user)
    except (OSError, ValueError) as e:
        print(f"quantum-controller install-units: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


def _ops(argv: list[str]) -> int:
    from controller import ops_cli
    return ops_cli.run(argv)


COMMANDS = {
    "install-units": install_units,
    "flows": _ops,
    "trace": _ops,
    "drift": _ops,
}


def run(argv: list[str]) -> int:
    command = COMMANDS[argv[0]]
    return command(argv) if command is _ops else command(argv[1:])
