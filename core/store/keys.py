"""The database key lives in the OS keyring, never in a file, and is never silently replaced."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from core.store.errors import KeyringUnavailableError

SERVICE = "DoctorAI Workstation"


def key_entry_name(db_path: Path) -> str:
    """Keyring user name for a database: stable per absolute path, without revealing it."""
    digest = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:16]
    return f"database-key-{digest}"


def _keyring() -> object:
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        raise RuntimeError("no OS keyring backend is available")  # noqa: TRY004 - not a type error
    return keyring


def get_or_create_key(db_path: Path) -> str:
    """The 64-hex-digit key; a new one only when the database file does not exist yet."""
    entry = key_entry_name(db_path)
    try:
        import keyring

        _keyring()
        stored = keyring.get_password(SERVICE, entry)
    except Exception as exc:  # keyring raises backend-specific errors (locked, D-Bus, ...)
        raise KeyringUnavailableError(
            db_path, f"the OS keyring could not be read ({type(exc).__name__}: {exc})"
        ) from exc
    if stored:
        if len(stored) != 64 or any(c not in "0123456789abcdef" for c in stored):
            raise KeyringUnavailableError(db_path, f"keyring entry '{entry}' is not a 256-bit key")
        return stored
    if db_path.exists():
        raise KeyringUnavailableError(
            db_path, f"the file exists but the keyring holds no key '{entry}'"
        )
    key = secrets.token_hex(32)
    try:
        keyring.set_password(SERVICE, entry, key)
    except Exception as exc:
        raise KeyringUnavailableError(
            db_path, f"the new key could not be stored in the OS keyring ({exc})"
        ) from exc
    return key
