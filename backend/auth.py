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
from sqlalchemy.orm import Session

from backend.db import Device, EnrolCode, RefreshToken, utcnow

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


class TokenIssuer:
    def __init__(self, secret: str, access_ttl_s: int, refresh_ttl_s: int) -> None:
        self.secret, self.access_ttl_s, self.refresh_ttl_s = secret, access_ttl_s, refresh_ttl_s

    def _encode(self, claims: dict[str, Any], ttl_s: int) -> str:
        now = datetime.now(UTC)
        claims |= {"iss": ISSUER, "iat": now, "exp": now + timedelta(seconds=ttl_s)}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def access(self, subject: str, role: str = "device", ttl_s: int | None = None) -> str:
        return self._encode(
            {"sub": subject, "role": role, "typ": "access", "jti": uuid.uuid4().hex},
            ttl_s or self.access_ttl_s,
        )

    def pair(self, session: Session, device_id: str) -> tuple[str, str]:
        jti = uuid.uuid4().hex
        session.add(
            RefreshToken(
                jti=jti,
                device_id=device_id,
                expires_at=utcnow() + timedelta(seconds=self.refresh_ttl_s),
            )
        )
        session.commit()
        refresh = self._encode({"sub": device_id, "typ": "refresh", "jti": jti}, self.refresh_ttl_s)
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
        """Rotate: each refresh token works once; a reused one is refused."""
        claims = self.decode(token, "refresh")
        row = session.get(RefreshToken, str(claims.get("jti")))
        if row is None or row.used or row.device_id != claims["sub"]:
            raise AuthError("token_invalid", "refresh token was already used or revoked")
        device = session.get(Device, row.device_id)
        if device is None or device.revoked:
            raise AuthError("device_revoked", "this workstation was revoked by an admin", 403)
        used = session.execute(
            update(RefreshToken)
            .where(RefreshToken.jti == row.jti, RefreshToken.used.is_(False))
            .values(used=True)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            raise AuthError("token_invalid", "refresh token was already used or revoked")
        return self.pair(session, row.device_id)

    def principal(self, token: str) -> Principal:
        claims = self.decode(token, "access")
        role = claims.get("role")
        if role not in ("device", "admin"):
            raise AuthError("token_invalid", "access token has no known role")
        return Principal(subject=str(claims["sub"]), role=str(role))
