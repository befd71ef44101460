"""Local user accounts with argon2 password hashes, roles, and lockout after failed logins."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Row, func, select, update

from core.audit.events import Actor, Participants, event
from core.audit.log import AuditLog
from core.audit.vocabulary import EventType, Outcome
from core.config import SecuritySettings
from core.security.policy import MIN_PASSWORD_LENGTH as MIN_PASSWORD_LENGTH
from core.security.policy import check_password, check_username
from core.security.totp import Check, SecondFactors
from core.store.schema import user_mfa, users


class Role(StrEnum):
    RADIOLOGIST = "radiologist"
    TECHNOLOGIST = "technologist"
    ADMIN = "admin"
    AUDITOR = "auditor"


class Permission(StrEnum):
    VIEW = "view"
    LOAD = "load"
    RUN_AI = "run-ai"
    DECIDE = "decide"
    MANAGE_MODELS = "manage-models"
    MANAGE_USERS = "manage-users"
    SETTINGS = "settings"
    READ_AUDIT = "read-audit"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.RADIOLOGIST: frozenset(
        {Permission.VIEW, Permission.LOAD, Permission.RUN_AI, Permission.DECIDE}
    ),
    Role.TECHNOLOGIST: frozenset({Permission.VIEW, Permission.LOAD}),
    Role.ADMIN: frozenset(
        {
            Permission.VIEW,
            Permission.LOAD,
            Permission.MANAGE_MODELS,
            Permission.MANAGE_USERS,
            Permission.SETTINGS,
            # The issue asks for the audit viewer for admin and auditor; admins still cannot
            # change the trail (the API has no update/delete) and their reading is itself audited.
            Permission.READ_AUDIT,
        }
    ),
    Role.AUDITOR: frozenset({Permission.READ_AUDIT}),
}


class AuthError(Exception):
    """Login refused; the message never says whether the user name exists."""


class AccountLockedError(AuthError):
    """Refused because of repeated failures; ``minutes_left`` says for how long (rounded up)."""

    def __init__(self, message: str, minutes_left: int = 0) -> None:
        super().__init__(message)
        self.minutes_left = minutes_left


def _refusal(reason: str) -> str:
    if reason == "second factor refused":  # only said after the right password
        return "two-factor code not accepted"
    return "user name or password not accepted"


def _minutes_left(until: datetime, now: datetime) -> int:
    return max(1, -(-int((until - now).total_seconds()) // 60))


class SecondFactorRequired(AuthError):
    """The password was right; the account needs its second-factor code, or (``enrol``: its
    role requires one and none is confirmed yet) an enrolment first. Nothing was recorded."""

    def __init__(self, *, enrol: bool) -> None:
        super().__init__(
            "two-factor enrolment required for this role"
            if enrol
            else "a two-factor code is required for this account"
        )
        self.enrol = enrol


class PermissionDenied(Exception):
    pass


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    # set at sign-in: an admin reset the password, or it is older than password_max_age_days
    must_change_password: bool = False

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def _now() -> datetime:
    return datetime.now(UTC)


class UserStore:
    def __init__(self, audit: AuditLog, settings: SecuritySettings | None = None) -> None:
        self.audit = audit
        self.db = audit.db
        self.settings = settings or SecuritySettings()
        self._hasher = PasswordHasher()
        self._dummy_hash: str | None = None
        self.mfa = SecondFactors(audit)  # core.security.totp: the second factor's rules

    def has_users(self) -> bool:
        with self.db.engine.connect() as conn:
            return bool(conn.execute(select(func.count()).select_from(users)).scalar_one())

    def create_user(
        self, username: str, password: str, role: Role, *, by: str, by_role: str = "admin"
    ) -> User:
        """Add an account. The very first account must be an admin (first-run set-up)."""
        username = check_username(username)
        check_password(password, username, self.settings.password_min_length)
        if not self.has_users() and role is not Role.ADMIN:
            raise ValueError("the first account must be an admin")
        with self.db.transaction() as conn:
            clash = conn.execute(
                select(users.c.username).where(func.lower(users.c.username) == username.lower())
            ).first()
            if clash is not None:  # 'Admin1' beside 'admin1' would be two look-alike accounts
                raise ValueError(f"user '{clash.username}' already exists")
            conn.execute(
                users.insert().values(
                    username=username,
                    password_hash=self._hasher.hash(password),
                    role=role.value,
                    created_at=_now().isoformat(),
                    failed_logins=0,
                    disabled=0,
                    password_changed_at=_now().isoformat(),
                )
            )
            self.audit.append(
                event(
                    EventType.SECURITY_ALERT,
                    Actor(by, by_role),
                    Participants().add("user", username),
                    action="user-created",
                    role=role.value,
                ),
                conn=conn,
            )
        return User(username, role)

    def _same_time_as_a_check(self, password: str) -> None:
        """An unknown name costs one argon2 verification too: answering it faster would tell
        which account names exist (user enumeration by timing)."""
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        with contextlib.suppress(VerificationError, InvalidHashError):
            self._hasher.verify(self._dummy_hash, password)

    def authenticate(self, username: str, password: str, second_factor: str | None = None) -> User:
        """Check a password, then the second factor where the account has one or its role
        requires one (``SecondFactorRequired`` when it is missing); failures are audited and
        repeated ones (wrong codes too) lock the account. "login" is written only when all
        passed."""
        return self._check(username, password, second_factor, action="login", sign_in=True)

    def reauthenticate(
        self, username: str, password: str, second_factor: str | None = None, *, purpose: str
    ) -> User:
        """The signed-in user's password (and second factor) again before an act that needs it
        (``purpose`` "sign": a report signature). The same check and lockout accounting as
        ``authenticate``, but audited as ``reauth-<purpose>`` and ``last_sign_in`` left as it
        is: signing a report is not a sign-in, and the trail must not say it was one."""
        if not purpose.isidentifier():
            raise ValueError(f"re-authentication purpose '{purpose}' must be one plain word")
        return self._check(
            username, password, second_factor, action=f"reauth-{purpose}", sign_in=False
        )

    def _check(
        self,
        username: str,
        password: str,
        second_factor: str | None,
        *,
        action: str,
        sign_in: bool,
    ) -> User:
        """The one password + second factor check, audited as ``action``; a sign-in
        (``sign_in``) also records when it happened."""
        with self.db.transaction() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
            now = _now()
            reason = ""
            if row is None or row.disabled:
                reason = "unknown or disabled account"
                self._same_time_as_a_check(password)
            elif row.locked_until and datetime.fromisoformat(row.locked_until) > now:
                reason = "account locked after repeated failures"
            else:
                try:
                    self._hasher.verify(row.password_hash, password)
                except (VerificationError, InvalidHashError):
                    reason = "wrong password"
            factor = Check.NOT_NEEDED
            if not reason and row is not None:
                factor = self.mfa.check_sign_in(
                    conn, username, row.role, second_factor, self.settings.mfa_required_roles
                )
                if factor in (Check.NEED_CODE, Check.NEED_ENROLMENT):  # rolled back: no reset
                    raise SecondFactorRequired(enrol=factor is Check.NEED_ENROLMENT)
                if factor is Check.REFUSED:
                    reason = "second factor refused"
            if not reason and row is not None:
                reset: dict[str, object] = {"failed_logins": 0, "locked_until": None}
                if sign_in:
                    reset["last_sign_in"] = now.isoformat()
                conn.execute(update(users).where(users.c.username == username).values(**reset))
                self.audit.append(
                    event(
                        EventType.USER_AUTHENTICATION,
                        Actor(username, row.role),
                        action=action,
                        **({"second_factor": factor.value} if factor.value else {}),
                    ),
                    conn=conn,
                )
                return User(username, Role(row.role), self._must_change(row, now))
            details: dict[str, object] = {"action": action, "reason": reason}
            if row is not None and reason in ("wrong password", "second factor refused"):
                failures = row.failed_logins + 1
                values: dict[str, object] = {"failed_logins": failures}
                if failures >= self.settings.max_failed_logins:
                    until = now + timedelta(minutes=self.settings.lockout_min)
                    values.update(failed_logins=0, locked_until=until.isoformat())
                    details["locked_until"] = until.isoformat()
                conn.execute(update(users).where(users.c.username == username).values(**values))
            self.audit.append(
                event(
                    EventType.USER_AUTHENTICATION,
                    Actor(username),
                    (),
                    Outcome.MINOR_FAILURE,
                    **details,
                ),
                conn=conn,
            )
        if reason.startswith("account locked") and row is not None:
            left = _minutes_left(datetime.fromisoformat(row.locked_until), now)
            raise AccountLockedError(
                f"account '{username}' is locked after repeated failed sign-ins; "
                f"try again in {left} minute(s)",
                left,
            )
        if "locked_until" in details:  # this failure locked it: say so, and for how long
            left = _minutes_left(datetime.fromisoformat(str(details["locked_until"])), now)
            raise AccountLockedError(
                f"{_refusal(reason)}; account '{username}' is now locked for {left} minute(s)",
                left,
            )
        raise AuthError(_refusal(reason))

    # --- account administration (issue 15): the use cases in core.app.accounts check who may --
    def _must_change(self, row: Row[tuple[object, ...]], now: datetime) -> bool:
        """Forced change: an admin reset the password, or it is older than the policy allows."""
        if row.must_change_password:
            return True
        days = self.settings.password_max_age_days
        since = row.password_changed_at or row.created_at
        return bool(days and since and now - datetime.fromisoformat(since) > timedelta(days=days))

    def _account(self, conn: Connection, username: str) -> Row[tuple[object, ...]]:
        row = conn.execute(select(users).where(users.c.username == username)).first()
        if row is None:
            raise ValueError(f"no account '{username}'")
        return row

    def _alert(
        self, conn: Connection, by: Actor, username: str, action: str, **details: object
    ) -> None:
        self.audit.append(
            event(
                EventType.SECURITY_ALERT,
                by,
                Participants().add("user", username),
                action=action,
                **details,
            ),
            conn=conn,
        )

    def change_password(self, username: str, old_password: str, new_password: str) -> None:
        """The account's own change: the current password proves it is the owner (a session left
        open is not enough); a wrong one counts towards the lockout like a failed sign-in."""
        check_password(new_password, username, self.settings.password_min_length)
        if new_password == old_password:
            raise ValueError("the new password must differ from the current one")
        now = _now()
        with self.db.transaction() as conn:
            row = self._account(conn, username)
            actor = Actor(username, row.role)
            if row.disabled:
                raise ValueError(f"account '{username}' is disabled")
            if row.locked_until and datetime.fromisoformat(row.locked_until) > now:
                left = _minutes_left(datetime.fromisoformat(row.locked_until), now)
                raise AccountLockedError(
                    f"account '{username}' is locked after repeated failed sign-ins; "
                    f"try again in {left} minute(s)",
                    left,
                )
            try:
                self._hasher.verify(row.password_hash, old_password)
            except (VerificationError, InvalidHashError):
                failures = row.failed_logins + 1
                values: dict[str, object] = {"failed_logins": failures}
                if failures >= self.settings.max_failed_logins:
                    until = now + timedelta(minutes=self.settings.lockout_min)
                    values.update(failed_logins=0, locked_until=until.isoformat())
                conn.execute(update(users).where(users.c.username == username).values(**values))
                self.audit.append(
                    event(
                        EventType.SECURITY_ALERT,
                        actor,
                        Participants().add("user", username),
                        Outcome.MINOR_FAILURE,
                        action="password-changed",
                        reason="wrong current password",
                    ),
                    conn=conn,
                )
                failed = True
            else:
                failed = False
                conn.execute(
                    update(users)
                    .where(users.c.username == username)
                    .values(
                        password_hash=self._hasher.hash(new_password),
                        must_change_password=0,
                        password_changed_at=now.isoformat(),
                        failed_logins=0,
                    )
                )
                self._alert(conn, actor, username, "password-changed")
        if failed:  # raised after the commit: the failure and its count must stay recorded
            raise AuthError("the current password is not correct")

    def reset_password(self, username: str, new_password: str, *, by: Actor) -> None:
        """An admin sets a temporary password; the owner must change it at the next sign-in.
        Also ends a lockout: the owner asked for help because they could not sign in."""
        check_password(new_password, username, self.settings.password_min_length)
        with self.db.transaction() as conn:
            self._account(conn, username)
            conn.execute(
                update(users)
                .where(users.c.username == username)
                .values(
                    password_hash=self._hasher.hash(new_password),
                    must_change_password=1,
                    password_changed_at=_now().isoformat(),
                    failed_logins=0,
                    locked_until=None,
                )
            )
            self._alert(conn, by, username, "password-reset")

    def _enabled_admins(self, conn: Connection) -> int:
        query = select(func.count()).where(users.c.role == Role.ADMIN.value, users.c.disabled == 0)
        return int(conn.execute(query.select_from(users)).scalar_one())

    def _keep_an_admin(self, conn: Connection, row: Row[tuple[object, ...]], what: str) -> None:
        """Refuse to leave the profile without an enabled admin (nobody could manage it)."""
        if row.role == Role.ADMIN.value and not row.disabled and self._enabled_admins(conn) <= 1:
            raise ValueError(
                f"cannot {what} '{row.username}': it is the last enabled admin account "
                "(make another account admin first)"
            )

    def set_disabled(self, username: str, disabled: bool, *, by: Actor) -> None:
        """Disable (no sign-in, history kept) or enable an account."""
        with self.db.transaction() as conn:
            row = self._account(conn, username)
            if bool(row.disabled) == disabled:
                raise ValueError(
                    f"account '{username}' is already {'disabled' if disabled else 'enabled'}"
                )
            if disabled:
                if username == by.user:
                    raise ValueError("an admin cannot disable their own account")
                self._keep_an_admin(conn, row, "disable")
            conn.execute(
                update(users).where(users.c.username == username).values(disabled=int(disabled))
            )
            self._alert(conn, by, username, "user-disabled" if disabled else "user-enabled")

    def set_role(self, username: str, role: Role, *, by: Actor) -> None:
        """Give an account another role; takes effect at its next sign-in."""
        with self.db.transaction() as conn:
            row = self._account(conn, username)
            if row.role == role.value:
                raise ValueError(f"account '{username}' is already {role.value}")
            if username == by.user:
                raise ValueError("an admin cannot change their own role (ask another admin)")
            if role is not Role.ADMIN:
                self._keep_an_admin(conn, row, f"make {role.value}")
            conn.execute(update(users).where(users.c.username == username).values(role=role.value))
            self._alert(conn, by, username, "role-changed", old_role=row.role, role=role.value)

    def unlock_account(self, username: str, *, by: Actor) -> None:
        """End a lockout after failed sign-ins before its time is up."""
        with self.db.transaction() as conn:
            row = self._account(conn, username)
            if not row.locked_until and not row.failed_logins:
                raise ValueError(f"account '{username}' is not locked")
            conn.execute(
                update(users)
                .where(users.c.username == username)
                .values(failed_logins=0, locked_until=None)
            )
            self._alert(conn, by, username, "user-unlocked")

    def list_accounts(self) -> list[AccountInfo]:
        """Every account with what an admin needs to judge it (no password hash, no secret)."""
        mfa = select(user_mfa.c.username).where(user_mfa.c.confirmed == 1).subquery()
        query = (
            select(users, mfa.c.username.label("mfa_user"))
            .outerjoin(mfa, mfa.c.username == users.c.username)
            .order_by(users.c.username)
        )
        now = _now()
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).fetchall()
        return [
            AccountInfo(
                username=r.username,
                role=Role(r.role),
                disabled=bool(r.disabled),
                created_at=r.created_at,
                last_sign_in=r.last_sign_in,
                failed_logins=r.failed_logins,
                locked_until=r.locked_until,
                must_change_password=self._must_change(r, now),
                password_changed_at=r.password_changed_at,
                mfa_enrolled=r.mfa_user is not None,
            )
            for r in rows
        ]


def local_time(iso: str | None) -> str:
    """A stored UTC time as the user reads it (local zone, to the minute); 'never' for none."""
    if not iso:
        return "never"
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class AccountInfo:
    """One row of ``users list`` and of the window's Users dialog."""

    username: str
    role: Role
    disabled: bool
    created_at: str
    last_sign_in: str | None
    failed_logins: int
    locked_until: str | None
    must_change_password: bool
    password_changed_at: str | None
    mfa_enrolled: bool

    def locked(self, now: datetime | None = None) -> bool:
        return bool(
            self.locked_until and datetime.fromisoformat(self.locked_until) > (now or _now())
        )

    @property
    def state(self) -> str:
        """'disabled', 'locked' or 'enabled'."""
        return "disabled" if self.disabled else "locked" if self.locked() else "enabled"

    #: The headings of ``cells``: one listing for the CLI's table and the window's dialog.
    HEADINGS = ("Name", "Role", "State", "Last sign-in", "Failed attempts", "Must change", "2FA")

    def cells(self) -> tuple[str, ...]:
        """The account as one listed row (times in the local zone)."""
        return (
            self.username,
            self.role.value,
            self.state,
            local_time(self.last_sign_in),
            str(self.failed_logins),
            "yes" if self.must_change_password else "no",
            "yes" if self.mfa_enrolled else "no",
        )
