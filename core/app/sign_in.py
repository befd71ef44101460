"""Use cases of the sign-in dialog and the CLI's sign-in: the first admin on a new profile, a
sign-in, an unlock, and the second factor (enrolment, recovery codes, an admin's removal).

A sign-in is two steps where the account has a second factor or its role requires one: the
password alone raises ``SecondFactorRequired`` (nothing recorded), and the same call with the
code signs in and writes "login". A role that requires one and has none enrols first:
``start_enrolment`` checks the password again and hands back the secret, QR code and recovery
codes; the sign-in (or unlock) with the first code confirms it. Each is audited by
core.security; a database that fails under them (damaged, locked, full) is raised as
core.store's ``DatabaseError`` naming the file and the cause, so the dialog handles one kind of
storage error and never a driver's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from core.app.accounts import add_account
from core.app.workstation import Workstation
from core.audit.events import Actor
from core.security.totp import Enrolment, MfaStatus
from core.security.users import Permission, PermissionDenied, Role, User
from core.store.database import STORE_ERRORS
from core.store.errors import explain_store_error


@contextmanager
def _storage(ws: Workstation) -> Iterator[None]:
    try:
        yield
    except STORE_ERRORS as exc:
        raise explain_store_error(ws.db.path, exc) from exc


def create_first_admin(ws: Workstation, username: str, password: str) -> User:
    """First run: the admin account, then signed in as it (``SecondFactorRequired`` with
    ``enrol`` when IT's policy requires a second factor of admins: the account exists then)."""
    with _storage(ws):
        add_account(ws, username, password, Role.ADMIN)
        return ws.session.login(username, password)


def sign_in(
    ws: Workstation, username: str, password: str, second_factor: str | None = None
) -> User:
    with _storage(ws):
        return ws.session.login(username, password, second_factor)


def unlock(ws: Workstation, password: str, second_factor: str | None = None) -> None:
    with _storage(ws):
        ws.session.unlock(password, second_factor)


# --- the second factor -----------------------------------------------------------------------
def start_enrolment(ws: Workstation, username: str, password: str) -> Enrolment:
    """Enrolment in the middle of a sign-in or unlock: the password is checked again (with the
    lockout), then a new secret. Where no second factor is needed the password signs in and
    the enrolment is the signed-in account's own (``finish_enrolment`` tells them apart)."""
    from core.security.users import SecondFactorRequired

    locked = ws.session.user if ws.session.locked else None
    if locked is not None:
        username = locked.username
    with _storage(ws):
        try:
            if locked is not None:
                ws.session.unlock(password)
            else:
                ws.session.login(username, password)
        except SecondFactorRequired as exc:
            if not exc.enrol:  # it has a confirmed one: the code is what is missing
                raise
        return ws.users.mfa.begin(username)


def finish_enrolment(ws: Workstation, enrolment: Enrolment, password: str, code: str) -> User:
    """Confirm ``enrolment`` with its first code: as the sign-in (or unlock) it interrupted, or
    for an account already signed in. Returns the signed-in user."""
    with _storage(ws):
        user = ws.session.user
        if user is not None and ws.session.locked:
            ws.session.unlock(password, code)
            return user
        if user is not None and user.username == enrolment.username:
            ws.users.mfa.confirm(user.username, user.role.value, code)
            return user
        return ws.session.login(enrolment.username, password, code)


def _signed_in(ws: Workstation) -> User:
    user = ws.session.user
    if user is None or ws.session.locked:
        raise PermissionDenied("sign in (or unlock) first")
    return user


def begin_enrolment(ws: Workstation) -> Enrolment:
    """The signed-in account enrols (Session menu, ``users mfa enrol``)."""
    with _storage(ws):
        return ws.users.mfa.begin(_signed_in(ws).username)


def new_recovery_codes(ws: Workstation) -> list[str]:
    """Ten new recovery codes for the signed-in account; the old ones stop working."""
    user = _signed_in(ws)
    with _storage(ws):
        return ws.users.mfa.new_recovery_codes(user.username, Actor(user.username, user.role.value))


def second_factor_status(ws: Workstation, username: str) -> MfaStatus:
    with _storage(ws):
        return ws.users.mfa.status(username)


def second_factor_required(ws: Workstation, role: Role) -> bool:
    """Whether IT's policy (``security.mfa_required_roles``) requires one of ``role``."""
    return role.value in ws.users.settings.mfa_required_roles


def remove_second_factor(ws: Workstation, username: str) -> None:
    """An admin's reset of ``username``'s second factor (a lost phone), audited in the admin's
    name with the account as participant."""
    actor = ws.require(Permission.MANAGE_USERS)
    with _storage(ws):
        ws.users.mfa.remove(username, actor)
