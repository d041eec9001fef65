"""What the parts of one controller process share: configuration, the
database, the change bus. Created once by controller.main (or by a test) and
handed to the API app and the os-ken apps."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from controller.config import Config
from controller.db.session import Database
from controller.events import ChangeBus


@dataclass
class Runtime:
    cfg: Config
    db: Database
    bus: ChangeBus = field(default_factory=ChangeBus)
    started_at: float = field(default_factory=time.time)
    # Filled in by the os-ken apps once they run (console and status use them).
    apps: dict = field(default_factory=dict)

    _current: "Runtime | None" = None

    @classmethod
    def set_current(cls, rt: "Runtime") -> None:
        cls._current = rt

    @classmethod
    def current(cls) -> "Runtime":
        if cls._current is None:
            raise RuntimeError("controller runtime not initialised")
        return cls._current
