"""The documented machine config loads through core.config, and its locked keys hold."""

from __future__ import annotations

from pathlib import Path

import deb
import pytest

from core.config import ConfigError, load_settings

EXAMPLE = Path(deb.__file__).resolve().parent / "config.example.toml"


def test_example_loads_with_its_values(tmp_path: Path) -> None:
    s = load_settings(EXAMPLE, tmp_path / "absent-user.toml")
    assert s.sync.server_url == "https://doctorai.hospital.example"
    assert s.sync.enrolment_code
    assert s.sync.ca_bundle
    assert s.sync.https_proxy
    assert s.inference.preload == ["chest-xray-pneumonia"]
    assert s.inference.memory_budget_mb == 4096
    assert s.security.lock_timeout_min == 10
    assert "sync.server_url" in s.locked


def test_user_cannot_override_locked_keys(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text(
        'locked = []\n[sync]\nserver_url = "https://evil.example"\n'
        'interval_s = 5.0\n[inference]\ndevice = "cpu"\npreload = []\n'
        "[security]\nlock_timeout_min = 999\n"
    )
    s = load_settings(EXAMPLE, user)
    assert s.sync.server_url == "https://doctorai.hospital.example"  # locked
    assert s.inference.device == "auto"  # locked
    assert s.security.lock_timeout_min == 10  # locked
    assert "sync.server_url" in s.locked  # the lock list itself is not the user's
    assert s.sync.interval_s == 5.0  # not locked: the user's value wins
    assert s.inference.preload == []  # not locked


def test_shipped_conffile_gives_defaults(tmp_path: Path) -> None:
    """The .deb's /etc/doctorai/config.toml is the example commented out: valid, all defaults."""
    conffile = tmp_path / "config.toml"
    conffile.write_text(deb.conffile_text(EXAMPLE.read_text()))
    s = load_settings(conffile, tmp_path / "absent-user.toml")
    assert s.sync.server_url is None
    assert s.locked == []
    assert "server_url" in conffile.read_text()  # documented in place, only commented out


def test_typo_in_machine_config_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "machine.toml"
    bad.write_text(EXAMPLE.read_text().replace("memory_budget_mb", "memory_budget_gb"))
    with pytest.raises(ConfigError, match="memory_budget_gb") as err:
        load_settings(bad, tmp_path / "absent-user.toml")
    assert str(bad) in str(err.value)
