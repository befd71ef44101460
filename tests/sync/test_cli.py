"""``doctorai sync`` end to end against a live backend; secrets only in the keyring.

The command runs as installed: it opens the profile's encrypted database (DOCTORAI_HOME, key
from the keyring backend named in PYTHON_KEYRING_BACKEND) and drains its outbox; the items
were queued there through the store's own APIs beforehand."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backend.db import AuditEvent, Device, Result
from cli import main
from tests.backend.conftest import LiveServer
from tests.sync.conftest import LocalStore, queue
from tests.sync.test_model_updates import MODEL, publish, trusted_root


def _profile() -> Path:
    return Path(os.environ["DOCTORAI_HOME"])  # isolated per test by tests/conftest.py


def _profile_store() -> LocalStore:
    """The profile's own database, where ``doctorai`` opens it."""
    _profile().mkdir(parents=True, exist_ok=True)
    return LocalStore.open(_profile() / "doctorai.db")


def _unsent() -> int:
    store = _profile_store()
    try:
        return store.outbox.count_unsent()
    finally:
        store.close()


ADMIN, PASSWORD = "boss", "correct horse battery"


def _as(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """``doctorai ARGS --user boss --password-stdin``, the password on standard input."""
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    return main([*args, "--user", ADMIN, "--password-stdin"])


def _add_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile's first account, an admin (managing models needs one)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", ADMIN, "--role", "admin", "--password-stdin"]) == 0


def _configure(profile: Path, url: str) -> None:
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "config.toml").write_text(f'[sync]\nserver_url = "{url}"\n')


def _files_containing(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_enrol_status_and_sync_once(
    server: LiveServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _configure(_profile(), server.url)
    store = _profile_store()
    queue(store, 7, 5)
    store.close()

    assert main(["sync", "enrol", server.enrol_code(), "--label", "reading-room-3"]) == 0
    assert "credentials stored in the OS keyring" in capsys.readouterr().out
    assert main(["sync", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["device_id"]
    assert status["queue_length"] == 12

    assert main(["sync", "--once"]) == 0
    assert "sent 12 item(s)" in capsys.readouterr().out
    assert _unsent() == 0

    from core.sync.credentials import CredentialStore

    creds = CredentialStore(server.url)
    device_id = creds.require_device().device_id
    with server.state.sessions() as s:
        results = s.scalar(
            select(func.count()).select_from(Result).where(Result.device_id == device_id)
        )
        events = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.device_id == device_id)
        )
        device = s.get(Device, device_id)
        assert device is not None
        head = (device.head_index, device.head_hash)
    assert (results, events) == (7, 5)
    store = _profile_store()
    try:
        assert head == store.audit.chain_head()  # the server holds this workstation's chain
    finally:
        store.close()
    secret = creds.require_device().device_secret
    refresh = creds.refresh_token()
    assert refresh
    # the secret and tokens are in the keyring (here its test file backend), in no other file
    assert _files_containing(_profile(), secret) == []
    assert _files_containing(_profile(), refresh) == []
    import keyring

    backend_file = Path(keyring.get_keyring().file_path)  # type: ignore[attr-defined]
    assert backend_file.is_relative_to(tmp_path / "xdg-data")
    assert backend_file.is_file()


def test_setup_problems_are_named(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sync", "--once"]) == 2
    assert "no sync server is configured" in capsys.readouterr().err
    _configure(_profile(), "http://sync.hospital.example")
    assert main(["sync", "enrol", "ABCD-1234"]) == 2
    assert "plain http" in capsys.readouterr().err
    _configure(_profile(), "http://127.0.0.1:9")
    _add_admin(monkeypatch)
    capsys.readouterr()
    assert main(["sync", "models", MODEL]) == 2
    assert "needs an admin: give --user NAME" in capsys.readouterr().err
    assert _as(monkeypatch, "sync", "models", MODEL) == 2  # the shipped trust root is missing
    assert "trusted update root" in capsys.readouterr().err


def test_unenrolled_sync_says_how_to_enrol(
    server: LiveServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _configure(_profile(), server.url + "/")
    store = _profile_store()
    queue(store, 1, 0)
    store.close()
    assert main(["sync"]) == 1
    assert "doctorai sync enrol CODE" in capsys.readouterr().err
    assert _unsent() == 1


def test_models_update_and_rollback(
    server: LiveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _configure(_profile(), server.url)
    root = tmp_path / "root.json"
    root.write_bytes(trusted_root(server))
    monkeypatch.setenv("DOCTORAI_TUF_ROOT", str(root))
    publish(server, tmp_path, "2.0.0")
    assert main(["sync", "enrol", server.enrol_code()]) == 0
    _add_admin(monkeypatch)
    assert _as(monkeypatch, "sync", "models", MODEL) == 0
    assert f"{MODEL} 2.0.0 installed" in capsys.readouterr().out
    assert _as(monkeypatch, "sync", "rollback", MODEL) == 1
    assert "no previous version kept" in capsys.readouterr().err
    publish(server, tmp_path, "2.1.0")
    assert _as(monkeypatch, "sync", "models") == 0  # every model in the catalogue / installed
    assert _as(monkeypatch, "sync", "rollback", MODEL) == 0
    assert "rolled back to 2.0.0" in capsys.readouterr().out
    assert main(["sync", "status"]) == 0
    assert f"{MODEL} 2.0.0, previous 2.1.0, pinned" in capsys.readouterr().out
