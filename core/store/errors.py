"""Why the encrypted database could not be opened, each with the way to recover."""

from __future__ import annotations

from pathlib import Path

RECOVERY = (
    "The file was left untouched. To recover: restore the database together with its keys "
    "from your key backup made by 'doctorai backup create' (IT runs 'doctorai backup restore "
    "FILE --private-key KEY --to PATH' with its recovery key), or put the key back into the OS "
    "keyring (service 'DoctorAI Workstation', the entry named in this message). Never delete the "
    "file to 'fix' this: it holds the audit trail."
)


class DatabaseError(Exception):
    """Base class: the workstation database cannot be used."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot open the encrypted database '{path}': {reason}")


KEYRING_HELP = (
    "To fix: start the desktop's keyring service and unlock it (Linux: a Secret Service such "
    "as GNOME Keyring or KWallet, normally started with the desktop session; macOS: Keychain; "
    "Windows: Credential Locker), then start DoctorAI again; or choose a keyring backend "
    "explicitly with the PYTHON_KEYRING_BACKEND environment variable or keyring's "
    "configuration file (`python -m keyring diagnose` shows where it is read)"
)


class KeyringUnavailableError(DatabaseError):
    """No key stored for an existing file (or an unusable one): restore it from the backup."""

    def __str__(self) -> str:
        return f"{super().__str__()}. {RECOVERY}"


class NoKeyringError(KeyringUnavailableError):
    """The OS keyring itself cannot be used (no backend, no service, locked, refused): nothing
    is known to be wrong with the database or its key, so the way out is the keyring, not a
    backup. ``new_profile``: the database file does not exist yet (first run)."""

    def __init__(self, path: Path, reason: str, *, backend: str, new_profile: bool) -> None:
        self.backend = backend
        self.new_profile = new_profile
        super().__init__(path, reason)

    def __str__(self) -> str:
        where = f"(keyring's backend: {self.backend})"
        if self.new_profile:
            return (
                f"cannot create the encrypted database '{self.path}': {self.reason} {where}. "
                "DoctorAI keeps the database key only in the OS keyring, so nothing was "
                f"created. {KEYRING_HELP}. (`doctorai --demo` runs a throw-away profile "
                "without a keyring.)"
            )
        return (
            f"cannot open the encrypted database '{self.path}': {self.reason} {where}. Its key "
            "is kept in the OS keyring (service 'DoctorAI Workstation'); the file was left "
            f"untouched. {KEYRING_HELP}. Never delete the file to 'fix' this: it holds the "
            "audit trail."
        )


class DatabaseMissingError(DatabaseError):
    """The keyring holds this profile's key, so its database existed, but the file is gone or
    empty (deleted, truncated, moved). A new empty database in its place would be a trail with
    no history and no accounts, whose first visitor makes himself admin: refused."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}. The OS keyring still holds its key (service 'DoctorAI "
            "Workstation'), so the audit trail existed here: DoctorAI does not create a new "
            "empty one in its place. Restore the database file from backup; if this profile is "
            "meant to start afresh, IT removes the key entry named here from the keyring first "
            "(a decision to record outside this trail)"
        )


class WrongKeyError(DatabaseError):
    """The keyring's key does not decrypt the file (or the file is not a SQLCipher database)."""

    def __str__(self) -> str:
        return f"{super().__str__()}. {RECOVERY}"


class DatabaseCorruptError(DatabaseError):
    """The key is right but the file fails its integrity checks."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}. The file was left untouched: restore it from backup, and keep "
            "the damaged copy for investigation."
        )


class TrailUnavailableError(DatabaseError):
    """The audit trail could not record an action, so the action was not done (an export
    makes no file): names the database, the cause and what was not done."""

    def __init__(self, path: Path, cause: str, not_done: str) -> None:
        self.path, self.reason = path, cause
        Exception.__init__(
            self, f"the audit trail '{path}' cannot record this ({cause}), so {not_done}"
        )


class DatabaseLockedError(DatabaseError):
    """Another process held the database locked for longer than the wait (30 s)."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}. Nothing was lost and nothing was changed; try again when the "
            "other program (another DoctorAI window or command, a backup tool) has finished"
        )


class DiskFullError(DatabaseError):
    """The disk holding the database is full: the last change was not written."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}. The last change was not written and nothing recorded before "
            "it was lost; free space on that disk and try again"
        )


#: Exit code of a command stopped by its database (damaged, locked, full, missing): the same
#: as a command refused because its audit trail cannot be written.
EXIT_STORAGE = 3


def explain_store_error(path: Path, exc: BaseException) -> DatabaseError:
    """What a SQLite/SQLCipher error raised while using ``path`` means, in plain words."""
    if isinstance(exc, DatabaseError):
        return exc
    text = str(getattr(exc, "orig", None) or exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return DatabaseLockedError(path, f"another process holds it locked ({text})")
    if "disk is full" in low or "disk full" in low or "no space" in low:
        return DiskFullError(path, f"the disk is full ({text})")
    if any(w in low for w in ("not a database", "malformed", "hmac", "corrupt")):
        return DatabaseCorruptError(path, f"damaged pages ({text})")
    return DatabaseError(path, text)
