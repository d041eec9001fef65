"""The systemd unit files (templates in controller/etc/), filled in for one
installation and written by `quantum-controller install-units`."""
from __future__ import annotations

import os
import sysconfig
from importlib import resources

UNITS = ("quantum-controller.service", "quantum-metadata-proxy.service")
DEFAULT_DEST = "/etc/systemd/system"
DEFAULT_CONFIG = "/etc/quantum/quantum.conf"
DEFAULT_USER = "quantum"


def bin_dir() -> str:
    """Where this installation's console scripts are (a venv's bin/; for a
    system-wide pip install, e.g. /usr/local/bin)."""
    return sysconfig.get_path("scripts")


def render(name: str, *, bin_dir: str, config_file: str, user: str) -> str:
    for what, value in (("bin-dir", bin_dir), ("config-file", config_file), ("user", user)):
        if not value or any(c.isspace() for c in value) or "%" in value:
            raise ValueError(f"--{what} {value!r}: empty, or contains spaces or %")
    if not os.path.isabs(bin_dir) or not os.path.isabs(config_file):
        raise ValueError("--bin-dir and --config-file must be absolute paths")
    template = resources.files("controller").joinpath("etc", name).read_text()
    return template.format(bin_dir=bin_dir, config_file=config_file, user=user)


def install(dest: str, **values) -> list[str]:
    os.makedirs(dest, exist_ok=True)
    written = []
    for name in UNITS:
        text = render(name, **values)
        path = os.path.join(dest, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        written.append(path)
    return written
