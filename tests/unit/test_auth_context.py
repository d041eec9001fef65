"""The request context with auth_strategy = keystone, from keystoneauth's own
token objects (what auth_token leaves in the WSGI environ), and the
[keystone_authtoken] configuration. The real Keystone is in tests/api/test_keystone.py."""
from __future__ import annotations

import datetime

import pytest
from keystoneauth1 import access
from keystonemiddleware.auth_token._user_plugin import UserAuthPlugin

from controller import config
from controller.api import context, errors
from controller.api.keystone import Keystone
from controller.api.policy import Enforcer


def token_body(roles, project="p-a", system=False):
    expires = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    token = {"methods": ["password"], "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
             "issued_at": "2026-01-01T00:00:00.000000Z",
             "user": {"id": "u-1", "name": "alice", "domain": {"id": "default", "name": "Default"}},
             "roles": [{"id": f"r-{r}", "name": r} for r in roles]}
    if system:
        token["system"] = {"all": True}
    else:
        token["project"] = {"id": project, "name": "project-a",
                            "domain": {"id": "default", "name": "Default"}}
    return {"token": token}


def environ(body, status="Confirmed"):
    ref = access.create(body=body, auth_token="tok")
    return {"HTTP_X_IDENTITY_STATUS": status, "keystone.token_auth": UserAuthPlugin(ref, None),
            # what a client may send: must make no difference
            "HTTP_X_ROLES": "admin", "HTTP_X_PROJECT_ID": "p-b"}


def test_the_context_comes_from_the_validated_token_only():
    policy = Enforcer()
    ctx = context.from_token(environ(token_body(["member", "reader"])), policy)
    assert (ctx.project_id, ctx.user_id, ctx.roles, ctx.is_admin) == ("p-a", "u-1", ["member", "reader"],
                                                                      False)
    assert ctx.system_scope is None
    admin = context.from_token(environ(token_body(["admin", "member", "reader"])), policy)
    assert admin.is_admin and admin.project_id == "p-a"
    system = context.from_token(environ(token_body(["admin"], system=True)), policy)
    assert system.is_admin and system.project_id is None and system.system_scope == "all"


@pytest.mark.parametrize("env", [
    {},                                                            # auth_token found no token
    {"HTTP_X_IDENTITY_STATUS": "Confirmed"},                       # a status but no token object
    "invalid",
])
def test_no_validated_token_is_401(env):
    if env == "invalid":
        env = environ(token_body(["admin"]), status="Invalid")
    with pytest.raises(errors.HTTPUnauthorized) as e:
        context.from_token(env, Enforcer())
    assert e.value.status == 401 and e.value.msg == context.UNAUTHENTICATED


def test_an_operators_policy_file_can_use_the_token_scope(tmp_path):
    rules = tmp_path / "policy.yaml"
    rules.write_text('"get_node": "role:admin and system_scope:all"\n'
                     '"create_network": "role:member and is_admin_project:True"\n')
    policy = Enforcer(str(rules))
    project_admin = context.from_token(environ(token_body(["admin"])), policy)
    system_admin = context.from_token(environ(token_body(["admin"], system=True)), policy)
    assert not policy.check(project_admin, "get_node", {})
    assert policy.check(system_admin, "get_node", {})
    member = context.from_token(environ(token_body(["member"])), policy)
    assert policy.check(member, "create_network", {"project_id": "p-a"})


def test_keystone_options_come_from_the_ini_file(tmp_path):
    ini = tmp_path / "q.conf"
    ini.write_text("[DEFAULT]\nauth_strategy = keystone\n[keystone_authtoken]\n"
                   "auth_url = http://192.0.2.5:5000/v3\nusername = quantum\npassword = pw\n"
                   "memcached_servers = 192.0.2.10:11211, 192.0.2.20:11211\ntoken_cache_time = 60\n")
    cfg = config.load(["--config-file", str(ini)])
    assert cfg.get("DEFAULT.auth_strategy") == "keystone"
    assert cfg.get("keystone_authtoken.memcached_servers") == ["192.0.2.10:11211", "192.0.2.20:11211"]
    assert cfg.get("keystone_authtoken.token_cache_time") == 60
    ks = Keystone(cfg)                       # builds auth_token; nothing is contacted yet
    assert ks.public_url == "http://192.0.2.5:5000/v3"
    assert ks.protocol._conf.get("token_cache_time") == 60
    assert ks.protocol._conf.get("delay_auth_decision") is True
    ini.write_text("[keystone_authtoken]\nadmin_token = x\n")
    with pytest.raises(config.ConfigError, match=r"unknown option \[keystone_authtoken\] admin_token"):
        config.load(["--config-file", str(ini)])
    with pytest.raises(config.ConfigError, match="auth_strategy"):
        config.load(["--auth-strategy", "none"])
    with pytest.raises(ValueError, match=r"needs \[keystone_authtoken\] password"):
        Keystone(config.from_dict({"DEFAULT.auth_strategy": "keystone",
                                   "keystone_authtoken.auth_url": "http://k/v3",
                                   "keystone_authtoken.username": "quantum"}))


def test_recent_tokens_skip_auth_token_only_while_it_would_still_cache_them(monkeypatch):
    from controller.api import keystone
    recent = keystone.RecentTokens(300)
    confirmed = environ(token_body(["member"]))
    recent.note("tok", confirmed)
    env = {"HTTP_X_ROLES": "admin", "HTTP_X_PROJECT_ID": "p-b", "HTTP_X_TENANT_ID": "p-b",
           "HTTP_X_IDENTITY_STATUS": "Invalid", "HTTP_X_USER_ID": "someone"}
    assert recent.admit("tok", env)
    assert "HTTP_X_ROLES" not in env and "HTTP_X_TENANT_ID" not in env and "HTTP_X_USER_ID" not in env
    assert env["HTTP_X_PROJECT_ID"] == "p-a" and env["HTTP_X_IDENTITY_STATUS"] == "Confirmed"
    ctx = context.from_token(env, Enforcer())
    assert (ctx.project_id, ctx.roles, ctx.is_admin) == ("p-a", ["member"], False)
    assert not recent.admit("other", {})
    assert not recent.admit("tok", {"HTTP_X_SERVICE_TOKEN": "s"})     # auth_token's rules for those
    now = keystone.time.time()
    monkeypatch.setattr(keystone.time, "time", lambda: now + keystone.RecentTokens.MAX_AGE_S + 1)
    assert not recent.admit("tok", {}) and "tok" not in recent.entries
    monkeypatch.undo()
    recent.note("bad", environ(token_body(["admin"]), status="Invalid"))
    assert "bad" not in recent.entries
    never = keystone.RecentTokens(-1)                 # token_cache_time = -1: no caching at all
    never.note("tok", confirmed)
    assert never.entries == {}
