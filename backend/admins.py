"""Backend admin accounts with a second factor: argon2id passwords, TOTP (RFC 6238), recovery codes.

Secrets at rest: the TOTP secret is AES-256-GCM ciphertext (the admin's name is the associated
data, so a row's ciphertext cannot be moved to another admin) and each recovery code is an
HMAC-SHA-256 under a second key. Both keys come from HKDF-SHA-256 over
``Settings.mfa_key_material()`` (``DOCTORAI_BACKEND_MFA_KEY``, else the JWT secret): a copy of the
database alone yields no TOTP secret and no way to guess recovery codes offline.

Sign-in answers one way to every failure (unknown name, wrong password, wrong or replayed code,
locked, disabled, unconfirmed), and an unknown name still costs one argon2 verify, so neither the
answer nor its timing says which names exist. The precise reason goes to the security alerts.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import update
from sqlalchemy.orm import Session

from backend.auth import aware
from backend.db import BackendAdmin, SecurityAlert, utcnow

NAME_PATTERN = r"^[a-z][a-z0-9._-]{0,63}$"
MIN_PASSWORD_LEN = 12
TOTP_STEP_S = 30
TOTP_WINDOW = 1  # steps either side accepted: clock drift and typing time
RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 symbols, no 0/O or 1/I
RECOVERY_LEN = 10  # 50 bits; guessed only online, behind the rate limit and the lockout
ISSUER = "DoctorAI backend"
_HASHER = PasswordHasher()


class AdminError(Exception):
    """A refused admin-management request; the message names the thing and the reason."""


@dataclass(frozen=True)
class AdminKeys:
    """The two keys derived from the MFA key material (see the module docstring)."""

    aead: bytes
    mac: bytes

    @classmethod
    def derive(cls, material: str) -> AdminKeys:
        okm = HKDF(
            algorithm=SHA256(), length=64, salt=None, info=b"doctorai-backend admin mfa v1"
        ).derive(material.encode())
        return cls(aead=okm[:32], mac=okm[32:])


@dataclass(frozen=True)
class SignIn:
    """A sign-in's outcome; ``reason`` is for the audit record only, never for the caller."""

    ok: bool
    reason: str
    method: str | None = None  # "totp" | "recovery"
    recovery_left: int | None = None
    locked_now: bool = False


def _aad(name: str) -> bytes:
    return b"doctorai-backend admin totp\x00" + name.encode()


def encrypt_secret(keys: AdminKeys, name: str, secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(keys.aead).encrypt(nonce, secret.encode(), _aad(name))


def decrypt_secret(keys: AdminKeys, name: str, blob: bytes) -> str:
    try:
        return AESGCM(keys.aead).decrypt(blob[:12], blob[12:], _aad(name)).decode()
    except InvalidTag as exc:
        raise AdminError(
            f"the TOTP secret of admin {name!r} does not decrypt: the MFA key "
            "(DOCTORAI_BACKEND_MFA_KEY, else the JWT secret) is not the one it was enrolled under"
        ) from exc


def _recovery_hash(keys: AdminKeys, code: str) -> str:
    return hmac.new(keys.mac, code.encode(), hashlib.sha256).hexdigest()


def _normalise_recovery(code: str) -> str | None:
    text = code.replace("-", "").replace(" ", "").upper()
    if len(text) != RECOVERY_LEN or any(c not in RECOVERY_ALPHABET for c in text):
        return None
    return text


def _new_recovery_codes(keys: AdminKeys) -> tuple[list[str], list[str]]:
    """(codes to show once, their keyed hashes to store)."""
    codes = [
        "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LEN))
        for _ in range(RECOVERY_CODE_COUNT)
    ]
    shown = [f"{c[:5]}-{c[5:]}" for c in codes]
    return shown, [_recovery_hash(keys, c) for c in codes]


@functools.cache
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(16))


def _verify_password(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def record(session: Session, name: str, code: str, **detail: object) -> None:
    """A security alert about a backend admin (added, not committed). ``device_id`` names the
    admin as ``admin:NAME``; ``detail`` never holds a password, code or secret."""
    session.add(
        SecurityAlert(device_id=f"admin:{name}"[:64], code=code, detail={"admin": name, **detail})
    )


def _get(session: Session, name: str) -> BackendAdmin:
    row = session.get(BackendAdmin, name)
    if row is None:
        raise AdminError(f"no backend admin named {name!r}")
    return row


def check_new(name: str, password: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name):
        raise AdminError(
            f"admin name {name!r} is not allowed: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter, at most 64 characters"
        )
    if len(password) < MIN_PASSWORD_LEN:
        raise AdminError(f"the password is too short: at least {MIN_PASSWORD_LEN} characters")
    if password.strip().lower() == name.lower():
        raise AdminError("the password must not be the admin's name")


def create(session: Session, keys: AdminKeys, name: str, password: str) -> str:
    """Add an unconfirmed admin; returns the otpauth:// URI for the authenticator app."""
    check_new(name, password)
    if session.get(BackendAdmin, name) is not None:
        raise AdminError(f"a backend admin named {name!r} already exists")
    secret = pyotp.random_base32()  # 160 bits, RFC 4226's recommended length
    session.add(
        BackendAdmin(
            name=name,
            password_hash=_HASHER.hash(password),
            totp_secret_enc=encrypt_secret(keys, name, secret),
            recovery_hashes=[],
        )
    )
    record(session, name, "admin_added")
    session.commit()
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=ISSUER)


def _totp_step(
    keys: AdminKeys, row: BackendAdmin, code: str, now: datetime
) -> tuple[str, int | None]:
    """("ok", step) for a code of a step not used before; else ("wrong_code"|"replayed_code")."""
    totp = pyotp.TOTP(decrypt_secret(keys, row.name, row.totp_secret_enc))
    step = int(now.timestamp()) // TOTP_STEP_S
    for s in range(step - TOTP_WINDOW, step + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(s), code):
            if row.last_step is not None and s <= row.last_step:
                return "replayed_code", None
            return "ok", s
    return "wrong_code", None


def confirm(
    session: Session, keys: AdminKeys, name: str, code: str, now: datetime | None = None
) -> list[str]:
    """Prove the authenticator holds the secret; returns the first recovery codes."""
    row = _get(session, name)
    if row.confirmed:
        raise AdminError(f"admin {name!r} is already confirmed")
    verdict, step = _totp_step(keys, row, code.strip(), now or utcnow())
    if verdict != "ok":
        raise AdminError(
            f"code {code.strip()!r} does not match admin {name!r}'s TOTP secret now: check the "
            "authenticator app's clock and that it scanned this admin's QR code"
        )
    shown, hashes = _new_recovery_codes(keys)
    row.confirmed, row.last_step, row.recovery_hashes = True, step, hashes
    row.version += 1
    record(session, name, "admin_confirmed", recovery_codes=len(hashes))
    session.commit()
    return shown


def new_recovery_codes(session: Session, keys: AdminKeys, name: str) -> list[str]:
    """Replace every recovery code of ``name`` (the old ones stop working)."""
    row = _get(session, name)
    if not row.confirmed:
        raise AdminError(f"admin {name!r} is not confirmed yet: run `admin confirm` first")
    shown, hashes = _new_recovery_codes(keys)
    row.recovery_hashes = hashes
    row.version += 1
    record(session, name, "admin_recovery_codes_issued", recovery_codes=len(hashes))
    session.commit()
    return shown


def disable(session: Session, name: str) -> None:
    row = _get(session, name)
    row.disabled = True
    row.version += 1
    record(session, name, "admin_disabled")
    session.commit()


def _fail(
    session: Session, row: BackendAdmin, reason: str, max_failures: int, lockout_s: int
) -> SignIn:
    """Count a failure on an existing account; the Nth in a row locks it for ``lockout_s``."""
    session.execute(
        update(BackendAdmin)
        .where(BackendAdmin.name == row.name)
        .values(failed_attempts=BackendAdmin.failed_attempts + 1)
    )
    session.refresh(row)
    locked_now = row.failed_attempts >= max_failures
    if locked_now:
        row.failed_attempts = 0
        row.locked_until = utcnow() + timedelta(seconds=lockout_s)
    return SignIn(False, reason, locked_now=locked_now)


def sign_in(
    session: Session,
    keys: AdminKeys,
    name: str,
    password: str,
    code: str,
    *,
    max_failures: int,
    lockout_s: int,
    address: str = "?",
) -> SignIn:
    """Check name, password and a TOTP or recovery code; record the outcome and commit."""
    out = _check(session, keys, name, password, code, max_failures, lockout_s)
    detail: dict[str, object] = {"address": address, "reason": out.reason}
    if out.method:
        detail["method"] = out.method
    if out.recovery_left is not None:
        detail["recovery_codes_left"] = out.recovery_left
    record(session, name, "admin_sign_in" if out.ok else "admin_sign_in_failed", **detail)
    if out.locked_now:
        record(session, name, "admin_locked_out", address=address, lockout_s=lockout_s)
    session.commit()
    return out


def _check(
    session: Session,
    keys: AdminKeys,
    name: str,
    password: str,
    code: str,
    max_failures: int,
    lockout_s: int,
) -> SignIn:
    row = session.get(BackendAdmin, name) if re.fullmatch(NAME_PATTERN, name) else None
    if row is None:
        _verify_password(_dummy_hash(), password)  # the same cost as a known name
        return SignIn(False, "unknown_name")
    password_ok = _verify_password(row.password_hash, password)
    now = utcnow()
    if row.disabled:
        return SignIn(False, "disabled")
    if row.locked_until is not None and aware(row.locked_until) > now:
        return SignIn(False, "locked")
    if not row.confirmed:
        return SignIn(False, "not_confirmed")
    if not password_ok:
        return _fail(session, row, "wrong_password", max_failures, lockout_s)
    code = code.strip()
    step, hashes, method = row.last_step, list(row.recovery_hashes or []), "totp"
    if not code:
        return _fail(session, row, "no_code", max_failures, lockout_s)
    if code.isdigit() and len(code) == 6:
        verdict, found = _totp_step(keys, row, code, now)
        if verdict != "ok":
            return _fail(session, row, verdict, max_failures, lockout_s)
        step = found
    else:
        method = "recovery"
        norm = _normalise_recovery(code)
        digest = _recovery_hash(keys, norm) if norm else ""
        match = [h for h in hashes if hmac.compare_digest(h, digest)]
        if not match:
            return _fail(session, row, "wrong_recovery_code", max_failures, lockout_s)
        hashes.remove(match[0])
    # compare-and-set on the version read above: of two requests racing with one code, one wins
    won = session.execute(
        update(BackendAdmin)
        .where(BackendAdmin.name == row.name, BackendAdmin.version == row.version)
        .values(
            last_step=step,
            recovery_hashes=hashes,
            failed_attempts=0,
            locked_until=None,
            last_sign_in_at=now,
            version=row.version + 1,
        )
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        session.refresh(row)
        return _fail(session, row, "replayed_code", max_failures, lockout_s)
    left = len(hashes) if method == "recovery" else None
    return SignIn(True, "ok", method=method, recovery_left=left)
