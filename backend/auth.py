"""Enrolment codes, device credentials and JWT access/refresh tokens (PyJWT, HS256).

Codes and device secrets have >= 128 bits of entropy (random, or an HMAC over the
workstation's random nonce), so a plain SHA-256 of them is stored (a slow password hash adds
nothing for secrets nobody can guess).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import case, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db import (
    Device,
    EnrolCode,
    Enrolment,
    RefreshToken,
    RevokedRefreshFamily,
    SecurityAlert,
    utcnow,
)
from backend.db_lock import sqlite_write_lock

ALGORITHM = "HS256"
ISSUER = "doctorai-backend"


class AuthError(Exception):
    """Refused credentials; ``code`` is the wire error code."""

    def __init__(self, code: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def aware(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything here is UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


ENROL_RETRY_WINDOW_S = 86400  # a retry of a finished enrolment is answered for a day
MAX_CODE_USES = 100_000


def enrolment_key(jwt_secret: str) -> bytes:
    """The key device secrets of nonce enrolments are derived under (from the JWT secret,
    which every process shares and which can mint any token anyway: it adds no power)."""
    return hmac.new(jwt_secret.encode(), b"doctorai enrolment secret v1", hashlib.sha256).digest()


def _derived_secret(key: bytes, device_id: str, nonce: str) -> str:
    """HMAC(server key, device id + nonce): recomputed for a retry, so the server stores only
    its hash. Needs both the server's key and the workstation's secret nonce (never stored)."""
    mac = hmac.new(key, f"{device_id}\n{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def issue_enrol_code(
    session: Session, ttl_s: int = 7 * 86400, uses: int = 1, note: str = ""
) -> str:
    """A new code that enrols up to ``uses`` workstations until ``ttl_s`` from now."""
    if not 1 <= uses <= MAX_CODE_USES:
        raise ValueError(f"an enrolment code is for 1 to {MAX_CODE_USES} workstations, not {uses}")
    if ttl_s <= 0:
        raise ValueError(f"an enrolment code must be valid for some time, not {ttl_s} s")
    code = "-".join(secrets.token_hex(4).upper() for _ in range(4))  # 128 bits, readable
    session.add(
        EnrolCode(
            code_hash=sha256_hex(code),
            expires_at=utcnow() + timedelta(seconds=ttl_s),
            max_uses=uses,
            uses=0,
            note=note,
        )
    )
    session.commit()
    return code


def _locked_code(session: Session, code_hash: str) -> EnrolCode | None:
    """The code's row, locked until the transaction ends: enrolments with one code run one at
    a time (a retry racing its own first attempt then finds the device that attempt made).
    PostgreSQL: SELECT ... FOR UPDATE. SQLite: a no-op write takes the database's write lock."""
    sqlite_write_lock(session, EnrolCode)
    return session.get(EnrolCode, code_hash, with_for_update=True, populate_existing=True)


def _retry_of(session: Session, row: EnrolCode, nonce: str, key: bytes) -> tuple[str, str] | None:
    """The credentials an earlier enrolment with this (code, nonce) made, if any."""
    done = session.get(Enrolment, (row.code_hash, sha256_hex(nonce)))
    if done is None:
        return None
    if aware(done.created_at) + timedelta(seconds=ENROL_RETRY_WINDOW_S) < utcnow():
        raise AuthError("enrol_code_used", "enrolment code was already used")
    device = session.get(Device, done.device_id)
    if device is None or device.revoked:
        raise AuthError("device_revoked", "this workstation was revoked by an admin", 403)
    return done.device_id, _derived_secret(key, done.device_id, nonce)


def enrol(
    session: Session, code: str, label: str, nonce: str | None = None, key: bytes = b""
) -> tuple[str, str]:
    """Use an enrolment code; returns (device_id, device_secret).

    With a ``nonce`` (the workstation's secret for this enrolment) the secret is derived from
    ``key`` and the nonce, and the same (code, nonce) again returns the same credentials: an
    answer lost on the way burns neither the code nor a device. Without one (older clients)
    the secret is random and the enrolment cannot be repeated. Every use is an ``enrolments``
    row (the code's audit trail); a code enrols at most ``max_uses`` workstations."""
    if nonce is not None and not key:
        raise ValueError("enrol: a nonce enrolment needs the server's enrolment key")
    code_hash = sha256_hex(code.strip().upper())
    row = _locked_code(session, code_hash)
    if row is None:
        session.rollback()
        raise AuthError("enrol_code_invalid", "enrolment code is not valid")
    try:
        again = _retry_of(session, row, nonce, key) if nonce is not None else None
    except AuthError:
        session.rollback()
        raise
    if again is not None:
        session.rollback()  # nothing written; releases the lock
        return again
    if row.uses >= row.max_uses:
        session.rollback()
        message = "enrolment code was already used"
        if row.max_uses > 1:
            message = f"enrolment code was already used on all {row.max_uses} workstations"
        raise AuthError("enrol_code_used", message)
    if aware(row.expires_at) < utcnow():
        session.rollback()
        raise AuthError("enrol_code_expired", "enrolment code has expired")
    device_id = str(uuid.uuid4())
    secret = _derived_secret(key, device_id, nonce) if nonce else secrets.token_urlsafe(32)
    # compare-and-set as well as the lock: a use is counted only while one is left.
    # used_at is when the code was used up (retention deletes codes some days after that)
    last_use = EnrolCode.uses + 1 >= EnrolCode.max_uses
    claimed = session.execute(
        update(EnrolCode)
        .where(EnrolCode.code_hash == code_hash, EnrolCode.uses < EnrolCode.max_uses)
        .values(
            uses=EnrolCode.uses + 1,
            used_at=case((last_use, utcnow()), else_=EnrolCode.used_at),
            device_id=device_id,
        )
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise AuthError("enrol_code_used", "enrolment code was already used")
    nonce_hash = sha256_hex(nonce if nonce is not None else f"no nonce: {device_id}")
    session.add(Device(device_id=device_id, secret_hash=sha256_hex(secret), label=label))
    session.add(Enrolment(code_hash=code_hash, nonce_hash=nonce_hash, device_id=device_id))
    session.commit()
    return device_id, secret


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str  # "device" | "admin"
    # how the holder authenticated (RFC 8176 values): an admin's sign-in is ("pwd", "otp")
    amr: tuple[str, ...] = ()


class TokenIssuer:
    def __init__(self, secret: str, access_ttl_s: int, refresh_ttl_s: int) -> None:
        self.secret, self.access_ttl_s, self.refresh_ttl_s = secret, access_ttl_s, refresh_ttl_s

    def _encode(self, claims: dict[str, Any], ttl_s: int) -> str:
        now = datetime.now(UTC)
        claims |= {"iss": ISSUER, "iat": now, "exp": now + timedelta(seconds=ttl_s)}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def access(
        self,
        subject: str,
        role: str = "device",
        ttl_s: int | None = None,
        amr: list[str] | None = None,
    ) -> str:
        claims: dict[str, Any] = {
            "sub": subject,
            "role": role,
            "typ": "access",
            "jti": uuid.uuid4().hex,
        }
        if amr is not None:
            claims["amr"] = list(amr)
        return self._encode(claims, ttl_s or self.access_ttl_s)

    def pair(self, session: Session, device_id: str, family: str | None = None) -> tuple[str, str]:
        """An access token and a refresh token; ``family`` is the login the refresh token
        descends from (a login starts a new family, named by its first token's jti)."""
        jti = uuid.uuid4().hex
        session.add(
            RefreshToken(
                jti=jti,
                device_id=device_id,
                expires_at=utcnow() + timedelta(seconds=self.refresh_ttl_s),
            )
        )
        session.commit()
        refresh = self._encode(
            {"sub": device_id, "typ": "refresh", "jti": jti, "fam": family or jti},
            self.refresh_ttl_s,
        )
        return self.access(device_id), refresh

    def decode(self, token: str, typ: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "typ"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token_expired", f"{typ} token has expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError("token_invalid", f"{typ} token is not valid") from exc
        if claims.get("typ") != typ:
            raise AuthError("token_invalid", f"not a {typ} token")
        return claims

    def login(self, session: Session, device_id: str, secret: str) -> tuple[str, str]:
        device = session.get(Device, device_id)
        if device is None or not hmac.compare_digest(device.secret_hash, sha256_hex(secret)):
            raise AuthError("credentials_invalid", "device id or secret is wrong")
        if device.revoked:
            raise AuthError("device_revoked", "this workstation was revoked by an admin", 403)
        return self.pair(session, device_id)

    def refresh(self, session: Session, token: str) -> tuple[str, str]:
        """Rotate: each refresh token works once. A used one presented again means two parties
        hold the family (the workstation and a thief, in some order): the whole family is
        revoked, so the token the other party rotated to is refused too, and a Security Alert is
        recorded. The workstation recovers by logging in with its device secret."""
        claims = self.decode(token, "refresh")
        jti = str(claims.get("jti"))
        family = str(claims.get("fam") or jti)  # tokens from before families: their own
        if session.get(RevokedRefreshFamily, family) is not None:
            raise AuthError(
                "refresh_token_revoked",
                "refresh token was revoked after a reuse of its family; log in again",
            )
        row = session.get(RefreshToken, jti)
        if row is None or row.device_id != claims["sub"]:
            raise AuthError("token_invalid", "refresh token was already used or revoked")
        if row.used:
            self._revoke_family(session, family, row.device_id)
        device = session.get(Device, row.device_id)
        if device is None or device.revoked:
            raise AuthError("device_revoked", "this workstation was revoked by an admin", 403)
        used = session.execute(
            update(RefreshToken)
            .where(RefreshToken.jti == row.jti, RefreshToken.used.is_(False))
            .values(used=True)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()  # a concurrent request used it first: the same reuse
            self._revoke_family(session, family, row.device_id)
        return self.pair(session, row.device_id, family)

    @staticmethod
    def _revoke_family(session: Session, family: str, device_id: str) -> None:
        """Record the revocation and the alert, commit, and refuse."""
        session.add(RevokedRefreshFamily(family=family, device_id=device_id))
        session.add(
            SecurityAlert(
                device_id=device_id,
                code="refresh_token_reused",
                detail={
                    "message": "a used refresh token was presented again; its family is revoked"
                },
            )
        )
        try:
            session.commit()
        except IntegrityError:  # a concurrent reuse revoked it first
            session.rollback()
        raise AuthError(
            "refresh_token_reused",
            "refresh token was already used; every token descended from the same login is "
            "revoked: log in again",
        )

    def principal(self, token: str) -> Principal:
        claims = self.decode(token, "access")
        role = claims.get("role")
        if role not in ("device", "admin"):
            raise AuthError("token_invalid", "access token has no known role")
        amr = claims.get("amr") or []
        if not isinstance(amr, list):
            raise AuthError("token_invalid", "access token has a malformed amr claim")
        return Principal(subject=str(claims["sub"]), role=str(role), amr=tuple(str(m) for m in amr))
