"""The console behind Keystone, in a real headless Chromium against a real
controller (auth_strategy = keystone) and a real Keystone:

- no session -> login page; identity headers (X-Roles: admin) are ignored;
  API clients are let in with an admin token, a member's token gets 403;
- the login form takes a user name and password (no roles field); a wrong
  password and a member are refused; the admin gets in;
- the session cookie is signed (a tampered cookie is a new login), HttpOnly
  and expiring; logging out ends it;
- a user disabled in Keystone (tokens revoked) is out at the next page;
- the terminal commands (quantum-controller drift) authenticate with OS_*.
"""
from __future__ import annotations

import urllib.parse
import urllib.request

from tests.e2e.test_console import browser, click_and_wait, http_status, needs_browser, text  # noqa: F401
from tests.support.keystone import ADMIN_PASSWORD, PASSWORD


def login(driver, url, user, password, project):
    from selenium.webdriver.common.by import By
    driver.get(url + "/console/login")
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    field = driver.find_element(By.ID, "project")
    field.clear()
    field.send_keys(project)
    click_and_wait(driver, driver.find_element(By.ID, "login"))


def test_console_takes_keystone_tokens_never_identity_headers(keystone, keystone_controller):
    url = keystone_controller.url + "/console/nodes"
    assert http_status(url, {}) == 302
    assert http_status(url, {"X-User-Id": "u", "X-Project-Id": "p", "X-Roles": "admin"}) == 302
    assert http_status(url, {"X-Auth-Token": "not-a-token", "X-Roles": "admin"}) == 302
    assert http_status(url, {"X-Auth-Token": keystone.token("alice")}) == 403
    assert http_status(url, {"X-Auth-Token": keystone.token("admin")}) == 200
    # The noauth form's fields (and its query-string login) do not log anyone in.
    assert http_status(url + "?user_id=ops&roles=admin", {}) == 302
    form = urllib.parse.urlencode({"user_id": "ops", "roles": "admin"}).encode()
    req = urllib.request.Request(keystone_controller.url + "/console/login", data=form)
    try:
        urllib.request.urlopen(req, timeout=30)
        raise AssertionError("the noauth form was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 400 and "User name and password are required" in e.read().decode()


@needs_browser
def test_browser_logs_in_with_keystone_user_and_password(keystone, keystone_controller, browser):
    from selenium.webdriver.common.by import By
    base = keystone_controller.url
    browser.get(base + "/console/nodes")
    assert "/console/login" in browser.current_url
    assert browser.find_elements(By.ID, "roles") == [] and browser.find_elements(By.ID, "user_id") == []
    assert browser.find_element(By.ID, "password").get_attribute("type") == "password"

    login(browser, base, "admin", "wrong-password", "admin")
    assert "Keystone refused" in text(browser, ".error")
    login(browser, base, "alice", PASSWORD, "project-a")
    assert "for administrators" in text(browser, ".error")
    assert browser.get_cookie("quantum_console") is None or "console/login" in browser.current_url

    login(browser, base, "admin", ADMIN_PASSWORD, "admin")
    assert browser.current_url.endswith("/console/nodes"), browser.current_url
    assert "Nodes and switches" in text(browser, "h1") and "admin" in text(browser, "header .user")
    cookie = browser.get_cookie("quantum_console")
    assert cookie["httpOnly"] and cookie.get("expiry"), cookie

    # A cookie changed by the browser's owner fails its signature: log in again.
    value = cookie["value"]
    browser.delete_cookie("quantum_console")
    browser.add_cookie({"name": "quantum_console", "value": value[:-3] + ("aaa" if value[-3:] != "aaa"
                                                                           else "bbb"), "path": "/"})
    browser.get(base + "/console/nodes")
    assert "/console/login" in browser.current_url
    browser.delete_cookie("quantum_console")
    browser.add_cookie({"name": "quantum_console", "value": value, "path": "/"})
    browser.get(base + "/console/topology")
    assert "/console/topology" in browser.current_url

    browser.get(base + "/console/logout")
    browser.get(base + "/console/nodes")
    assert "/console/login" in browser.current_url


def test_terminal_commands_authenticate_with_keystone(keystone, keystone_controller):
    """`quantum-controller drift` (controller/ops_cli.py) against a Keystone
    controller: refused without a credential, in with an admin's OS_* password."""
    import os
    import subprocess

    from tests.support.tools import venv_bin

    def drift(env):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        return subprocess.run([venv_bin("quantum-controller"), "drift", "--url", keystone_controller.url],
                              capture_output=True, text=True, timeout=120, env={**clean, **env})
    r = drift({})
    assert r.returncode == 2 and "401" in r.stderr and "authentication required" in r.stderr, r.stderr
    creds = {"OS_AUTH_URL": keystone.ks.url, "OS_USER_DOMAIN_NAME": "Default",
             "OS_PROJECT_DOMAIN_NAME": "Default"}
    r = drift({**creds, "OS_USERNAME": "alice", "OS_PASSWORD": PASSWORD, "OS_PROJECT_NAME": "project-a"})
    assert r.returncode == 2 and "403" in r.stderr, r.stderr
    r = drift({**creds, "OS_USERNAME": "admin", "OS_PASSWORD": ADMIN_PASSWORD})
    assert r.returncode == 0 and "clean" in r.stdout, (r.stdout, r.stderr)


def test_a_console_session_ends_when_keystone_revokes_its_token(keystone, controller_factory, tmp_path):
    """A user disabled in Keystone (its tokens revoked) is out at the next page
    (token_cache_time = -1 here: by default a revocation takes up to 300 s)."""
    import http.cookiejar

    from tests.support.keystone import controller_ini
    ks = keystone.ks
    ini = controller_ini(tmp_path / "q.conf", ks)
    with open(ini, "a") as f:
        f.write("token_cache_time = -1\n")
    ctl = controller_factory(args=["--config-file", ini])
    ops = ks.user("ops-" + tmp_path.name[-6:], keystone.projects["admin"], ["admin"])
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = urllib.parse.urlencode({"username": ops["name"], "password": PASSWORD,
                                   "project": "admin"}).encode()
    with opener.open(ctl.url + "/console/login", data=form, timeout=60) as r:
        assert r.url.endswith("/console/nodes") and "Nodes and switches" in r.read().decode()
    with opener.open(ctl.url + "/console/topology", timeout=60) as r:
        assert r.url.endswith("/console/topology")
    status, data, _ = ks.call("PATCH", f"/users/{ops['id']}", {"user": {"enabled": False}})
    assert status == 200, data
    with opener.open(ctl.url + "/console/topology", timeout=60) as r:
        assert "/console/login" in r.url
