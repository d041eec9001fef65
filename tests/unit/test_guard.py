"""One exception in a handler must never stop an os-ken app (docs/ARCHITECTURE.md "os-ken")."""
import threading
import time

from os_ken.base import app_manager
from os_ken.controller import event
from os_ken.controller.handler import set_ev_cls
from os_ken.lib import hub

from controller.apps import guard
from controller.openflow import osken_patches


class Poke(event.EventBase):
    def __init__(self, n):
        super().__init__()
        self.n = n


class Fragile(app_manager.OSKenApp):
    """Raises on odd events from an unguarded handler."""
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen = []
        self.done = threading.Event()

    @set_ev_cls(Poke)
    def on_poke(self, ev):
        self.seen.append(ev.n)
        if ev.n == 3:
            self.done.set()
        if ev.n % 2:
            raise ValueError(f"bad event {ev.n}")


class Guarded(Fragile):
    @set_ev_cls(Poke)
    @guard.guarded
    def on_poke(self, ev):
        return Fragile.on_poke(self, ev)


def run(app_cls, install):
    original = hub.TaskExit
    try:
        if install:
            osken_patches.keep_apps_alive_on_errors()
        app = app_cls()
        app_manager.register_app(app)
        app.start()
        for n in range(4):
            app._send_event(Poke(n), None)
        app.done.wait(2)
        time.sleep(0.1)
        app.is_active = False
        app._send_event(Poke(99), None)   # wake the loop so it can end
        app_manager.unregister_app(app)
        return app.seen
    finally:
        hub.TaskExit = original


def test_stock_os_ken_loses_the_app_on_one_exception():
    # Documents the hazard: without the guard, event 1 raises and the loop ends.
    assert run(Fragile, install=False) == [0, 1]


def test_installed_guard_keeps_the_event_loop_alive():
    assert run(Fragile, install=True)[:4] == [0, 1, 2, 3]


def test_guarded_handler_logs_and_counts(caplog):
    before = sum(guard.handler_errors.values())
    assert run(Guarded, install=False)[:4] == [0, 1, 2, 3]
    assert sum(guard.handler_errors.values()) - before >= 2
    assert "failed; the controller carries on" in caplog.text
