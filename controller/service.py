"""Running as a system service: logging that suits the journal, systemd's
readiness protocol, and SIGHUP re-reading what can change without a restart.

Used by quantum-controller (controller/main.py) and the standalone metadata
proxy (controller/proxy/__main__.py); the unit files are in controller/etc/
and installed by `quantum-controller install-units` (controller/units.py).
"""
from __future__ import annotations

import logging
import os
import socket
import sys

LOG = logging.getLogger(__name__)

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# journald stamps every line itself and reads the level from a "<N>" prefix
# (SyslogLevelPrefix=yes, its default): no second timestamp.
JOURNAL_FORMAT = "<%(syslog_priority)d>%(levelname)s %(name)s: %(message)s"
SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4,
                   logging.INFO: 6, logging.DEBUG: 7}


def stderr_is_journal(environ=os.environ, stream=None) -> bool:
    """True when stderr is the journal: systemd sets JOURNAL_STREAM to the
    device:inode of the stream it connected (a child whose stderr was
    redirected elsewhere inherits the variable, hence the comparison)."""
    value = environ.get("JOURNAL_STREAM", "")
    if ":" not in value:
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return value == f"{st.st_dev}:{st.st_ino}"


class _JournalFormatter(logging.Formatter):
    def format(self, record):
        record.syslog_priority = SYSLOG_PRIORITY.get(record.levelno, 6)
        # A multi-line message (a traceback) stays one journal entry per line,
        # each with the level prefix, so `journalctl -p err` shows all of it.
        text = super().format(record)
        prefix = f"<{record.syslog_priority}>"
        return ("\n" + prefix).join(text.split("\n"))


def level_of(cfg) -> int:
    return logging.DEBUG if cfg.get("DEFAULT.debug") else logging.INFO


def setup_logging(cfg) -> None:
    """stderr (or [DEFAULT] log_file); the journal's format when stderr is it."""
    log_file = cfg.get("DEFAULT.log_file")
    if log_file:
        handler: logging.Handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    elif stderr_is_journal():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JournalFormatter(JOURNAL_FORMAT))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level_of(cfg))
    logging.captureWarnings(True)        # library warnings as log records, same format
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def notify(state: str) -> bool:
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET
    (Type=notify units). No socket: nothing to do."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    if path.startswith("@"):             # abstract namespace
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(path)
            s.sendall(state.encode())
        return True
    except OSError as e:
        LOG.warning("cannot notify systemd (%s): %s", state.split("\n")[0], e)
        return False


def reload_logging(cfg) -> None:
    level = level_of(cfg)
    logging.getLogger().setLevel(level)
    LOG.info("log level now %s", logging.getLevelName(level))


# What SIGHUP re-reads; every other option needs a restart (it is logged).
RELOADABLE = ("DEFAULT.debug", "DEFAULT.policy_file")


def reload(argv, current, apply_policy=None):
    """Re-read the configuration the process was started with (its files and
    flags) and apply what can change live: the log level and, through
    `apply_policy(path)`, the policy file. Returns the configuration now in
    force (`current` with the reloadable options replaced), or `current`
    unchanged when the files no longer parse (the error is logged)."""
    from controller import config
    notify("RELOADING=1")
    try:
        new = config.load(argv)
    except config.ConfigError as e:
        LOG.error("reload: configuration not changed: %s", e)
        notify("READY=1")
        return current
    values = current.as_dict()
    for key in sorted(k for k, v in new.as_dict().items() if v != values.get(k)):
        if key not in RELOADABLE:
            LOG.warning("reload: %s changed; it takes effect at the next restart", key)
    reload_logging(new)
    if apply_policy is not None:
        try:
            apply_policy(new.get("DEFAULT.policy_file"))
        except Exception as e:           # a bad file keeps the rules in force
            LOG.error("reload: policy file %s not loaded, previous rules kept: %s",
                      new.get("DEFAULT.policy_file"), e)
            new_policy = values["DEFAULT.policy_file"]
        else:
            new_policy = new.get("DEFAULT.policy_file")
        values["DEFAULT.policy_file"] = new_policy
    values["DEFAULT.debug"] = new.get("DEFAULT.debug")
    notify("READY=1")
    return config.Config(values)


def process_age() -> float:
    """Seconds since this process started (interpreter start-up and imports
    included), from /proc: 0.0 where that cannot be read."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


class StartupClock:
    """Where start-up time goes, for the ready line of the log: each mark()
    closes a phase; the first phase is everything before the clock existed
    (interpreter, imports), taken from the process's age."""

    def __init__(self):
        import time
        self._now = time.monotonic
        self.phases: list[tuple[str, float]] = [("imports", process_age())]
        self._last = self._now()

    def mark(self, phase: str) -> None:
        now = self._now()
        self.phases.append((phase, now - self._last))
        self._last = now

    def total(self) -> float:
        return sum(s for _p, s in self.phases)

    def summary(self) -> str:
        return ", ".join(f"{p} {s:.2f}" for p, s in self.phases)
