"""Use cases of account administration, the same for the window and ``doctorai users``.

Adding, resetting, disabling, enabling, unlocking an account and changing its role need the
manage-users permission (an admin), except the very first account (first-run set-up, which must
be an admin). Changing one's own password needs only a sign-in and the current password. Each
change is written with its audit event in one transaction (core.security.users); a refusal
(no permission, the last admin, a weak password) is audited here as a failure naming who tried,
what and why, so an attempt to take over an account leaves a trace. No event carries a password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from core.app.workstation import Workstation
from core.audit.events import Actor, Participants
from core.audit.vocabulary import EventType, Outcome
from core.security.users import AccountInfo, Permission, PermissionDenied, Role, User


@contextmanager
def _audited_refusal(ws: Workstation, action: str, username: str) -> Iterator[None]:
    """A refused attempt (permission, rule, policy) becomes a failure event, then is raised."""
    try:
        yield
    except (PermissionDenied, ValueError) as exc:
        outcome = (
            Outcome.SERIOUS_FAILURE
            if isinstance(exc, PermissionDenied)
            else (Outcome.MINOR_FAILURE)
        )
        ws.record(
            EventType.SECURITY_ALERT,
            Participants().add("user", username),
            outcome,
            action=action,
            reason=str(exc),
        )
        raise


def _admin(ws: Workstation) -> Actor:
    return ws.require(Permission.MANAGE_USERS)


def add_account(ws: Workstation, username: str, password: str, role: Role) -> User:
    """Create ``username``; raises PermissionDenied, or ValueError for a bad name/password."""
    actor = ws.actor if not ws.users.has_users() else ws.require(Permission.MANAGE_USERS)
    return ws.users.create_user(username, password, role, by=actor.user, by_role=actor.role)


def list_accounts(ws: Workstation) -> list[AccountInfo]:
    """Accounts with last sign-in and failures: admin only, since failure counts and lockouts
    tell an attacker which accounts are being guessed at (a refused look is audited)."""
    with _audited_refusal(ws, "users-listed", ""):
        _admin(ws)
    return ws.users.list_accounts()


def change_own_password(ws: Workstation, old_password: str, new_password: str) -> None:
    """The signed-in account changes its own password; raises AuthError for a wrong current
    password (counted like a failed sign-in), ValueError for a weak or unchanged new one."""
    user = ws.session.user
    if user is None or ws.session.locked:
        raise PermissionDenied("sign in (or unlock) first")
    with _audited_refusal(ws, "password-changed", user.username):
        ws.users.change_password(user.username, old_password, new_password)
    ws.session.user = replace(user, must_change_password=False)


def reset_password(ws: Workstation, username: str, new_password: str) -> None:
    """A temporary password that its owner must change at the next sign-in."""
    with _audited_refusal(ws, "password-reset", username):
        ws.users.reset_password(username, new_password, by=_admin(ws))


def set_disabled(ws: Workstation, username: str, disabled: bool) -> None:
    action = "user-disabled" if disabled else "user-enabled"
    with _audited_refusal(ws, action, username):
        ws.users.set_disabled(username, disabled, by=_admin(ws))


def set_role(ws: Workstation, username: str, role: Role) -> None:
    with _audited_refusal(ws, "role-changed", username):
        ws.users.set_role(username, role, by=_admin(ws))


def unlock_account(ws: Workstation, username: str) -> None:
    with _audited_refusal(ws, "user-unlocked", username):
        ws.users.unlock_account(username, by=_admin(ws))
