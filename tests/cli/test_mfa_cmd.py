"""``doctorai users mfa`` and the CLI's sign-in with a second factor, in process, on the real
profile of each test (its own SQLCipher file and file keyring). IT's policy comes from the
machine-wide settings file; codes come from pyotp at the secret the enrolment printed."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pyotp
import pytest

from cli import main
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType

ADMIN_PW = "correct horse battery"
RAD_PW = "amber falcon river"


def _run(monkeypatch: pytest.MonkeyPatch, *args: str, stdin: tuple[str, ...] = ()) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{line}\n" for line in stdin)))
    return main(["users", *args])


@pytest.fixture
def profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _isolated_profile: Path) -> Path:
    (tmp_path / "machine-config.toml").write_text('[security]\nmfa_required_roles = ["admin"]\n')
    assert (
        _run(monkeypatch, "add", "boss", "--role", "admin", "--password-stdin", stdin=(ADMIN_PW,))
        == 0
    )
    ws = Workstation.open(_isolated_profile / "doctorai.db")  # the admin is not enrolled yet:
    try:  # the radiologist is added through the core, as the CLI cannot sign the admin in
        from core.security.users import Role

        ws.users.create_user("rad", RAD_PW, Role.RADIOLOGIST, by="boss")
    finally:
        ws.close()
    return _isolated_profile / "doctorai.db"


class _Person:
    """Standard input typed by a person: the password, then the code of the key the command
    has just printed (read off the captured output, as the person reads the screen)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], password: str) -> None:
        self.capsys = capsys
        self.lines = [password]
        self.seen = ""
        self.key = ""

    def readline(self) -> str:
        if self.lines:
            return self.lines.pop(0) + "\n"
        self.seen += self.capsys.readouterr().out
        found = re.search(r"^key: ([A-Z2-7]+)$", self.seen, re.M)
        assert found, self.seen
        self.key = found.group(1)
        return pyotp.TOTP(self.key).at(time.time()) + "\n"


def _enrol(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, pw: str
) -> tuple[str, list[str]]:
    """Run ``users mfa enrol`` as a person would; the key and the recovery codes printed."""
    capsys.readouterr()
    person = _Person(capsys, pw)
    monkeypatch.setattr("sys.stdin", person)
    assert main(["users", "mfa", "enrol", "--user", name, "--password-stdin"]) == 0
    out = person.seen + capsys.readouterr().out
    assert "otpauth://totp/DoctorAI%20Workstation:" in out
    assert "\u2588" in out  # the QR code drawn in the terminal
    codes = re.findall(r"^  ([a-z0-9]{5}-[a-z0-9]{5})$", out, re.M)
    assert len(codes) == 10
    return person.key, codes


def test_an_admin_of_a_role_that_requires_it_must_enrol_first(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert (
        _run(monkeypatch, "list", "--admin", "boss", "--admin-password-stdin", stdin=(ADMIN_PW,))
        == 1
    )
    err = capsys.readouterr().err
    assert "enrol first in the window or with `doctorai users mfa enrol --user boss`" in err
    secret, codes = _enrol(monkeypatch, capsys, "boss", ADMIN_PW)
    # the password alone is refused now; with the code on the next line it signs in
    assert (
        _run(monkeypatch, "list", "--admin", "boss", "--admin-password-stdin", stdin=(ADMIN_PW, ""))
        == 1
    )
    assert "code not accepted" in capsys.readouterr().err
    later = pyotp.TOTP(secret).at(time.time() + 30)
    assert (
        _run(
            monkeypatch,
            "list",
            "--admin",
            "boss",
            "--admin-password-stdin",
            stdin=(ADMIN_PW, later),
        )
        == 0
    )
    assert "boss" in capsys.readouterr().out
    assert (
        _run(
            monkeypatch,
            "list",
            "--admin",
            "boss",
            "--admin-password-stdin",
            stdin=(ADMIN_PW, later),
        )
        == 1
    )
    assert "code not accepted" in capsys.readouterr().err  # replayed
    assert (
        _run(
            monkeypatch,
            "list",
            "--admin",
            "boss",
            "--admin-password-stdin",
            stdin=(ADMIN_PW, codes[0]),
        )
        == 0
    )
    capsys.readouterr()
    assert (
        _run(monkeypatch, "mfa", "status", "--user", "boss", "--password-stdin", stdin=(ADMIN_PW,))
        == 0
    )
    assert "on; 9 recovery code(s) left" in capsys.readouterr().out


def test_recovery_codes_and_an_admins_removal(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    boss_secret, boss_codes = _enrol(monkeypatch, capsys, "boss", ADMIN_PW)
    assert (
        _run(monkeypatch, "mfa", "status", "--user", "rad", "--password-stdin", stdin=(RAD_PW,))
        == 0
    )
    assert "rad: two-factor sign-in off;" in capsys.readouterr().out
    _, rad_codes = _enrol(monkeypatch, capsys, "rad", RAD_PW)
    assert (
        _run(monkeypatch, "mfa", "enrol", "--user", "rad", "--password-stdin", stdin=(RAD_PW,)) == 1
    )
    assert "has two-factor sign-in already" in capsys.readouterr().err
    assert (
        _run(
            monkeypatch,
            "mfa",
            "recovery-codes",
            "--user",
            "rad",
            "--password-stdin",
            stdin=(RAD_PW, rad_codes[0]),
        )
        == 0
    )
    new = re.findall(r"^  ([a-z0-9]{5}-[a-z0-9]{5})$", capsys.readouterr().out, re.M)
    assert len(new) == 10
    assert (
        _run(
            monkeypatch,
            "mfa",
            "recovery-codes",
            "--user",
            "rad",
            "--password-stdin",
            stdin=(RAD_PW, rad_codes[1]),
        )
        == 1
    )  # the old codes stopped working
    # a radiologist may not remove anyone's; the admin may
    assert (
        _run(
            monkeypatch,
            "mfa",
            "remove",
            "rad",
            "--admin",
            "rad",
            "--admin-password-stdin",
            stdin=(RAD_PW, new[0]),
        )
        == 2
    )
    assert "may not manage-users" in capsys.readouterr().err
    assert (
        _run(
            monkeypatch,
            "mfa",
            "remove",
            "rad",
            "--admin",
            "boss",
            "--admin-password-stdin",
            stdin=(ADMIN_PW, boss_codes[0]),
        )
        == 0
    )
    assert "removed" in capsys.readouterr().out
    assert (
        _run(monkeypatch, "mfa", "status", "--user", "rad", "--password-stdin", stdin=(RAD_PW,))
        == 0
    )
    assert "off" in capsys.readouterr().out
    ws = Workstation.open(profile)
    try:
        removed = [
            (e.user, e.objects[0]["id"])
            for e in ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
            if e.details.get("action") == "mfa-removed"
        ]
    finally:
        ws.close()
    assert removed == [("boss", "rad")]
    assert boss_secret not in Path(profile).read_bytes().decode("latin-1")
