"""Without an OS keyring, `keyring` silently picks keyrings.alt's plaintext file (a pinned
dependency). The database key must not land there unless someone chose it: the env variable,
keyring's config file, or the throw-away demo profile (core.store.keys.use_file_keyring)."""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest
from keyrings.alt.file import PlaintextKeyring

from core.store import keys
from core.store.database import open_database
from core.store.errors import KeyringUnavailableError


@pytest.fixture
def auto_selected_file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What keyring does on a desktop without a keyring daemon: it falls to PlaintextKeyring."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no keyringrc.cfg
    monkeypatch.setattr(keys, "_chosen_file_keyring", None)
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "auto-keyring.cfg")
    keyring.set_keyring(backend)
    return Path(backend.file_path)


def test_an_auto_selected_plaintext_keyring_is_refused(
    auto_selected_file_keyring: Path, tmp_path: Path
) -> None:
    db_path = tmp_path / "ws.db"
    with pytest.raises(KeyringUnavailableError, match="plaintext key file") as info:
        open_database(db_path)
    assert "PYTHON_KEYRING_BACKEND" in str(info.value)
    assert not db_path.exists()
    assert not auto_selected_file_keyring.exists()  # no key was written anywhere


def test_the_env_variable_or_an_explicit_choice_allows_it(
    auto_selected_file_keyring: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "profile" / "demo-keyring.cfg"
    chosen.parent.mkdir()
    keys.use_file_keyring(chosen)
    open_database(tmp_path / "demo.db").close()
    assert "DoctorAI_20Workstation" in chosen.read_text()  # the key went to the chosen file

    other = PlaintextKeyring()  # a different file than the one chosen: refused again
    other.file_path = str(tmp_path / "elsewhere.cfg")
    keyring.set_keyring(other)
    with pytest.raises(KeyringUnavailableError):
        open_database(tmp_path / "second.db")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    open_database(tmp_path / "second.db").close()  # chosen on purpose (tests, CI)
