"""Use cases of the sign-in dialog: the first admin on a new profile, a sign-in, an unlock.

Each is audited by core.security; a database that fails under them (damaged, locked, full)
is raised as core.store's ``DatabaseError`` naming the file and the cause, so the dialog
handles one kind of storage error and never a driver's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from core.app.accounts import add_account
from core.app.workstation import Workstation
from core.security.users import Role, User
from core.store.database import STORE_ERRORS
from core.store.errors import explain_store_error


@contextmanager
def _storage(ws: Workstation) -> Iterator[None]:
    try:
        yield
    except STORE_ERRORS as exc:
        raise explain_store_error(ws.db.path, exc) from exc


def create_first_admin(ws: Workstation, username: str, password: str) -> User:
    """First run: the admin account, then signed in as it."""
    with _storage(ws):
        add_account(ws, username, password, Role.ADMIN)
        return ws.session.login(username, password)


def sign_in(ws: Workstation, username: str, password: str) -> User:
    with _storage(ws):
        return ws.session.login(username, password)


def unlock(ws: Workstation, password: str) -> None:
    with _storage(ws):
        ws.session.unlock(password)
