"""``doctorai users`` end to end, in process, on the real profile of each test (its own
SQLCipher file and file keyring): the admin commands, the table of ``users list``, the forced
change after a reset, and the attack of a radiologist on the admin account."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cli import main
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType, Outcome
from core.security.users import AuthError

ADMIN_PW = "correct horse battery"
RAD_PW = "amber falcon river"
TEMP = "tulip kettle vanish"
NEW = "orbit lantern meadow"


def _run(monkeypatch: pytest.MonkeyPatch, *args: str, stdin: tuple[str, ...] = ()) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{line}\n" for line in stdin)))
    return main(["users", *args])


def _as_admin(monkeypatch: pytest.MonkeyPatch, *args: str, stdin: tuple[str, ...] = ()) -> int:
    return _run(
        monkeypatch, *args, "--admin", "boss", "--admin-password-stdin", stdin=(ADMIN_PW, *stdin)
    )


@pytest.fixture
def profile(monkeypatch: pytest.MonkeyPatch, _isolated_profile: Path) -> Path:
    assert (
        _run(monkeypatch, "add", "boss", "--role", "admin", "--password-stdin", stdin=(ADMIN_PW,))
        == 0
    )
    assert (
        _as_admin(
            monkeypatch, "add", "rad", "--role", "radiologist", "--password-stdin", stdin=(RAD_PW,)
        )
        == 0
    )
    return _isolated_profile / "doctorai.db"


def _alerts(db: Path) -> list[tuple[str, str, str, int]]:
    ws = Workstation.open(db)
    try:
        return [
            (e.user, e.details.get("action", ""), ",".join(o["id"] for o in e.objects), e.outcome)
            for e in ws.audit.iter_events(event_type=EventType.SECURITY_ALERT)
        ]
    finally:
        ws.close()


def test_list_needs_an_admin_and_shows_the_table(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert _run(monkeypatch, "list") == 2
    assert "an admin lists" in capsys.readouterr().err
    assert (
        _run(monkeypatch, "list", "--admin", "rad", "--admin-password-stdin", stdin=(RAD_PW,)) == 2
    )
    assert "may not manage-users" in capsys.readouterr().err
    assert _as_admin(monkeypatch, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "ROLE",
        "STATE",
        "LAST",
        "SIGN-IN",
        "FAILED",
        "ATTEMPTS",
        "MUST",
        "CHANGE",
        "2FA",
    ]
    boss, rad = (line.split() for line in lines[1:])
    assert boss[:3] == ["boss", "admin", "enabled"]
    assert boss[-3:] == ["0", "no", "no"]
    # rad signed in above (then was refused the list): a sign-in time, no failed attempt
    assert rad[:3] == ["rad", "radiologist", "enabled"]
    assert rad[3].startswith("20")
    assert rad[-3:] == ["0", "no", "no"]


def test_admin_commands_do_what_they_say_and_are_audited(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _as_admin(monkeypatch, "disable", "rad") == 0
    assert (
        _run(monkeypatch, "passwd", "--user", "rad", "--password-stdin", stdin=(RAD_PW, NEW)) == 1
    )
    assert "not accepted" in capsys.readouterr().err  # a disabled account signs in for nothing
    assert _as_admin(monkeypatch, "enable", "rad") == 0
    assert _as_admin(monkeypatch, "role", "rad", "technologist") == 0
    assert _as_admin(monkeypatch, "disable", "boss") == 1
    assert "cannot disable their own account" in capsys.readouterr().err
    assert _as_admin(monkeypatch, "role", "ghost", "admin") == 1
    assert "no account 'ghost'" in capsys.readouterr().err
    done = [(u, a, t) for u, a, t, o in _alerts(profile) if o == Outcome.SUCCESS]
    assert done[-3:] == [
        ("boss", "user-disabled", "rad"),
        ("boss", "user-enabled", "rad"),
        ("boss", "role-changed", "rad"),
    ]


def test_a_reset_forces_the_owner_to_change_the_password_first(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _as_admin(monkeypatch, "reset", "rad", "--password-stdin", stdin=(TEMP,)) == 0
    # rad signs in with the temporary password for anything: refused until changed
    capsys.readouterr()
    refused = _run(monkeypatch, "list", "--admin", "rad", "--admin-password-stdin", stdin=(TEMP,))
    assert refused == 1
    assert (
        "the password of rad must be changed first: doctorai users passwd --user rad"
        in capsys.readouterr().err
    )
    assert _run(monkeypatch, "passwd", "rad", "--password-stdin", stdin=(TEMP, "short")) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    assert _run(monkeypatch, "passwd", "--user", "rad", "--password-stdin", stdin=(TEMP, NEW)) == 0
    assert "password of 'rad' changed" in capsys.readouterr().out
    assert _as_admin(monkeypatch, "list") == 0
    rad = capsys.readouterr().out.splitlines()[2].split()
    assert rad[0] == "rad"
    assert rad[-2] == "no"  # no longer must change


def test_the_attack_a_radiologist_resets_the_admin(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """rad, with their own valid password, tries `users reset boss --admin rad`."""
    code = _run(
        monkeypatch,
        "reset",
        "boss",
        "--admin",
        "rad",
        "--admin-password-stdin",
        "--password-stdin",
        stdin=(RAD_PW, "mallory owns this now"),
    )
    assert code == 2
    assert "'rad' (radiologist) may not manage-users" in capsys.readouterr().err
    assert ("rad", "password-reset", "boss", Outcome.SERIOUS_FAILURE) in _alerts(profile)
    for action in (("unlock", "boss"), ("role", "rad", "admin"), ("disable", "boss")):
        assert (
            _run(monkeypatch, *action, "--admin", "rad", "--admin-password-stdin", stdin=(RAD_PW,))
            == 2
        )
    assert _as_admin(monkeypatch, "list") == 0  # boss's password still works
    refused = [(u, a) for u, a, _t, o in _alerts(profile) if o == Outcome.SERIOUS_FAILURE]
    assert refused == [
        ("rad", "password-reset"),
        ("rad", "user-unlocked"),
        ("rad", "role-changed"),
        ("rad", "user-disabled"),
    ]


def test_a_wrong_admin_password_changes_nothing(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        monkeypatch,
        "disable",
        "rad",
        "--admin",
        "boss",
        "--admin-password-stdin",
        stdin=("nope nope nope",),
    )
    assert code == 1
    assert "not accepted" in capsys.readouterr().err
    assert not any(a == "user-disabled" for _u, a, _t, _o in _alerts(profile))


def test_passwd_asks_the_second_factor_of_an_enrolled_account(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The password alone (stolen, or read off a note) does not change it when the account
    has a second factor: the change signs in as the account, code included."""
    import pyotp

    from core.app.sign_in import begin_enrolment, finish_enrolment

    ws = Workstation.open(profile)
    try:
        ws.session.login("rad", RAD_PW)
        enrolment = begin_enrolment(ws)
        finish_enrolment(ws, enrolment, RAD_PW, pyotp.TOTP(enrolment.secret).now())
    finally:
        ws.close()
    capsys.readouterr()
    stolen = _run(
        monkeypatch, "passwd", "--user", "rad", "--password-stdin", stdin=(RAD_PW, NEW, NEW)
    )
    assert stolen == 1
    assert "password of 'rad' changed" not in capsys.readouterr().out
    recovery = enrolment.recovery_codes[0]
    ok = _run(
        monkeypatch, "passwd", "--user", "rad", "--password-stdin", stdin=(RAD_PW, recovery, NEW)
    )
    assert ok == 0
    assert "password of 'rad' changed" in capsys.readouterr().out
    ws = Workstation.open(profile)
    try:
        with pytest.raises(AuthError):
            ws.users.authenticate("rad", RAD_PW, recovery)
    finally:
        ws.close()
