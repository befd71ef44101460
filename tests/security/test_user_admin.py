"""Account administration (issue 15) on a real encrypted profile: each change audited in the name
of the admin who made it, refusals audited as failures; a radiologist who tries to take over the
admin account is refused; a disabled account cannot sign in; a reset forces a change; the last
admin stays; the password policy's length comes from the settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core.app import accounts
from core.app.workstation import Workstation
from core.audit.events import Actor
from core.audit.log import StoredEvent
from core.audit.vocabulary import EventType, Outcome
from core.config import SecuritySettings
from core.security.users import AuthError, PermissionDenied, Role
from core.store.schema import user_mfa, users

PASSWORD = "correct horse battery"
TEMP = "tulip kettle vanish"
NEW = "orbit lantern meadow"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    w = Workstation.open(tmp_path / "ws.db", SecuritySettings(max_failed_logins=3))
    w.users.create_user("admin", PASSWORD, Role.ADMIN, by="setup")
    w.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    yield w
    w.close()


def _alerts(ws: Workstation) -> list[StoredEvent]:
    return list(ws.audit.iter_events(event_type=EventType.SECURITY_ALERT))


def _last(ws: Workstation, action: str) -> StoredEvent:
    return [e for e in _alerts(ws) if e.details.get("action") == action][-1]


def _target(e: StoredEvent) -> list[str]:
    return [o["id"] for o in e.objects if o["kind"] == "user"]


def _no_password_in_trail(ws: Workstation) -> None:
    for e in ws.audit.iter_events():
        text = repr(e.details) + repr(e.objects)
        for secret in (PASSWORD, TEMP, NEW):
            assert secret not in text


def test_each_admin_action_is_audited_in_the_admins_name(ws: Workstation) -> None:
    ws.session.login("admin", PASSWORD)
    accounts.reset_password(ws, "rad", TEMP)
    accounts.set_disabled(ws, "rad", True)
    accounts.set_disabled(ws, "rad", False)
    accounts.set_role(ws, "rad", Role.TECHNOLOGIST)
    for action in ("password-reset", "user-disabled", "user-enabled", "role-changed"):
        e = _last(ws, action)
        assert (e.user, e.role, e.outcome) == ("admin", "admin", Outcome.SUCCESS), action
        assert _target(e) == ["rad"], action
    assert _last(ws, "role-changed").details["role"] == "technologist"
    assert _last(ws, "role-changed").details["old_role"] == "radiologist"
    _no_password_in_trail(ws)
    assert ws.audit.verify().ok


def test_the_attack_a_radiologist_resets_the_admins_password(ws: Workstation) -> None:
    ws.session.login("rad", PASSWORD)
    for attempt in (
        lambda: accounts.reset_password(ws, "admin", TEMP),
        lambda: accounts.set_role(ws, "rad", Role.ADMIN),
        lambda: accounts.set_disabled(ws, "admin", True),
        lambda: accounts.unlock_account(ws, "admin"),
        lambda: accounts.list_accounts(ws),
    ):
        with pytest.raises(PermissionDenied, match="'rad' \\(radiologist\\) may not manage-users"):
            attempt()
    refused = [e for e in _alerts(ws) if e.outcome == Outcome.SERIOUS_FAILURE]
    assert [(e.user, e.details["action"]) for e in refused] == [
        ("rad", "password-reset"),
        ("rad", "role-changed"),
        ("rad", "user-disabled"),
        ("rad", "user-unlocked"),
        ("rad", "users-listed"),
    ]
    assert _target(refused[0]) == ["admin"]
    ws.session.logout()
    ws.session.login("admin", PASSWORD)  # the admin's password still works
    assert ws.users.list_accounts()[1].role is Role.RADIOLOGIST


def test_a_disabled_account_cannot_sign_in_until_enabled(ws: Workstation) -> None:
    ws.session.login("admin", PASSWORD)
    accounts.set_disabled(ws, "rad", True)
    with pytest.raises(AuthError, match="not accepted"):
        ws.users.authenticate("rad", PASSWORD)
    assert {a.username: a.state for a in ws.users.list_accounts()}["rad"] == "disabled"
    with pytest.raises(ValueError, match="'rad' is already disabled"):
        accounts.set_disabled(ws, "rad", True)
    accounts.set_disabled(ws, "rad", False)
    assert ws.users.authenticate("rad", PASSWORD).username == "rad"


def test_a_reset_forces_a_change_at_the_next_sign_in(ws: Workstation) -> None:
    ws.session.login("admin", PASSWORD)
    accounts.reset_password(ws, "rad", TEMP)
    ws.session.logout()
    with pytest.raises(AuthError):
        ws.users.authenticate("rad", PASSWORD)  # the old password is gone
    user = ws.session.login("rad", TEMP)
    assert user.must_change_password
    with pytest.raises(ValueError, match="must differ"):
        accounts.change_own_password(ws, TEMP, TEMP)
    with pytest.raises(AuthError, match="current password is not correct"):
        accounts.change_own_password(ws, "not the temp password", NEW)
    accounts.change_own_password(ws, TEMP, NEW)
    assert ws.session.user is not None
    assert not ws.session.user.must_change_password
    e = _last(ws, "password-changed")
    assert (e.user, e.outcome, _target(e)) == ("rad", Outcome.SUCCESS, ["rad"])
    failed = [x for x in _alerts(ws) if x.details.get("action") == "password-changed"][:-1]
    assert [x.outcome for x in failed] == [Outcome.MINOR_FAILURE] * 2
    assert failed[1].details["reason"] == "wrong current password"
    ws.session.logout()
    assert not ws.session.login("rad", NEW).must_change_password
    info = {a.username: a for a in ws.users.list_accounts()}["rad"]
    assert info.last_sign_in is not None
    assert info.password_changed_at is not None
    _no_password_in_trail(ws)


def test_wrong_current_passwords_lock_the_account_like_sign_ins(ws: Workstation) -> None:
    """A session left open must not become a password-guessing oracle."""
    ws.session.login("rad", PASSWORD)
    for _ in range(3):
        with pytest.raises(AuthError):
            accounts.change_own_password(ws, "a wrong guess!", NEW)
    with pytest.raises(AuthError, match="locked"):
        accounts.change_own_password(ws, PASSWORD, NEW)
    info = {a.username: a for a in ws.users.list_accounts()}["rad"]
    assert info.state == "locked"
    ws.session.logout()
    ws.session.login("admin", PASSWORD)
    accounts.unlock_account(ws, "rad")
    assert _last(ws, "user-unlocked").user == "admin"
    assert ws.users.authenticate("rad", PASSWORD).username == "rad"


def test_the_last_admin_cannot_be_disabled_or_demoted(ws: Workstation) -> None:
    ws.session.login("admin", PASSWORD)
    with pytest.raises(ValueError, match="cannot disable their own account"):
        accounts.set_disabled(ws, "admin", True)
    with pytest.raises(ValueError, match="cannot change their own role"):
        accounts.set_role(ws, "admin", Role.RADIOLOGIST)
    # a second admin, then the first is demoted by it: the second is now the last one
    ws.users.create_user("boss", PASSWORD, Role.ADMIN, by="admin")
    ws.session.logout()
    ws.session.login("boss", PASSWORD)
    accounts.set_role(ws, "admin", Role.AUDITOR)
    accounts.set_role(ws, "admin", Role.ADMIN)
    accounts.set_disabled(ws, "admin", True)
    # 'admin', disabled while still signed in on another window, tries to demote 'boss': the
    # last enabled admin stays (nobody could manage the profile otherwise)
    stale = Actor("admin", "admin")
    with pytest.raises(ValueError, match="'boss': it is the last enabled admin"):
        ws.users.set_role("boss", Role.TECHNOLOGIST, by=stale)
    with pytest.raises(ValueError, match="'boss': it is the last enabled admin"):
        ws.users.set_disabled("boss", True, by=stale)
    refused = _last(ws, "role-changed")  # the refusals were not recorded as changes
    assert (refused.user, refused.details["role"]) == ("boss", "admin")
    with ws.db.engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.username == "boss")).one()
    assert (row.role, row.disabled) == ("admin", 0)
    self_refusal = next(e for e in _alerts(ws) if e.outcome == Outcome.MINOR_FAILURE)
    assert (self_refusal.user, self_refusal.details["action"]) == ("admin", "user-disabled")
    assert "cannot disable their own account" in self_refusal.details["reason"]


def test_unknown_accounts_are_named(ws: Workstation) -> None:
    ws.session.login("admin", PASSWORD)
    with pytest.raises(ValueError, match="no account 'ghost'"):
        accounts.reset_password(ws, "ghost", TEMP)
    with pytest.raises(ValueError, match="'rad' is not locked"):
        accounts.unlock_account(ws, "rad")


def test_password_length_comes_from_the_settings(tmp_path: Path) -> None:
    w = Workstation.open(tmp_path / "p.db", SecuritySettings(password_min_length=16))
    try:
        w.users.create_user("admin", PASSWORD, Role.ADMIN, by="setup")  # 21 characters
        with pytest.raises(ValueError, match="at least 16 characters"):
            w.users.create_user("rad", "maple-15-chars!", Role.RADIOLOGIST, by="admin")
        w.session.login("admin", PASSWORD)
        with pytest.raises(ValueError, match="at least 16 characters"):
            accounts.reset_password(w, "admin", "tulip-kettle-x")
        with pytest.raises(ValueError, match="at least 16 characters"):
            accounts.change_own_password(w, PASSWORD, "tulip-kettle-x")
        accounts.change_own_password(w, PASSWORD, "tulip-kettle-vanish")
    finally:
        w.close()


def test_an_old_password_must_be_changed_when_the_policy_says(tmp_path: Path) -> None:
    w = Workstation.open(tmp_path / "p.db", SecuritySettings(password_max_age_days=90))
    try:
        w.users.create_user("admin", PASSWORD, Role.ADMIN, by="setup")
        assert not w.users.authenticate("admin", PASSWORD).must_change_password
        old = (datetime.now(UTC) - timedelta(days=91)).isoformat()
        with w.db.transaction() as conn:
            conn.execute(update(users).values(password_changed_at=old))
        assert w.users.authenticate("admin", PASSWORD).must_change_password
        assert w.users.list_accounts()[0].must_change_password
    finally:
        w.close()


def test_the_list_shows_what_an_admin_needs(ws: Workstation) -> None:
    with ws.db.transaction() as conn:  # a confirmed second factor for rad only
        for name, confirmed in (("rad", 1), ("admin", 0)):
            conn.execute(
                user_mfa.insert().values(
                    username=name, totp_secret="X", confirmed=confirmed, created_at="2026-01-01"
                )
            )
    with pytest.raises(AuthError):
        ws.users.authenticate("rad", "a wrong guess!")
    ws.session.login("admin", PASSWORD)
    listed = {a.username: a for a in accounts.list_accounts(ws)}
    assert list(listed) == ["admin", "rad"]
    assert listed["rad"].failed_logins == 1
    assert listed["rad"].mfa_enrolled
    assert not listed["admin"].mfa_enrolled
    assert listed["admin"].last_sign_in is not None
    assert listed["rad"].last_sign_in is None
    assert listed["rad"].role is Role.RADIOLOGIST
    assert listed["rad"].state == "enabled"


def test_a_session_that_must_change_its_password_may_do_nothing_else(ws: Workstation) -> None:
    """The window and the CLI ask for the change first; the core refuses meanwhile too, so
    no front end can skip it."""
    from core.security.users import Permission

    ws.session.login("admin", PASSWORD)
    accounts.reset_password(ws, "rad", TEMP)
    ws.session.logout()
    ws.session.login("rad", TEMP)
    with pytest.raises(PermissionDenied, match="must be changed first"):
        ws.require(Permission.VIEW)
    accounts.change_own_password(ws, TEMP, NEW)
    assert ws.require(Permission.VIEW).user == "rad"
