"""Use case: add an account. Only an account with the manage-users permission may, except the
very first one (first-run set-up, which must be an admin): the window and ``doctorai users add``
enforce the same rule here."""

from __future__ import annotations

from core.app.workstation import Workstation
from core.security.users import Permission, Role, User


def add_account(ws: Workstation, username: str, password: str, role: Role) -> User:
    """Create ``username``; raises PermissionDenied, or ValueError for a bad name/password."""
    actor = ws.actor if not ws.users.has_users() else ws.require(Permission.MANAGE_USERS)
    return ws.users.create_user(username, password, role, by=actor.user, by_role=actor.role)
