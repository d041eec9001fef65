"""Keep one bad packet or one bug from stopping the controller.

os-ken 4.2.2's native hub defines `hub.TaskExit = Exception`, so its app event
loop re-raises ANY handler exception as if it were a normal exit and the app
silently stops receiving events (docs/ARCHITECTURE.md "os-ken").
controller/openflow/osken_patches.keep_apps_alive_on_errors() gives TaskExit
its own class again, and `guarded` wraps each of our handlers so an exception
is logged and counted, and the next event is processed as usual.
"""
from __future__ import annotations

import functools
import logging
import threading

LOG = logging.getLogger(__name__)

_lock = threading.Lock()
handler_errors: dict[str, int] = {}


def guarded(fn):
    name = getattr(fn, "__qualname__", repr(fn))

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:
            with _lock:
                handler_errors[name] = handler_errors.get(name, 0) + 1
            LOG.exception("handler %s failed; the controller carries on", name)
            return None
    return wrapper
