"""The second factor: TOTP (RFC 6238) with one-time recovery codes.

One ``user_mfa`` row per account: the base32 secret (encrypted at rest with the rest of the
database by SQLCipher), whether the enrolment was confirmed with a first valid code (only then
does it count), the argon2 hashes of the unused recovery codes, and the last time step a code was
accepted for (RFC 6238 section 5.2: a code is used once; an older step after a newer one is
refused too). Codes are checked for the current step and one on either side (clock drift).

The secret and the codes are handed back to the caller to show once and are never written to a
log or the audit trail; every step writes an audit event naming the account. Sign-in uses
``check_sign_in`` inside ``UserStore.authenticate``'s transaction, so a refused code counts
towards the same lockout as a wrong password and the "login" event follows only a passed factor.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import re
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Row, delete, select, update

from core.audit.events import Actor, Participants, event
from core.audit.log import AuditLog
from core.audit.vocabulary import EventType, Outcome
from core.store.schema import user_mfa, users

ISSUER = "DoctorAI Workstation"
STEP_S = 30
DIGITS = 6
RECOVERY_CODES = 10
#: Recovery codes: 10 characters of a 31-letter alphabet without look-alikes (49 random bits),
#: shown as ``xxxxx-xxxxx``. Random, not chosen by people, so argon2's cheap profile suffices
#: (the slow one exists for guessable passwords; ten checks at sign-in stay around 0.1 s).
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY = re.compile(r"^[a-z0-9]{10}$")
_TOTP = re.compile(r"^\d{6}$")


class MfaError(ValueError):
    """A second-factor operation refused (not enrolled, already enrolled, wrong code)."""


class Check(StrEnum):
    """What ``check_sign_in`` found; the caller turns the first three into its own errors."""

    NEED_CODE = "need-code"  # enrolled: the code is missing
    NEED_ENROLMENT = "need-enrolment"  # the role requires a second factor; none confirmed yet
    REFUSED = "refused"  # a code was given and it is wrong, replayed or used up
    NOT_NEEDED = ""  # no second factor for this account
    TOTP = "totp"
    RECOVERY_CODE = "recovery-code"
    ENROLLED = "enrolment"  # the code confirmed a pending enrolment


@dataclass(frozen=True)
class Enrolment:
    """A started enrolment: show the QR code (or the secret), then confirm with a first code.

    The recovery codes are usable once the enrolment is confirmed; show them once, then forget
    them (only their hashes are stored)."""

    username: str
    secret: str
    uri: str
    recovery_codes: tuple[str, ...]

    def qr_png(self, scale: int = 6) -> bytes:
        """The otpauth:// URI as a PNG QR code (for the window)."""
        import segno

        out = io.BytesIO()
        segno.make(self.uri, error="m").save(out, kind="png", scale=scale, border=4)
        return out.getvalue()

    def qr_text(self) -> str:
        """The QR code drawn with block characters for a terminal."""
        import segno

        out = io.StringIO()
        segno.make(self.uri, error="m").terminal(out=out, compact=True)
        return out.getvalue()


@dataclass(frozen=True)
class MfaStatus:
    enrolled: bool  # confirmed: codes are asked for at sign-in and unlock
    pending: bool  # started, not confirmed yet
    recovery_codes_left: int
    created_at: str | None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def new_recovery_codes() -> list[str]:
    codes = ("".join(secrets.choice(_ALPHABET) for _ in range(10)) for _ in range(RECOVERY_CODES))
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def _normalise(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


class SecondFactors:
    """The ``user_mfa`` table's rules; audited in the name of the account (or the admin)."""

    def __init__(self, audit: AuditLog, clock: Callable[[], float] = time.time) -> None:
        self.audit = audit
        self.db = audit.db
        self._clock = clock
        self._hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)

    # --- reading ---------------------------------------------------------------------------
    def status(self, username: str) -> MfaStatus:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(user_mfa).where(user_mfa.c.username == username)).first()
        if row is None:
            return MfaStatus(False, False, 0, None)
        return MfaStatus(
            bool(row.confirmed),
            not row.confirmed,
            len(json.loads(row.recovery_hashes)),
            row.created_at,
        )

    # --- enrolment -------------------------------------------------------------------------
    def begin(self, username: str) -> Enrolment:
        """A new secret and recovery codes for ``username`` (replacing an unconfirmed one).
        Refused when a confirmed second factor exists: an admin removes it first."""
        secret = pyotp.random_base32()
        codes = new_recovery_codes()
        hashes = json.dumps([self._hasher.hash(_normalise(c)) for c in codes])
        with self.db.transaction() as conn:
            row = conn.execute(select(user_mfa).where(user_mfa.c.username == username)).first()
            if row is not None and row.confirmed:
                raise MfaError(
                    f"'{username}' has two-factor sign-in already; new recovery codes are at "
                    "hand, a new authenticator needs an admin to remove the old one first"
                )
            role = conn.execute(
                select(users.c.role).where(users.c.username == username)
            ).scalar_one_or_none()
            if role is None:
                raise MfaError(f"no account '{username}'")
            conn.execute(delete(user_mfa).where(user_mfa.c.username == username))
            conn.execute(
                user_mfa.insert().values(
                    username=username,
                    totp_secret=secret,
                    confirmed=0,
                    recovery_hashes=hashes,
                    last_used_step=-1,
                    created_at=_now_iso(),
                )
            )
            self._event(conn, Actor(username, role), username, "mfa-enrolment-started")
        uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)
        return Enrolment(username, secret, uri, tuple(codes))

    def confirm(self, username: str, role: str, code: str) -> None:
        """Confirm a pending enrolment with a first valid code (the signed-in account)."""
        with self.db.transaction() as conn:
            row = self._row(conn, username)
            if row is None or row.confirmed:
                raise MfaError(f"'{username}' has no two-factor enrolment waiting to be confirmed")
            step = self._totp_step(row.totp_secret, code, row.last_used_step)
            if step is not None:
                self._confirmed(conn, Actor(username, role), username, step)
            else:
                self._event(
                    conn,
                    Actor(username, role),
                    username,
                    "mfa-code-refused",
                    Outcome.MINOR_FAILURE,
                    during="enrolment",
                )
        if step is None:
            raise MfaError("the code is not valid: check the phone's clock and try the next code")

    def new_recovery_codes(self, username: str, actor: Actor) -> list[str]:
        """Replace every recovery code of a confirmed enrolment (the old ones stop working)."""
        codes = new_recovery_codes()
        hashes = json.dumps([self._hasher.hash(_normalise(c)) for c in codes])
        with self.db.transaction() as conn:
            row = self._row(conn, username)
            if row is None or not row.confirmed:
                raise MfaError(f"'{username}' has no two-factor sign-in")
            conn.execute(
                update(user_mfa)
                .where(user_mfa.c.username == username)
                .values(recovery_hashes=hashes)
            )
            self._event(conn, actor, username, "mfa-recovery-codes-renewed")
        return codes

    def remove(self, username: str, by: Actor) -> None:
        """An admin's reset (lost phone): the account signs in with its password alone again,
        or enrols anew where its role requires a second factor."""
        with self.db.transaction() as conn:
            if self._row(conn, username) is None:
                raise MfaError(f"'{username}' has no two-factor sign-in to remove")
            conn.execute(delete(user_mfa).where(user_mfa.c.username == username))
            self._event(conn, by, username, "mfa-removed")

    # --- sign-in ---------------------------------------------------------------------------
    def check_sign_in(
        self,
        conn: Connection,
        username: str,
        role: str,
        code: str | None,
        required_roles: Collection[str],
    ) -> Check:
        """The second-factor step of a sign-in whose password was right, in its transaction.

        A confirmed enrolment needs a code (TOTP or a recovery code); a role that requires a
        second factor needs one confirmed, or a code confirming the pending one. A code given
        for an account with a pending enrolment confirms it."""
        row = self._row(conn, username)
        actor = Actor(username, role)
        if row is None or not row.confirmed:
            if code is None or row is None:
                return Check.NEED_ENROLMENT if role in required_roles else Check.NOT_NEEDED
            step = self._totp_step(row.totp_secret, code, row.last_used_step)
            if step is None:
                return self._refused(conn, actor, username, "enrolment")
            self._confirmed(conn, actor, username, step)
            return Check.ENROLLED
        if code is None:
            return Check.NEED_CODE
        step = self._totp_step(row.totp_secret, code, row.last_used_step)
        if step is not None:
            conn.execute(
                update(user_mfa).where(user_mfa.c.username == username).values(last_used_step=step)
            )
            return Check.TOTP
        hashes: list[str] = json.loads(row.recovery_hashes)
        used = self._recovery_match(hashes, code)
        if used is None:
            return self._refused(conn, actor, username, "sign-in")
        left = [h for h in hashes if h != used]
        conn.execute(
            update(user_mfa)
            .where(user_mfa.c.username == username)
            .values(recovery_hashes=json.dumps(left))
        )
        self._event(conn, actor, username, "mfa-recovery-code-used", codes_left=len(left))
        return Check.RECOVERY_CODE

    # --- helpers ---------------------------------------------------------------------------
    def _row(self, conn: Connection, username: str) -> Row[Any] | None:
        return conn.execute(select(user_mfa).where(user_mfa.c.username == username)).first()

    def _totp_step(self, secret: str, code: str, last_used: int) -> int | None:
        """The time step ``code`` belongs to (now, or one either side), if newer than the last
        one used; None otherwise. Compared in constant time."""
        code = re.sub(r"\s", "", code)
        if not _TOTP.match(code):
            return None
        totp = pyotp.TOTP(secret)
        now = int(self._clock()) // STEP_S
        found = None
        for step in (now - 1, now, now + 1):
            if hmac.compare_digest(totp.generate_otp(step), code) and step > last_used:
                found = step
        return found

    def _recovery_match(self, hashes: list[str], code: str) -> str | None:
        code = _normalise(code)
        if not _RECOVERY.match(code):
            return None
        for stored in hashes:
            with contextlib.suppress(VerificationError, InvalidHashError):
                if self._hasher.verify(stored, code):
                    return stored
        return None

    def _confirmed(self, conn: Connection, actor: Actor, username: str, step: int) -> None:
        conn.execute(
            update(user_mfa)
            .where(user_mfa.c.username == username)
            .values(confirmed=1, last_used_step=step)
        )
        self._event(conn, actor, username, "mfa-enrolled")

    def _refused(self, conn: Connection, actor: Actor, username: str, during: str) -> Check:
        self._event(conn, actor, username, "mfa-code-refused", Outcome.MINOR_FAILURE, during=during)
        return Check.REFUSED

    def _event(
        self,
        conn: Connection,
        actor: Actor,
        username: str,
        action: str,
        outcome: Outcome = Outcome.SUCCESS,
        **details: object,
    ) -> None:
        self.audit.append(
            event(
                EventType.USER_AUTHENTICATION,
                actor,
                Participants().add("user", username),
                outcome,
                action=action,
                **details,
            ),
            conn=conn,
        )
