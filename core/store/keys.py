"""The database key lives in the OS keyring, never in a file, and is never silently replaced."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from core.store.errors import DatabaseMissingError, KeyringUnavailableError, NoKeyringError

SERVICE = "DoctorAI Workstation"


def _entry(kind: str, db_path: Path) -> str:
    """Keyring user name of one of a database's secrets: stable per absolute path, without
    revealing it."""
    digest = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:16]
    return f"{kind}-{digest}"


def key_entry_name(db_path: Path) -> str:
    """The SQLCipher key's entry."""
    return _entry("database-key", db_path)


def head_key_entry(db_path: Path) -> str:
    """The audit head record's HMAC key (core.audit.head_record)."""
    return _entry("audit-head-key", db_path)


def chain_key_entry(db_path: Path) -> str:
    """The audit chain's HMAC key (core.audit.chain_key), kept apart from the database key."""
    return _entry("audit-chain-key", db_path)


def pacs_cache_key_entry(profile: Path) -> str:
    """The PACS cache's AES-256-GCM key (core.pacs.cache). Not among ``profile_key_entries``:
    the cache is re-fetchable and stays out of backups, so a restored profile gets a new key."""
    return _entry("pacs-cache-key", profile)


def profile_key_entries(db_path: Path) -> dict[str, str]:
    """Every keyring entry a profile's database needs, by role: what a backup must seal and a
    restore must put back (under the entry names of the restored path)."""
    return {
        "database": key_entry_name(db_path),
        "audit-head": head_key_entry(db_path),
        "audit-chain": chain_key_entry(db_path),
    }


#: A keyring file that the caller chose on purpose (the throw-away demo profile), or None.
_chosen_file_keyring: Path | None = None


def use_file_keyring(path: Path) -> None:
    """Keep keys in keyrings.alt's file backend at ``path``: only for a throw-away profile
    (``doctorai --demo`` on a machine without an OS keyring), never for a real one."""
    global _chosen_file_keyring
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    backend = PlaintextKeyring()
    backend.file_path = str(path)
    keyring.set_keyring(backend)
    _chosen_file_keyring = path


def _is_file_backend(backend: object) -> bool:
    members = getattr(backend, "backends", None) or [backend]  # keyring's chainer
    return all(type(b).__module__.startswith("keyrings.alt") for b in members)


def _file_backend_chosen() -> bool:
    """keyring picks keyrings.alt's plaintext file on its own when no OS keyring answers; that
    is only acceptable when someone chose it (the env variable, keyring's config, the demo)."""
    import keyring
    from keyring.core import load_config

    chosen = _chosen_file_keyring is not None and getattr(
        keyring.get_keyring(), "file_path", None
    ) == str(_chosen_file_keyring)
    return bool(os.environ.get("PYTHON_KEYRING_BACKEND") or chosen or load_config() is not None)


def backend_name() -> str:
    """The backend keyring uses now, as keyring names it (a chainer lists its members)."""
    import keyring

    def name(b: object) -> str:
        return f"{type(b).__module__}.{type(b).__qualname__}"

    backend = keyring.get_keyring()
    members = getattr(backend, "backends", None)
    return f"{name(backend)} of {', '.join(map(name, members))}" if members else name(backend)


class _NoKeyring(RuntimeError):
    """Why the keyring cannot be used at all (not an error of a particular key)."""


def _keyring() -> object:
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        raise _NoKeyring("no OS keyring is available")
    if _is_file_backend(backend) and not _file_backend_chosen():
        raise _NoKeyring(
            "no OS keyring answered, and keyring would fall back to a plaintext key file, which "
            "DoctorAI refuses unless PYTHON_KEYRING_BACKEND or keyring's configuration chooses "
            "it explicitly"
        )
    return keyring


def get_or_create_key(db_path: Path) -> str:
    """The 64-hex-digit key; a new one only when the database file does not exist yet."""
    entry = key_entry_name(db_path)
    new_profile = not db_path.exists()
    try:
        import keyring

        _keyring()
        stored = keyring.get_password(SERVICE, entry)
    except _NoKeyring as exc:
        raise NoKeyringError(
            db_path, str(exc), backend=backend_name(), new_profile=new_profile
        ) from exc
    except Exception as exc:  # keyring raises backend-specific errors (locked, D-Bus, ...)
        raise NoKeyringError(
            db_path,
            f"the OS keyring could not be read ({type(exc).__name__}: {exc})",
            backend=backend_name(),
            new_profile=new_profile,
        ) from exc
    if stored:
        if len(stored) != 64 or any(c not in "0123456789abcdef" for c in stored):
            raise KeyringUnavailableError(db_path, f"keyring entry '{entry}' is not a 256-bit key")
        if new_profile or db_path.stat().st_size == 0:
            # the key outlived its database: deleted or truncated, never silently made anew
            state = "is missing" if new_profile else "is empty (0 bytes)"
            raise DatabaseMissingError(
                db_path, f"the database file {state}, yet key '{entry}' exists"
            )
        return stored
    if not new_profile:
        raise KeyringUnavailableError(
            db_path, f"the file exists but the keyring holds no key '{entry}'"
        )
    key = secrets.token_hex(32)
    try:
        keyring.set_password(SERVICE, entry, key)
    except Exception as exc:
        raise NoKeyringError(
            db_path,
            f"the new key could not be stored in the OS keyring ({type(exc).__name__}: {exc})",
            backend=backend_name(),
            new_profile=True,
        ) from exc
    return key
