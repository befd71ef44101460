"""Enrolment codes, device credentials and JWT access/refresh tokens (PyJWT, HS256).

Codes and device secrets are random with >= 128 bits of entropy, so a plain SHA-256 of them is
stored (a slow password hash adds nothing for secrets nobody can guess).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db import (
    Device,
    EnrolCode,
    RefreshToken,
    RevokedRefreshFamily,
    SecurityAlert,
    utcnow,
)

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


def issue_enrol_code(session: Session, ttl_s: int = 7 * 86400) -> str:
    code = "-".join(secrets.token_hex(4).upper() for _ in range(4))  # 128 bits, readable
    session.add(
        EnrolCode(code_hash=sha256_hex(code), expires_at=utcnow() + timedelta(seconds=ttl_s))
    )
    session.commit()
    return code


def enrol(session: Session, code: str, label: str) -> tuple[str, str]:
    """Consume a one-time code; returns (device_id, device_secret)."""
    code_hash = sha256_hex(code.strip().upper())
    row = session.get(EnrolCode, code_hash)
    if row is None:
        raise AuthError("enrol_code_invalid", "enrolment code is not valid")
    if row.used_at is not None:
        raise AuthError("enrol_code_used", "enrolment code was already used")
    if aware(row.expires_at) < utcnow():
        raise AuthError("enrol_code_expired", "enrolment code has expired")
    device_id = str(uuid.uuid4())
    secret = secrets.token_urlsafe(32)
    # compare-and-set, so two racing requests cannot both consume the code (SQLite has no
    # SELECT ... FOR UPDATE; the conditional UPDATE is atomic on every database)
    claimed = session.execute(
        update(EnrolCode)
        .where(EnrolCode.code_hash == code_hash, EnrolCode.used_at.is_(None))
        .values(used_at=utcnow(), device_id=device_id)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise AuthError("enrol_code_used", "enrolment code was already used")
    session.add(Device(device_id=device_id, secret_hash=sha256_hex(secret), label=label))
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
