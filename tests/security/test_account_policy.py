"""Attacks on account names and passwords (issue 15, hole 9): look-alike or control characters
that forge a second 'admin' or a line of ``users list``; passwords guessed first; and telling
which account names exist from how fast a refusal comes."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.audit.log import AuditLog
from core.config import SecuritySettings
from core.security.users import AuthError, Role, UserStore
from core.store.database import open_database

PASSWORD = "correct horse battery"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[UserStore]:
    db = open_database(tmp_path / "ws.db")
    users = UserStore(AuditLog(db), SecuritySettings(max_failed_logins=1000))
    users.create_user("admin", PASSWORD, Role.ADMIN, by="setup")
    yield users
    db.close()


@pytest.mark.parametrize(
    "name",
    ["admin\u200b", "\u0430dmin", "rad\nadmin", "rad\tx", "dr smith", "admin\u202e", "ad\x00min"],
)
def test_look_alike_and_control_characters_are_refused(store: UserStore, name: str) -> None:
    with pytest.raises(ValueError, match="ASCII letters, digits"):
        store.create_user(name, PASSWORD, Role.ADMIN, by="admin")


@pytest.mark.parametrize(
    ("name", "password", "rule"),
    [
        ("jsmith", "jsmith", "at least"),
        ("jsmith.rad", "jsmith.rad", "user name"),
        ("jsmith", "JSmith2026!", "user name"),
        ("jsmith", "Password123", "first ones guessed"),
        ("jsmith", "welcome2026!", "first ones guessed"),
        ("jsmith", "aaaaaaaaaaaa", "repeated character"),
        ("jsmith", "1234567890", "keyboard run"),
        ("jsmith", "qwertyuiop", "keyboard run"),
    ],
)
def test_weak_passwords_are_refused(store: UserStore, name: str, password: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        store.create_user(name, password, Role.RADIOLOGIST, by="admin")


def test_a_good_name_and_password_are_taken(store: UserStore) -> None:
    assert (
        store.create_user(
            "j.smith@rad", "tulip-kettle-vanish", Role.RADIOLOGIST, by="admin"
        ).username
        == "j.smith@rad"
    )


def _median_refusal_s(store: UserStore, name: str, n: int = 7) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        with pytest.raises(AuthError):
            store.authenticate(name, "not the password at all")
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def test_an_unknown_name_is_refused_as_slowly_as_a_wrong_password(store: UserStore) -> None:
    _median_refusal_s(store, "warm-up", 1)
    known = _median_refusal_s(store, "admin")
    unknown = _median_refusal_s(store, "nobody-here")
    # before: unknown 1-2 ms, known 110-150 ms (one argon2 verification)
    assert 0.5 < unknown / known < 2.0, (unknown, known)
