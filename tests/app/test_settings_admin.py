"""Saving a PACS node's secret is an admin's setting, from the CLI as in the core: refused for
the OS account and a radiologist, audited (never the secret) for an admin."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import cli
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.security.users import Role

PASSWORD = "correct horse battery"


@pytest.fixture
def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "profile"
    monkeypatch.setenv("DOCTORAI_HOME", str(home))
    home.mkdir()
    (home / "config.toml").write_text(
        '[[pacs]]\nname = "hospital"\nurl = "https://pacs.example.org/dicom-web"\n'
        'auth = "basic"\nusername = "ws01"\n',
        encoding="utf-8",
    )
    ws = Workstation.open()
    ws.users.create_user("admin", PASSWORD, Role.ADMIN, by="test")
    ws.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    ws.close()
    return home


def _secret(monkeypatch: pytest.MonkeyPatch, stdin: str, *args: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return cli.main(["pacs", "secret", "hospital", "--stdin", *args])


def test_only_an_admin_saves_a_pacs_secret(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _secret(monkeypatch, "s3cret\n") == 2  # the OS account alone: refused
    assert "needs an admin" in capsys.readouterr().err
    assert _secret(monkeypatch, f"{PASSWORD}\ns3cret\n", "--user", "rad", "--password-stdin") == 2
    assert "may not settings" in capsys.readouterr().err
    from core.pacs.errors import PacsConfigError
    from core.pacs.nodes import get_node, node_secret

    node = get_node("hospital")
    with pytest.raises(PacsConfigError, match="no password"):
        node_secret(node)  # nothing was saved by the refused attempts
    assert _secret(monkeypatch, f"{PASSWORD}\ns3cret\n", "--user", "admin", "--password-stdin") == 0
    assert node_secret(node) == "s3cret"
    ws = Workstation.open()
    try:
        (saved,) = [
            e
            for e in ws.audit.iter_events(event_type=EventType.SECURITY_ALERT)
            if e.details.get("action") == "pacs-secret-saved"
        ]
        assert (saved.user, saved.role) == ("admin", "admin")
        assert "s3cret" not in repr(saved)  # the secret never enters the trail
    finally:
        ws.close()
