"""The suite finds the project's own commands in its venv, never on the machine's PATH
(a fresh machine has no `openstack` outside the venv: issue #13)."""
import os
import pathlib
import re
import subprocess
import sys

from tests.support import tools

TESTS = pathlib.Path(__file__).resolve().parents[1]
REPO = TESTS.parent


def test_venv_commands_are_taken_from_the_running_interpreters_venv():
    assert tools.venv_bin("openstack") == os.path.join(os.path.dirname(sys.executable), "openstack")
    for name in tools.VENV_EXECUTABLES:
        assert os.access(tools.venv_bin(name), os.X_OK), name


def test_no_test_runs_a_venv_command_by_its_bare_name():
    bare = re.compile(r"""\[\s*["'](%s)["']""" % "|".join(map(re.escape, tools.VENV_EXECUTABLES)))
    offenders = [f"{p.relative_to(REPO)}:{n}" for base in (TESTS, REPO / "bench")
                 for p in base.rglob("*.py")
                 for n, line in enumerate(p.read_text().splitlines(), 1) if bare.search(line)]
    assert offenders == []


def test_missing_executables_are_named_with_their_package(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "VENV_BIN", str(tmp_path))
    monkeypatch.setitem(tools.SYSTEM_EXECUTABLES, "no-such-package", ("no-such-tool-xyz",))
    missing = tools.missing_executables()
    assert f"{tmp_path}/openstack (pip install -e '.[test]' into the venv: bash tools/venv.sh test)" in missing
    assert "no-such-tool-xyz (apt-get install no-such-package)" in missing
    assert not any(m.startswith("ip ") for m in missing)


def test_the_suite_stops_at_start_with_one_clear_message_when_a_tool_is_missing(tmp_path):
    # A venv with the same packages but no console scripts: no openstack CLI in its bin/.
    venv = pathlib.Path(sys.prefix)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").symlink_to(sys.executable)
    (tmp_path / "lib").symlink_to(venv / "lib")
    (tmp_path / "pyvenv.cfg").write_text((venv / "pyvenv.cfg").read_text())
    r = subprocess.run([str(fake_bin / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(TESTS / "unit" / "test_test_tools.py"), "-k", "venv_commands"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 4, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "the test suite needs these executables, which are missing" in out
    assert f"{fake_bin}/openstack" in out and "Traceback" not in out
