"""The running workstation: the encrypted profile database, its audit trail, the accounts, and
who acts now.

Both front ends open one: the window signs a user in (``session``); the CLI acts as the
operating-system account (``operator``, role "cli") and signs in as an account for what only
some roles may do (managing users or models). Every use case asks ``require(permission)`` for
its ``Actor`` and writes its audit events in that name, so the GUI and the CLI enforce the same
rules and record the same events.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.audit.events import SYSTEM, Actor, Participants, event
from core.audit.log import AuditLog, AuditObject, StoredEvent
from core.audit.vocabulary import EventType, Outcome
from core.config import SecuritySettings
from core.results.store import ResultsStore
from core.security.session import Session
from core.security.users import Permission, PermissionDenied, UserStore
from core.store.database import Database, open_database

#: What the operating-system account may do from the CLI without signing in: read images and
#: run models on them (each audited in its name). Managing users, models or settings needs an
#: account that has the permission (``--user``), as in the window.
OPERATOR_PERMISSIONS = frozenset({Permission.VIEW, Permission.LOAD, Permission.RUN_AI})
OPERATOR_ROLE = "cli"


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): still name someone
        return "unknown-os-user"


@dataclass
class Workstation:
    db: Database
    audit: AuditLog
    users: UserStore
    session: Session
    results: ResultsStore
    operator: Actor | None = None  # the CLI's OS account; None in the window

    @classmethod
    def open(
        cls,
        path: Path | None = None,
        security: SecuritySettings | None = None,
        operator: Actor | None = None,
    ) -> Workstation:
        """Open (first run: create) the profile's encrypted database; raises core.store errors."""
        db = open_database(path)
        audit = AuditLog(db)
        users = UserStore(audit, security)
        return cls(db, audit, users, Session(users), ResultsStore(db), operator)

    @classmethod
    def open_for_cli(
        cls, path: Path | None = None, security: SecuritySettings | None = None
    ) -> Workstation:
        """The profile as the CLI uses it: acting as the operating-system account."""
        return cls.open(path, security, operator=Actor(os_user(), OPERATOR_ROLE))

    @property
    def actor(self) -> Actor:
        """Who acts now: the signed-in account, else the CLI's OS account, else 'system'."""
        user = self.session.user
        if user is not None:
            return Actor(user.username, user.role.value)
        return self.operator or SYSTEM

    def require(self, permission: Permission) -> Actor:
        """The actor, if it may do ``permission`` now; raises PermissionDenied naming why not."""
        if self.session.user is not None or self.operator is None:
            user = self.session.require(permission)
            return Actor(user.username, user.role.value)
        if permission in OPERATOR_PERMISSIONS:
            return self.operator
        raise PermissionDenied(
            f"'{permission.value}' needs an account with that permission: sign in with "
            f"--user NAME (the operating-system account '{self.operator.user}' may only view, "
            "load and run models)"
        )

    def record(
        self,
        event_type: EventType,
        participants: Participants | Sequence[AuditObject] = (),
        outcome: Outcome = Outcome.SUCCESS,
        /,
        **details: Any,
    ) -> StoredEvent:
        """Append an event in the name of the current actor (durable on return)."""
        return self.audit.append(event(event_type, self.actor, participants, outcome, **details))

    def close(self) -> None:
        self.db.close()
