"""Re-authentication before a signature (issue 17): the same password check and lockout as a
sign-in, on a real encrypted database, but audited as "reauth-sign" and not a sign-in (the
account's last sign-in stays when it was)."""

from __future__ import annotations

import pytest

from core.audit.log import AuditLog
from core.audit.vocabulary import EventType, Outcome
from core.config import SecuritySettings
from core.security.users import AccountLockedError, AuthError, Role, UserStore
from core.store.database import Database

PASSWORD = "correct horse battery"


@pytest.fixture
def store(db: Database) -> UserStore:
    users = UserStore(AuditLog(db), SecuritySettings(max_failed_logins=3, lockout_min=5))
    users.create_user("admin", PASSWORD, Role.ADMIN, by="setup")
    users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    return users


def _auth_events(store: UserStore) -> list[tuple[str, str, object]]:
    return [
        (e.user, str(e.details.get("action")), e.outcome)
        for e in store.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
    ]


def _account(store: UserStore, name: str):  # type: ignore[no-untyped-def]
    (found,) = [a for a in store.list_accounts() if a.username == name]
    return found


def test_reauthentication_is_audited_as_such_and_is_not_a_sign_in(store: UserStore) -> None:
    store.authenticate("rad", PASSWORD)
    signed_in_at = _account(store, "rad").last_sign_in
    assert signed_in_at is not None
    before = _auth_events(store)

    user = store.reauthenticate("rad", PASSWORD, purpose="sign")
    assert (user.username, user.role) == ("rad", Role.RADIOLOGIST)
    assert _auth_events(store)[len(before) :] == [("rad", "reauth-sign", Outcome.SUCCESS)]
    assert _account(store, "rad").last_sign_in == signed_in_at  # not moved by a signature
    assert [a for _u, a, _o in _auth_events(store)].count("login") == 1


def test_reauthentication_failures_count_towards_the_same_lockout(store: UserStore) -> None:
    store.authenticate("rad", PASSWORD)
    with pytest.raises(AuthError):
        store.reauthenticate("rad", "wrong one", purpose="sign")
    assert _account(store, "rad").failed_logins == 1
    with pytest.raises(AuthError):
        store.authenticate("rad", "wrong two")  # a sign-in failure adds to the same count
    with pytest.raises(AccountLockedError, match="now locked"):
        store.reauthenticate("rad", "wrong three", purpose="sign")
    failures = [(a, o) for u, a, o in _auth_events(store) if u == "rad" and o != Outcome.SUCCESS]
    assert failures == [
        ("reauth-sign", Outcome.MINOR_FAILURE),
        ("login", Outcome.MINOR_FAILURE),
        ("reauth-sign", Outcome.MINOR_FAILURE),
    ]
    with pytest.raises(AccountLockedError):  # locked: the right password is refused too
        store.reauthenticate("rad", PASSWORD, purpose="sign")


def test_a_purpose_that_is_not_one_word_is_refused(store: UserStore) -> None:
    with pytest.raises(ValueError, match="purpose 'sign report' must be one plain word"):
        store.reauthenticate("rad", PASSWORD, purpose="sign report")
