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
