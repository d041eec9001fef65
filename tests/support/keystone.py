"""A real Keystone for the test session: the `keystone` package of the test
venv on SQLite (keystone-manage db_sync, fernet_setup, credential_setup,
bootstrap), served by werkzeug's threaded WSGI server on a free loopback
port in a process of its own (`python -m tests.support.keystone serve`).

    ks = KeystoneServer().start()
    ks.url                      # http://127.0.0.1:PORT/v3
    ks.token("alice", "project-a")
    ks.stop()

`seed(ks)` adds what the tests use: projects A and B with a member each, a
reader-only user, a `service` project with the controller's service user
and node-bootstrap's registration user (role `service`).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.controller import free_port
from tests.support.tools import venv_bin

ADMIN_PASSWORD = "admin-secret"
PASSWORD = "secret-pw"          # every seeded user's password

CONF = """\
[DEFAULT]
log_file = {dir}/keystone.log
[database]
connection = sqlite:///{dir}/keystone.db
[token]
provider = fernet
expiration = {expiration}
[fernet_tokens]
key_repository = {dir}/fernet-keys
[fernet_receipts]
key_repository = {dir}/fernet-receipts
[credential]
key_repository = {dir}/credential-keys
[cache]
enabled = false
[identity]
password_hash_rounds = 4
"""


class KeystoneServer:
    def __init__(self, expiration: int = 3600):
        self.dir = tempfile.mkdtemp(prefix="qc-keystone-")
        self.port = free_port()
        self.conf = os.path.join(self.dir, "keystone.conf")
        with open(self.conf, "w") as f:
            f.write(CONF.format(dir=self.dir, expiration=expiration))
        self.proc: subprocess.Popen | None = None
        self._admin_token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str) -> None:
        cmd = [venv_bin("keystone-manage"), "--config-file", self.conf, *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{r.stderr[-3000:]}\n{self.log_tail()}")

    def start(self, timeout: float = 60.0) -> "KeystoneServer":
        try:
            self.manage("db_sync")
            self.make_keys()
            self.manage("bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
                        "--bootstrap-admin-url", self.url, "--bootstrap-internal-url", self.url,
                        "--bootstrap-public-url", self.url, "--bootstrap-region-id", "RegionOne")
            return self.serve(timeout)
        except BaseException:
            self.stop()          # no server or directory left behind by a failed start
            raise

    def make_keys(self) -> None:
        user = ["--keystone-user", "root", "--keystone-group", "root"]
        self.manage("fernet_setup", *user)
        self.manage("credential_setup", *user)

    def twin(self, expiration: int = 3600, same_keys: bool = True) -> "KeystoneServer":
        """Another Keystone with a copy of this one's database (same users,
        projects and ids): with the same keys, its tokens are this deployment's
        (e.g. short-lived ones); with keys of its own, a foreign deployment's."""
        t = KeystoneServer(expiration)
        try:
            shutil.copy(os.path.join(self.dir, "keystone.db"), t.dir)
            if same_keys:
                for d in ("fernet-keys", "fernet-receipts", "credential-keys"):
                    shutil.copytree(os.path.join(self.dir, d), os.path.join(t.dir, d))
            else:
                t.make_keys()
            return t.serve()
        except BaseException:
            t.stop()
            raise

    def serve(self, timeout: float = 60.0) -> "KeystoneServer":
        env = dict(os.environ, OS_KEYSTONE_CONFIG_FILES=self.conf)
        out = open(os.path.join(self.dir, "server.out"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.keystone", "serve",
                                      str(self.port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     cwd=str(Path(__file__).resolve().parents[2]))
        out.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"keystone exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"keystone did not come up in {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n: int = 40) -> str:
        text = ""
        for name in ("server.out", "keystone.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += "".join(f.readlines()[-n:])
            except OSError:
                pass
        return text

    # --- the identity API ---------------------------------------------------------------
    def call(self, method: str, path: str, body=None, token: str | None = None,
             headers: dict | None = None):
        """-> (status, parsed body, response headers)."""
        h = {"Content-Type": "application/json", **(headers or {})}
        if token or (method, path) != ("POST", "/auth/tokens"):
            h["X-Auth-Token"] = token or self.admin_token()
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None), r.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw), e.headers
            except ValueError:
                return e.code, raw.decode(errors="replace"), e.headers

    def token(self, user: str, project: str | None, password: str = PASSWORD,
              system: bool = False) -> str:
        """A project-scoped (or system-scoped) token for `user` (domain Default)."""
        scope = ({"system": {"all": True}} if system else
                 {"project": {"name": project, "domain": {"id": "default"}}})
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": scope}}
        status, data, headers = self.call("POST", "/auth/tokens", body, token=None)
        if status != 201:
            raise RuntimeError(f"token for {user}: {status} {data}")
        return headers["X-Subject-Token"]

    def admin_token(self) -> str:
        if self._admin_token is None:
            self._admin_token = self.token("admin", "admin", ADMIN_PASSWORD)
        return self._admin_token

    def revoke(self, token: str) -> None:
        status, data, _ = self.call("DELETE", "/auth/tokens", headers={"X-Subject-Token": token})
        if status != 204:
            raise RuntimeError(f"revoke: {status} {data}")

    def network_endpoint(self, url: str) -> None:
        """Point the catalog's network service (public, RegionOne) at `url`:
        how the openstack CLI and openstacksdk find the controller."""
        status, data, _ = self.call("GET", "/services?type=network")
        services = data.get("services", []) if status == 200 else []
        service = services[0] if services else self._create(
            "service", {"type": "network", "name": "quantum", "enabled": True})
        status, data, _ = self.call("GET", f"/endpoints?service_id={service['id']}&interface=public")
        endpoints = data.get("endpoints", []) if status == 200 else []
        if endpoints:
            status, data, _ = self.call("PATCH", f"/endpoints/{endpoints[0]['id']}",
                                        {"endpoint": {"url": url}})
            if status != 200:
                raise RuntimeError(f"endpoint update: {status} {data}")
        else:
            self._create("endpoint", {"service_id": service["id"], "interface": "public",
                                      "region_id": "RegionOne", "url": url})

    def _create(self, kind: str, body: dict) -> dict:
        status, data, _ = self.call("POST", f"/{kind}s", {kind: body})
        if status != 201:
            raise RuntimeError(f"create {kind}: {status} {data}")
        return data[kind]

    def _find(self, kind: str, name: str) -> dict:
        status, data, _ = self.call("GET", f"/{kind}s?name={name}")
        items = data.get(f"{kind}s", []) if status == 200 else []
        if not items:
            raise RuntimeError(f"no {kind} {name}")
        return items[0]

    def project(self, name: str) -> dict:
        return self._create("project", {"name": name, "domain_id": "default"})

    def role(self, name: str) -> dict:
        try:
            return self._find("role", name)
        except RuntimeError:
            return self._create("role", {"name": name})

    def user(self, name: str, project: dict, roles: list[str]) -> dict:
        u = self._create("user", {"name": name, "domain_id": "default", "password": PASSWORD,
                                  "default_project_id": project["id"]})
        for r in roles:
            rid = self.role(r)["id"]
            status, data, _ = self.call("PUT", f"/projects/{project['id']}/users/{u['id']}/roles/{rid}")
            if status not in (200, 204):
                raise RuntimeError(f"grant {r} to {name}: {status} {data}")
        return u


class Seeded:
    """What `seed` made: project and user records by short name."""

    def __init__(self, ks: KeystoneServer):
        self.ks = ks
        self.projects: dict[str, dict] = {}
        self.users: dict[str, dict] = {}

    def token(self, user: str) -> str:
        """A token of the user's own project (admin: project admin)."""
        if user == "admin":
            return self.ks.token("admin", "admin", ADMIN_PASSWORD)
        u = self.users[user]
        project = next(p for p in self.projects.values() if p["id"] == u["default_project_id"])
        return self.ks.token(u["name"], project["name"])


def seed(ks: KeystoneServer) -> Seeded:
    s = Seeded(ks)
    s.projects["admin"] = ks._find("project", "admin")
    s.users["admin"] = ks._find("user", "admin")
    for short in ("a", "b", "service"):
        s.projects[short] = ks.project(f"project-{short}" if short != "service" else "service")
    # Keystone's bootstrap makes admin imply member and member imply reader.
    s.users["alice"] = ks.user("alice", s.projects["a"], ["member"])
    s.users["bob"] = ks.user("bob", s.projects["b"], ["member"])
    s.users["rita"] = ks.user("rita", s.projects["a"], ["reader"])
    s.users["quantum"] = ks.user("quantum", s.projects["service"], ["service"])
    s.users["nodes"] = ks.user("node-registrar", s.projects["service"], ["service"])
    s.users["node-registrar"] = s.users["nodes"]
    return s


def controller_ini(path, ks: KeystoneServer, extra: str = "") -> str:
    """A controller INI file for auth_strategy = keystone with the seeded
    service user `quantum`; returns its path."""
    with open(path, "w") as f:
        f.write(f"""[DEFAULT]
auth_strategy = keystone
{extra}
[keystone_authtoken]
www_authenticate_uri = {ks.url}
auth_url = {ks.url}
username = quantum
password = {PASSWORD}
project_name = service
interface = public
""")
    return str(path)


def _serve(port: int) -> None:
    """Entry point of the server process (OS_KEYSTONE_CONFIG_FILES names the config)."""
    from werkzeug.serving import make_server
    sys.argv = sys.argv[:1]        # keystone reads its command line as oslo.config arguments
    from keystone.wsgi.api import application
    make_server("127.0.0.1", port, application, threaded=True).serve_forever()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        _serve(int(sys.argv[2]))
    else:
        sys.exit("usage: python -m tests.support.keystone serve PORT")
