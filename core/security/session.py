"""The signed-in session: permission checks and the automatic lock after inactivity
(HIPAA 164.312(a)(2)(iii) automatic logoff). The GUI feeds it activity; it owns the rules."""

from __future__ import annotations

import time
from collections.abc import Callable

from core.audit.events import Actor, event
from core.audit.vocabulary import EventType
from core.security.users import AuthError, Permission, PermissionDenied, User, UserStore


class Session:
    def __init__(self, store: UserStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.user: User | None = None
        self.locked = False
        self._clock = clock
        self._last_activity = clock()

    @property
    def timeout_s(self) -> float:
        return self.store.settings.lock_timeout_min * 60

    def login(self, username: str, password: str, second_factor: str | None = None) -> User:
        """Sign in; ``SecondFactorRequired`` when the account needs its code (or enrolment)."""
        self.user = self.store.authenticate(username, password, second_factor)
        self.locked = False
        self.touch()
        return self.user

    def logout(self) -> None:
        if self.user is not None:
            self._audit("logout")
        self.user = None
        self.locked = False

    def touch(self) -> None:
        """User activity (a key press, a mouse move): restarts the inactivity clock."""
        self._last_activity = self._clock()

    def lock_if_idle(self) -> bool:
        """Lock when idle for longer than the timeout; returns whether it locked now."""
        if self.user is None or self.locked:
            return False
        if self._clock() - self._last_activity < self.timeout_s:
            return False
        self.lock(reason="inactivity")
        return True

    def lock(self, reason: str = "user") -> None:
        if self.user is not None and not self.locked:
            self.locked = True
            self._audit("lock", reason=reason)

    def unlock(self, password: str, second_factor: str | None = None) -> None:
        """Re-authenticate the same user (audited like a login), with the second factor where
        the account has one: the lock after inactivity is a sign-in again."""
        if self.user is None:
            raise AuthError("nobody is signed in")
        self.store.authenticate(self.user.username, password, second_factor)
        self.locked = False
        self.touch()

    def require(self, permission: Permission) -> User:
        if self.user is None or self.locked:
            raise PermissionDenied("sign in (or unlock) first")
        if self.user.must_change_password:  # reset by an admin, or too old: nothing else first
            raise PermissionDenied(f"the password of '{self.user.username}' must be changed first")
        if not self.user.can(permission):
            raise PermissionDenied(
                f"user '{self.user.username}' ({self.user.role.value}) may not {permission.value}"
            )
        return self.user

    def _audit(self, action: str, **details: str) -> None:
        if self.user is None:
            return
        actor = Actor(self.user.username, self.user.role.value)
        self.store.audit.append(
            event(EventType.USER_AUTHENTICATION, actor, action=action, **details)
        )
