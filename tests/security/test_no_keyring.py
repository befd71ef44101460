"""A machine with no OS keyring (keyring's fail backend): a profile that does not exist yet is
told to start the keyring service or choose a backend, not to restore a key from a backup it
cannot have; an existing profile without a reachable keyring is told the same and left
untouched; only an existing database whose key is missing from a working keyring is sent to
the key backup. Real processes of the `doctorai` command, the real window start path."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import keyring
import pytest
from keyring.backends.fail import Keyring as FailKeyring

from core.store.database import open_database
from core.store.keys import SERVICE, key_entry_name

REPO = Path(__file__).resolve().parents[2]
FAIL = "keyring.backends.fail.Keyring"
BACKUP = "from your key backup"


def _doctorai(home: Path, backend: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DOCTORAI_HOME=str(home), PYTHON_KEYRING_BACKEND=backend)
    return subprocess.run(
        [sys.executable, "-m", "desktop.launcher", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _says_start_the_keyring(err: str) -> None:
    assert "no OS keyring is available" in err
    assert f"keyring's backend: {FAIL}" in err
    assert "start the desktop's keyring service" in err
    assert "GNOME Keyring or KWallet" in err
    assert "Keychain" in err
    assert "Credential Locker" in err
    assert "PYTHON_KEYRING_BACKEND" in err
    assert BACKUP not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", [("users", "list"), ("audit", "verify")])
def test_first_run_without_a_keyring_says_how_to_get_one(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    home = tmp_path / "new-profile"
    run = _doctorai(home, FAIL, *command)
    assert run.returncode == 2, run.stdout + run.stderr
    _says_start_the_keyring(run.stderr)
    assert f"cannot create the encrypted database '{home / 'doctorai.db'}'" in run.stderr
    assert "nothing was created" in run.stderr
    assert not (home / "doctorai.db").exists()


def test_an_existing_profile_without_a_keyring_is_told_the_same_and_left_untouched(
    tmp_path: Path,
) -> None:
    home = tmp_path / "profile"
    made = _doctorai(home, "keyrings.alt.file.PlaintextKeyring", "users", "list")
    assert made.returncode == 0, made.stdout + made.stderr
    db = home / "doctorai.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()

    run = _doctorai(home, FAIL, "users", "list")
    assert run.returncode == 2, run.stdout + run.stderr
    _says_start_the_keyring(run.stderr)
    assert f"cannot open the encrypted database '{db}'" in run.stderr
    assert "the file was left untouched" in run.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_only_a_missing_key_for_an_existing_database_points_to_the_backup(tmp_path: Path) -> None:
    db_path = tmp_path / "profile" / "doctorai.db"
    db_path.parent.mkdir()
    open_database(db_path).close()  # in this test's file keyring (the same one the child uses)
    keyring.delete_password(SERVICE, key_entry_name(db_path))

    run = _doctorai(db_path.parent, "keyrings.alt.file.PlaintextKeyring", "users", "list")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "the file exists but the keyring holds no key" in run.stderr
    assert BACKUP in run.stderr
    assert "start the desktop's keyring service" not in run.stderr


def test_the_window_start_path_shows_the_same_message(
    qapp: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from desktop import app

    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(app, "_critical", lambda title, text: shown.append((title, text)))
    keyring.set_keyring(FailKeyring())  # the isolated-keyring fixture restores its own

    assert app.run_gui(Namespace(paths=[], demo=False, device=None)) == 2
    err = capsys.readouterr().err
    _says_start_the_keyring(err)
    assert "cannot create the encrypted database" in err
    assert len(shown) == 1
    title, text = shown[0]
    assert title == app.CANNOT_START
    _says_start_the_keyring(text)
    assert text in err
    assert not (Path(os.environ["DOCTORAI_HOME"]) / "doctorai.db").exists()
