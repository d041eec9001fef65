"""quantum-controller. See README.md and docs/ARCHITECTURE.md."""
import sys as _sys


def _import_ovs_without_eventlet() -> None:
    """The `ovs` package's poller imports eventlet (and with it dnspython)
    only to ask whether eventlet monkey-patched select(); os-ken runs on
    native threads here (docs/ARCHITECTURE.md "os-ken"), so the answer is no. Importing it cost a
    quarter of the controller's import CPU time. Hide eventlet while ovs.poller
    loads; anything that really wants eventlet can still import it later."""
    if "eventlet" in _sys.modules or "ovs.poller" in _sys.modules:
        return
    _sys.modules["eventlet"] = None          # `from eventlet import ...` -> ImportError
    try:
        import ovs.poller  # noqa: F401
    except ImportError:
        pass
    finally:
        if _sys.modules.get("eventlet", 0) is None:
            del _sys.modules["eventlet"]


_import_ovs_without_eventlet()
