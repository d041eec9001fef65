import pytest

from controller import config


def test_defaults_are_the_embedded_setup():
    cfg = config.load([])
    assert cfg.get("DEFAULT.bind_port") == 9696
    assert cfg.get("openflow.listen_port") == 6653
    assert cfg.database_url == "sqlite:////var/lib/quantum-controller/quantum.db"


def test_file_then_flags_override(tmp_path):
    ini = tmp_path / "quantum.conf"
    ini.write_text("[DEFAULT]\nbind_port = 19696\nstate_dir = /srv/q\n"
                   "[ml2]\ntenant_network_types = vxlan,vlan\n"
                   "[database]\nconnection = postgresql://u@db/q\n")
    cfg = config.load(["--config-file", str(ini), "--bind-port", "29696"])
    assert cfg.get("DEFAULT.bind_port") == 29696
    assert cfg.get("DEFAULT.state_dir") == "/srv/q"
    assert cfg.ml2.tenant_network_types == ["vxlan", "vlan"]
    assert cfg.database_url == "postgresql://u@db/q"


@pytest.mark.parametrize("text, words", [
    ("[DEFAULT]\nbind_prot = 1\n", "unknown option [DEFAULT] bind_prot"),
    ("[quotas]\nquota_network = lots\n", "quota_network"),
    ("[DEFAULT]\ndebug = maybe\n", "debug"),
])
def test_bad_files_are_clear_errors(tmp_path, text, words):
    ini = tmp_path / "q.conf"
    ini.write_text(text)
    with pytest.raises(config.ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        config.load(["--config-file", str(ini)])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(["--config-file", str(tmp_path / "nope.conf")])
