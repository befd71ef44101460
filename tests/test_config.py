from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, load_settings
from core.paths import profile_dir


def test_profile_dir_follows_doctorai_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "elsewhere"
    monkeypatch.setenv("DOCTORAI_HOME", str(home))
    assert profile_dir() == home
    assert home.is_dir()


def test_user_overrides_machine_but_not_locked_keys(tmp_path: Path) -> None:
    machine = tmp_path / "machine.toml"
    user = tmp_path / "user.toml"
    machine.write_text(
        'locked = ["sync.server_url"]\n'
        '[sync]\nserver_url = "https://central.example"\ninterval_s = 60\n'
        '[inference]\ndevice = "cpu"\n'
    )
    user.write_text(
        '[sync]\nserver_url = "https://evil.example"\ninterval_s = 5\n[inference]\ndevice = "gpu"\n'
    )
    settings = load_settings(machine, user)
    assert settings.sync.server_url == "https://central.example"  # locked by IT
    assert settings.sync.interval_s == 5  # not locked: the user's value wins
    assert settings.inference.device == "gpu"


def test_bad_file_is_named_in_the_error(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text("[viewer\n")
    with pytest.raises(ConfigError, match=r"user\.toml"):
        load_settings(tmp_path / "none.toml", user)


def test_unknown_value_is_refused(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text('[inference]\ndevice = "tpu"\n')
    with pytest.raises(ConfigError, match="device"):
        load_settings(tmp_path / "none.toml", user)


def test_a_wrong_user_file_keeps_it_settings_and_names_the_file(tmp_path: Path) -> None:
    from core.config import load_settings_keeping_it

    machine = tmp_path / "machine.toml"
    user = tmp_path / "user.toml"
    machine.write_text(
        'locked = ["viewer.hide_patient_info"]\n'
        "[viewer]\nhide_patient_info = true\n[security]\nlock_timeout_min = 1\n"
    )
    user.write_text("[viewer]\nfoo = 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(machine, user)
    message = str(err.value)
    assert f"the user file '{user}'" in message
    assert "viewer.foo" in message
    assert "machine.toml" not in message  # the machine file is fine: not blamed
    assert "pydantic.dev" not in message
    settings, problem = load_settings_keeping_it(machine, user)
    assert settings.viewer.hide_patient_info is True  # IT's lock still holds
    assert settings.security.lock_timeout_min == 1
    assert problem is not None
    assert "viewer.foo" in problem
    assert "ignored" in problem
    machine.write_text("[security]\nlock_timeout_min = -3\n")
    with pytest.raises(ConfigError, match="machine-wide file"):
        load_settings_keeping_it(machine, user)  # nothing trustworthy to fall back to


def test_it_can_point_at_the_trusted_update_root(tmp_path: Path) -> None:
    from core.sync.service import trusted_root_path

    machine = tmp_path / "machine.toml"
    machine.write_text('[sync]\ntuf_root = "/etc/doctorai/root.json"\n')
    settings = load_settings(machine, tmp_path / "none.toml")
    assert trusted_root_path(settings) == Path("/etc/doctorai/root.json")


def test_a_locked_name_that_is_no_setting_is_refused(tmp_path: Path) -> None:
    machine = tmp_path / "machine.toml"
    machine.write_text('locked = ["sync.server_url", "viewer.hide_patient_info", "security"]\n')
    load_settings(machine, tmp_path / "none.toml")  # real keys and a whole section
    machine.write_text('locked = ["sync.server_ulr"]\n')
    with pytest.raises(
        ConfigError, match=r"locked names 'sync\.server_ulr', which is not a setting"
    ):
        load_settings(machine, tmp_path / "none.toml")
