"""The second factor (TOTP, RFC 6238, and recovery codes) attacked on a real SQLCipher profile:
each test performs the attack and checks it is refused, counted and audited. Valid codes come
from pyotp itself (``TOTP(secret).at(t)``), never from our code."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from core.app.sign_in import (
    begin_enrolment,
    finish_enrolment,
    new_recovery_codes,
    remove_second_factor,
    sign_in,
    start_enrolment,
    unlock,
)
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType, Outcome
from core.config import SecuritySettings
from core.security.session import Session
from core.security.totp import MfaError
from core.security.users import (
    AccountLockedError,
    AuthError,
    PermissionDenied,
    Role,
    SecondFactorRequired,
)
from core.store.schema import users

PASSWORD = "correct horse battery"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    security = SecuritySettings(max_failed_logins=3, lockout_min=5, mfa_required_roles=["admin"])
    w = Workstation.open(tmp_path / "ws.db", security)
    _T0[0] = time.time()
    w.users.create_user("boss", PASSWORD, Role.ADMIN, by="setup")
    w.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="boss")
    yield w
    w.close()


_T0 = [time.time()]


def _code(secret: str, offset_s: float = 0) -> str:
    """The code of the test's start time plus ``offset_s``: the same step in every call of a
    test even when the clock passes a step boundary meanwhile (the window covers one step)."""
    return pyotp.TOTP(secret).at(_T0[0] + offset_s)


def _enrol(ws: Workstation, name: str) -> tuple[str, tuple[str, ...]]:
    """Enrol ``name`` as a sign-in would, then sign out; the secret and recovery codes."""
    enrolment = start_enrolment(ws, name, PASSWORD)
    finish_enrolment(ws, enrolment, PASSWORD, _code(enrolment.secret))
    ws.session.logout()
    return enrolment.secret, enrolment.recovery_codes


def _actions(ws: Workstation, user: str) -> list[tuple[str, Outcome]]:
    return [
        (str(e.details.get("action", "")), Outcome(e.outcome))
        for e in ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
        if e.user == user
    ]


def _failed_logins(ws: Workstation, name: str) -> int:
    with ws.db.engine.connect() as conn:
        row = conn.execute(users.select().where(users.c.username == name)).one()
    return int(row.failed_logins)


# --- the attacks -----------------------------------------------------------------------------
def test_a_correct_password_without_the_code_is_refused_once_enrolled(ws: Workstation) -> None:
    secret, _ = _enrol(ws, "rad")  # radiologists are not required to: rad chose to
    with pytest.raises(SecondFactorRequired) as refused:
        sign_in(ws, "rad", PASSWORD)
    assert not refused.value.enrol
    assert ws.session.user is None
    with pytest.raises(AuthError, match="two-factor code not accepted"):
        sign_in(ws, "rad", PASSWORD, "000000" if _code(secret) != "000000" else "111111")
    assert ws.session.user is None
    assert _actions(ws, "rad")[-1] == ("login", Outcome.MINOR_FAILURE)
    user = sign_in(ws, "rad", PASSWORD, _code(secret, 30))  # the next step (the current one
    assert user.username == "rad"  # confirmed the enrolment)
    login = list(ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION))[-1]
    assert (login.details["action"], login.details["second_factor"]) == ("login", "totp")


def test_a_role_that_requires_it_cannot_sign_in_without_enrolling(ws: Workstation) -> None:
    for code in (None, "123456", "abcde-fghij"):  # no code, or a code of no enrolment
        with pytest.raises(SecondFactorRequired) as refused:
            sign_in(ws, "boss", PASSWORD, code)
        assert refused.value.enrol
        assert ws.session.user is None
    assert ("login", Outcome.SUCCESS) not in _actions(ws, "boss")
    with pytest.raises(AuthError, match="user name or password"):  # and the password counts
        start_enrolment(ws, "boss", "not the password")
    enrolment = start_enrolment(ws, "boss", PASSWORD)
    assert ws.session.user is None  # enrolling is not signed in
    assert enrolment.uri.startswith("otpauth://totp/DoctorAI%20Workstation:boss?secret=")
    assert "issuer=DoctorAI%20Workstation" in enrolment.uri
    assert enrolment.qr_png().startswith(b"\x89PNG")
    assert "\u2588" in enrolment.qr_text()
    assert len(set(enrolment.recovery_codes)) == 10
    with pytest.raises(AuthError):  # the recovery codes work only once it is confirmed
        sign_in(ws, "boss", PASSWORD, enrolment.recovery_codes[0])
    user = finish_enrolment(ws, enrolment, PASSWORD, _code(enrolment.secret))
    assert user.username == "boss"
    assert ws.session.user == user
    actions = [a for a, _ in _actions(ws, "boss")]
    assert actions.index("mfa-enrolment-started") < actions.index("mfa-enrolled")
    assert actions[-1] == "login"
    assert ws.users.mfa.status("boss").enrolled


def test_a_replayed_code_is_refused(ws: Workstation) -> None:
    secret, _ = _enrol(ws, "rad")  # enrolment used the current step
    now = _code(secret)
    with pytest.raises(AuthError, match="two-factor code not accepted"):
        sign_in(ws, "rad", PASSWORD, now)  # the enrolment's own code, again
    later = _code(secret, STEP := 30)
    sign_in(ws, "rad", PASSWORD, later)  # the next step (within the +-1 window) is new
    ws.session.logout()
    for replay in (later, now, _code(secret, -STEP)):  # the same step, or an older one
        with pytest.raises(AuthError):
            sign_in(ws, "rad", PASSWORD, replay)
    refused = [a for a, o in _actions(ws, "rad") if a == "mfa-code-refused"]
    assert len(refused) == 4
    assert _failed_logins(ws, "rad") == 0  # 3 failures in a row: locked, counter restarted
    with pytest.raises(AccountLockedError):
        sign_in(ws, "rad", PASSWORD, _code(secret, 30))


def test_the_same_code_raced_from_several_threads_signs_in_once(ws: Workstation) -> None:
    """A code seen over a shoulder and typed at the same moment elsewhere: the check and the
    step's record share one write transaction, so exactly one of the racers gets in."""
    secret, _ = _enrol(ws, "rad")
    code = _code(secret, 30)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def race() -> None:
        barrier.wait()
        try:
            ws.users.authenticate("rad", PASSWORD, code)
            outcomes.append("in")
        except AuthError:
            outcomes.append("refused")

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["in", "refused", "refused", "refused"]


def test_a_code_outside_the_window_is_refused(ws: Workstation) -> None:
    secret, _ = _enrol(ws, "rad")
    for offset in (-120, 120):
        with pytest.raises(AuthError):
            sign_in(ws, "rad", PASSWORD, _code(secret, offset))
    assert _failed_logins(ws, "rad") == 2


def test_a_recovery_code_works_once(ws: Workstation) -> None:
    _, codes = _enrol(ws, "rad")
    sign_in(ws, "rad", PASSWORD, codes[3].upper().replace("-", " "))  # typed loosely
    ws.session.logout()
    assert ws.users.mfa.status("rad").recovery_codes_left == 9
    with pytest.raises(AuthError, match="two-factor code not accepted"):
        sign_in(ws, "rad", PASSWORD, codes[3])
    used = [
        e
        for e in ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
        if e.details.get("action") == "mfa-recovery-code-used"
    ]
    assert len(used) == 1
    assert used[0].user == "rad"
    assert used[0].details["codes_left"] == 9
    sign_in(ws, "rad", PASSWORD, codes[4])  # another one still works


def test_wrong_codes_count_towards_the_lockout(ws: Workstation) -> None:
    secret, _ = _enrol(ws, "rad")
    wrong = "000000" if _code(secret) != "000000" else "111111"
    with pytest.raises(AuthError):
        sign_in(ws, "rad", PASSWORD, wrong)
    # the attacker knows the password: asking without a code must not reset the count
    with pytest.raises(SecondFactorRequired):
        sign_in(ws, "rad", PASSWORD)
    with pytest.raises(AuthError):
        sign_in(ws, "rad", "not the password")  # wrong passwords and codes add up
    assert _failed_logins(ws, "rad") == 2
    with pytest.raises(AccountLockedError, match="now locked for 5 minute"):
        sign_in(ws, "rad", PASSWORD, wrong)
    with pytest.raises(AccountLockedError):  # locked: even the right code is refused
        sign_in(ws, "rad", PASSWORD, _code(secret, 30))
    assert ws.session.user is None


def test_unlock_needs_the_code(ws: Workstation) -> None:
    clock = [0.0]
    ws.session = Session(ws.users, clock=lambda: clock[0])
    secret, codes = _enrol(ws, "rad")  # the enrolment used the current step
    sign_in(ws, "rad", PASSWORD, codes[0])
    clock[0] += ws.session.timeout_s + 1
    assert ws.session.lock_if_idle()
    with pytest.raises(SecondFactorRequired):
        unlock(ws, PASSWORD)
    assert ws.session.locked
    with pytest.raises(AuthError):
        unlock(ws, PASSWORD, _code(secret))  # the enrolment's own code: a replay
    with pytest.raises(AuthError):
        unlock(ws, PASSWORD, codes[0])  # a used recovery code
    assert ws.session.locked
    with pytest.raises(PermissionDenied):
        new_recovery_codes(ws)  # nothing of the account while locked
    unlock(ws, PASSWORD, _code(secret, 30))
    assert _actions(ws, "rad")[-1] == ("login", Outcome.SUCCESS)
    assert not ws.session.locked


def test_unlock_of_a_role_that_now_requires_it_enrols(ws: Workstation) -> None:
    sign_in(ws, "rad", PASSWORD)  # policy changed while signed in
    ws.users.settings.mfa_required_roles.append("radiologist")
    ws.session.lock()
    with pytest.raises(SecondFactorRequired) as refused:
        unlock(ws, PASSWORD)
    assert refused.value.enrol
    enrolment = start_enrolment(ws, "ignored", PASSWORD)
    assert enrolment.username == "rad"
    assert ws.session.locked
    finish_enrolment(ws, enrolment, PASSWORD, _code(enrolment.secret))
    assert not ws.session.locked


# --- the rest of its life --------------------------------------------------------------------
def test_enrolment_counts_only_once_confirmed(ws: Workstation) -> None:
    sign_in(ws, "rad", PASSWORD)
    enrolment = begin_enrolment(ws)
    with pytest.raises(MfaError, match="not valid"):
        finish_enrolment(ws, enrolment, "", "12345")
    ws.session.logout()
    sign_in(ws, "rad", PASSWORD)  # pending: the password alone still signs in
    assert not ws.users.mfa.status("rad").enrolled
    finish_enrolment(ws, enrolment, "", _code(enrolment.secret))
    with pytest.raises(MfaError, match="already"):
        begin_enrolment(ws)  # a new phone needs an admin's removal first
    ws.session.logout()
    with pytest.raises(SecondFactorRequired):
        sign_in(ws, "rad", PASSWORD)


def test_new_recovery_codes_replace_the_old_ones(ws: Workstation) -> None:
    _, old = _enrol(ws, "rad")
    sign_in(ws, "rad", PASSWORD, old[0])
    new = new_recovery_codes(ws)
    assert len(new) == 10
    assert not set(new) & set(old)
    ws.session.logout()
    with pytest.raises(AuthError):
        sign_in(ws, "rad", PASSWORD, old[1])
    sign_in(ws, "rad", PASSWORD, new[0])
    assert "mfa-recovery-codes-renewed" in [a for a, _ in _actions(ws, "rad")]


def test_an_admin_removes_a_lost_second_factor(ws: Workstation) -> None:
    boss_secret, _ = _enrol(ws, "boss")
    _, rad_codes = _enrol(ws, "rad")
    sign_in(ws, "rad", PASSWORD, rad_codes[0])
    with pytest.raises(PermissionDenied):
        remove_second_factor(ws, "rad")  # a radiologist may not
    ws.session.logout()
    sign_in(ws, "boss", PASSWORD, _code(boss_secret, 30))
    remove_second_factor(ws, "rad")
    with pytest.raises(MfaError, match="no two-factor"):
        remove_second_factor(ws, "rad")
    ws.session.logout()
    assert sign_in(ws, "rad", PASSWORD).username == "rad"  # the password alone again
    removed = [
        e
        for e in ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
        if e.details.get("action") == "mfa-removed"
    ]
    assert [(e.user, e.objects[0]["id"]) for e in removed] == [("boss", "rad")]


def test_the_trail_names_each_step_and_never_holds_the_secret_or_codes(
    ws: Workstation, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    enrolment = start_enrolment(ws, "boss", PASSWORD)
    first = _code(enrolment.secret)
    finish_enrolment(ws, enrolment, PASSWORD, first)
    ws.session.logout()
    with pytest.raises(AuthError):
        sign_in(ws, "boss", PASSWORD, first)  # replay
    sign_in(ws, "boss", PASSWORD, enrolment.recovery_codes[0])
    new = new_recovery_codes(ws)
    remove_second_factor(ws, "boss")
    steps = [a for a, _ in _actions(ws, "boss")]
    for step in (
        "mfa-enrolment-started",
        "mfa-enrolled",
        "mfa-code-refused",
        "mfa-recovery-code-used",
        "mfa-recovery-codes-renewed",
        "mfa-removed",
    ):
        assert step in steps
    secrets_ = [enrolment.secret, first, *enrolment.recovery_codes, *new]
    secrets_ += [c.replace("-", "") for c in (*enrolment.recovery_codes, *new)]
    with ws.db.engine.connect() as conn:
        tables = [
            r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        text = "\n".join(
            repr(row) for t in tables for row in conn.exec_driver_sql(f'SELECT * FROM "{t}"')
        )
    assert "audit_events" in tables or len(tables) > 3
    assert "mfa-enrolled" in text  # the rows were read decrypted
    for value in secrets_:
        assert value not in text
        assert value not in caplog.text
    path = Path(ws.db.path)
    for file in (path, path.with_name(path.name + "-wal")):
        if file.exists():  # SQLCipher: nothing in the clear on disk, the WAL included
            assert enrolment.secret.encode() not in file.read_bytes()


def test_the_secret_is_stored_only_in_its_row(ws: Workstation) -> None:
    secret, _ = _enrol(ws, "rad")
    with ws.db.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT totp_secret, recovery_hashes FROM user_mfa").one()
    assert stored[0] == secret
    assert stored[1].count("$argon2id$") == 10


def test_the_demo_sign_in_honours_a_policy_that_requires_a_second_factor(tmp_path: Path) -> None:
    """``make run`` signs the demo radiologist in by itself; where IT requires a second factor
    for radiologists it must not (nor crash): the sign-in dialog, with enrolment, takes over."""
    from desktop.app import sign_in_demo

    w = Workstation.open(tmp_path / "demo.db", SecuritySettings(mfa_required_roles=["radiologist"]))
    try:
        passwords = sign_in_demo(w)
        assert set(passwords) == {"demo-admin", "demo"}
        assert w.session.user is None
    finally:
        w.close()
