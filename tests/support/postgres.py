"""A private PostgreSQL cluster on loopback for the test session
(docs/LAB.md section 7): initdb as the postgres user, a free port, trust auth."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time

from tests.support.controller import free_port


def pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


class PostgresCluster:
    def __init__(self):
        self.bin = pg_bin()
        if not self.bin:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.dir = tempfile.mkdtemp(prefix="qc-pg-")
        shutil.chown(self.dir, "postgres")
        os.chmod(self.dir, 0o700)
        self.port = free_port()
        self._n = 0

    def _run(self, *args):
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/")

    def start(self) -> "PostgresCluster":
        data = os.path.join(self.dir, "data")
        self._run(f"{self.bin}/initdb", "-D", data, "-A", "trust", "-U", "postgres")
        self._run(f"{self.bin}/pg_ctl", "-D", data, "-w", "-l", os.path.join(self.dir, "log"),
                  "-o", f"-k {self.dir} -h 127.0.0.1 -p {self.port} -c max_connections=200 -c fsync=off",
                  "start")
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        self._n += 1
        name = f"qc_{os.getpid()}_{self._n}_{int(time.time() * 1000) % 100000}"
        self._run(f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(f"{self.bin}/pg_ctl", "-D", os.path.join(self.dir, "data"), "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
