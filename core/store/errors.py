"""Why the encrypted database could not be opened, each with the way to recover."""

from __future__ import annotations

from pathlib import Path

RECOVERY = (
    "The file was left untouched. To recover: restore the key into the OS keyring (service "
    "'DoctorAI Workstation', the entry named in this message) from your key backup, or restore "
    "the database file together with its key from backup. Never delete the file to 'fix' this: "
    "it holds the audit trail."
)


class DatabaseError(Exception):
    """Base class: the workstation database cannot be used."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot open the encrypted database '{path}': {reason}")


class KeyringUnavailableError(DatabaseError):
    """No usable OS keyring (locked, missing backend) or no key stored for an existing file."""

    def __str__(self) -> str:
        return f"{super().__str__()}. {RECOVERY}"


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
