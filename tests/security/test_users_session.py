"""Accounts, roles, lockout and the inactivity lock, on a real encrypted database."""

from __future__ import annotations

import pytest

from core.audit.log import AuditLog
from core.audit.vocabulary import EventType, Outcome
from core.config import SecuritySettings
from core.security.session import Session
from core.security.users import (
    AccountLockedError,
    AuthError,
    Permission,
    PermissionDenied,
    Role,
    UserStore,
)
from core.store.database import Database

PASSWORD = "correct horse battery"


@pytest.fixture
def store(db: Database) -> UserStore:
    users = UserStore(
        AuditLog(db), SecuritySettings(max_failed_logins=3, lockout_min=5, lock_timeout_min=1)
    )
    users.create_user("admin", PASSWORD, Role.ADMIN, by="setup")
    users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    return users


def test_first_account_must_be_admin_and_passwords_are_hashed(db: Database) -> None:
    users = UserStore(AuditLog(db))
    assert not users.has_users()
    with pytest.raises(ValueError, match="first account must be an admin"):
        users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="setup")
    with pytest.raises(ValueError, match="at least 10"):
        users.create_user("admin", "short", Role.ADMIN, by="setup")
    users.create_user("admin", PASSWORD, Role.ADMIN, by="setup")
    with db.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT password_hash FROM users").scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_roles_grant_exactly_their_permissions(store: UserStore) -> None:
    session = Session(store)
    session.login("rad", PASSWORD)
    assert session.require(Permission.RUN_AI).username == "rad"
    with pytest.raises(PermissionDenied, match="'rad' \\(radiologist\\) may not manage-users"):
        session.require(Permission.MANAGE_USERS)
    store.create_user("audit", PASSWORD, Role.AUDITOR, by="admin")
    session.login("audit", PASSWORD)
    session.require(Permission.READ_AUDIT)
    with pytest.raises(PermissionDenied):
        session.require(Permission.VIEW)


def test_failed_logins_are_audited_and_lock_the_account(store: UserStore) -> None:
    for _ in range(3):
        with pytest.raises(AuthError):
            store.authenticate("rad", "wrong password!")
    with pytest.raises(AccountLockedError, match="'rad' is locked"):
        store.authenticate("rad", PASSWORD)  # right password, but locked for 5 minutes
    with pytest.raises(AuthError, match="not accepted"):
        store.authenticate("nobody", PASSWORD)
    failures = [
        e
        for e in store.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
        if e.outcome == Outcome.MINOR_FAILURE
    ]
    assert [e.details["reason"] for e in failures] == ["wrong password"] * 3 + [
        "account locked after repeated failures",
        "unknown or disabled account",
    ]
    assert "locked_until" in failures[2].details


def test_inactivity_locks_and_unlock_reauthenticates(store: UserStore) -> None:
    now = [1000.0]
    session = Session(store, clock=lambda: now[0])
    session.login("rad", PASSWORD)
    now[0] += 59
    assert not session.lock_if_idle()
    session.touch()
    now[0] += 61
    assert session.lock_if_idle()
    with pytest.raises(PermissionDenied, match="unlock"):
        session.require(Permission.VIEW)
    with pytest.raises(AuthError):
        session.unlock("wrong password!")
    assert session.locked
    session.unlock(PASSWORD)
    session.require(Permission.VIEW)
    actions = [
        e.details.get("action")
        for e in store.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
    ]
    assert actions == ["login", "lock", "login", "login"]  # failed unlock, then unlock
    assert store.audit.verify().ok


def test_users_cli_first_admin_then_others(tmp_path: object) -> None:
    import subprocess
    import sys

    def cli(*args: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "desktop.launcher", "users", *args],
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = cli("add", "rad", "--role", "radiologist", "--password-stdin", password=PASSWORD)
    assert refused.returncode == 1
    assert "first account must be an admin" in refused.stderr
    assert (
        cli("add", "boss", "--role", "admin", "--password-stdin", password=PASSWORD).returncode == 0
    )
    # the attack: anyone with the OS account adds themselves an admin once accounts exist
    sneaky = cli("add", "mallory", "--role", "admin", "--password-stdin", password=PASSWORD)
    assert sneaky.returncode == 2
    assert "an admin creates new ones" in sneaky.stderr
    wrong = cli(
        "add",
        "mallory",
        "--role",
        "admin",
        "--admin",
        "boss",
        "--admin-password-stdin",
        "--password-stdin",
        password="not the password\n" + PASSWORD,
    )
    assert wrong.returncode == 1
    assert "not accepted" in wrong.stderr
    both = "\n".join([PASSWORD, PASSWORD])
    assert (
        cli(
            "add",
            "rad",
            "--role",
            "radiologist",
            "--admin",
            "boss",
            "--admin-password-stdin",
            "--password-stdin",
            password=both,
        ).returncode
        == 0
    )
    # a radiologist may not manage users, from the CLI as in the window
    by_rad = cli(
        "add",
        "mallory",
        "--role",
        "admin",
        "--admin",
        "rad",
        "--admin-password-stdin",
        "--password-stdin",
        password=both,
    )
    assert by_rad.returncode == 2
    assert "may not manage-users" in by_rad.stderr
    # the list shows failure counts and lockouts, so it needs an admin too
    assert cli("list", password="").returncode == 2
    listed = cli("list", "--admin", "boss", "--admin-password-stdin", password=PASSWORD)
    assert [line.split()[:2] for line in listed.stdout.splitlines()[1:]] == [
        ["boss", "admin"],
        ["rad", "radiologist"],
    ]


def test_user_names_differing_only_in_case_are_one_account(store: UserStore) -> None:
    with pytest.raises(ValueError, match="user 'rad' already exists"):
        store.create_user("RAD", PASSWORD, Role.RADIOLOGIST, by="admin")
    with pytest.raises(ValueError, match="user 'admin' already exists"):
        store.create_user(" Admin ", PASSWORD, Role.ADMIN, by="admin")
