"""Reading docs/DEPLOY.md as a script: its ```bash deploy=<host>``` blocks, in
order, each cut into shell chunks and the two kinds of line the lab plays
itself (package installs and systemctl; see tests/e2e/test_deploy_guide.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

FENCE = re.compile(r"^```(\S*)(.*)$")
HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")


@dataclass
class Block:
    host: str                  # controller, compute, gateway, skip
    text: str
    line: int                  # where it starts in the file (1-based)
    steps: list = field(default_factory=list)   # ("sh", text) | ("apt", [pkgs]) | ("systemctl", argv)


def blocks(markdown: str) -> list[Block]:
    """Every fenced bash block; a bash block without deploy=... is an error
    (the guide must say for each block whether the test runs it)."""
    out, lines, i = [], markdown.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        lang, info, start = m.group(1), m.group(2), i + 1
        body = []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        if lang != "bash":
            continue
        tag = re.search(r"deploy=(\S+)", info)
        if not tag:
            raise ValueError(f"line {start}: a bash block without deploy=<host|skip>")
        block = Block(tag.group(1), "\n".join(body) + "\n", start)
        block.steps = steps(block.text)
        out.append(block)
    return out


def steps(text: str) -> list[tuple]:
    """Shell chunks between the lines the lab handles itself. Continuation
    lines and here-documents stay with their command."""
    out: list[tuple] = []
    chunk: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        cmd = [lines[i]]
        while cmd[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            cmd.append(lines[i])
        m = HEREDOC.search(cmd[-1])
        if m:
            while i + 1 < len(lines):
                i += 1
                cmd.append(lines[i])
                if lines[i].strip() == m.group(1):
                    break
        i += 1
        words = " ".join(c.rstrip("\\") for c in cmd).split()
        if words[:2] == ["apt-get", "install"]:
            special = ("apt", [w for w in words[2:] if not w.startswith("-")])
        elif words[:1] == ["systemctl"]:
            special = ("systemctl", words[1:])
        else:
            chunk.extend(cmd)
            continue
        if chunk:
            out.append(("sh", "\n".join(chunk) + "\n"))
            chunk = []
        out.append(special)
    if chunk:
        out.append(("sh", "\n".join(chunk) + "\n"))
    return out


def unit_service_section(text: str) -> dict[str, str]:
    """The [Service] keys of a systemd unit file (last value wins)."""
    section, out = None, {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out
