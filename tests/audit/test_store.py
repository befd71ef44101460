"""The encrypted database: no plaintext on disk, the key only in the keyring, never recreated."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import keyring
import pytest

from core.audit.log import AuditEvent, AuditLog, AuditObject
from core.audit.vocabulary import EventType
from core.store.database import open_database
from core.store.errors import (
    DatabaseCorruptError,
    DatabaseError,
    KeyringUnavailableError,
    WrongKeyError,
)
from core.store.keys import SERVICE, key_entry_name

PATIENT = "Zebedee^Quixotic-Marmalade"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(db_path: Path) -> list[Path]:
    return [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)]


def test_file_is_encrypted_and_reopens(db_path: Path) -> None:
    db = open_database(db_path)
    workstation = db.workstation_id
    db.close()
    assert not db_path.read_bytes().startswith(b"SQLite format 3")
    again = open_database(db_path)
    assert again.workstation_id == workstation
    assert again.integrity_check() == []
    again.close()


def test_no_plaintext_patient_data_in_any_file(db_path: Path) -> None:
    db = open_database(db_path)
    log = AuditLog(db)
    for _ in range(50):
        log.append(
            AuditEvent(
                EventType.INSTANCES_ACCESSED,
                user="dr-who",
                role="radiologist",
                objects=[AuditObject("patient", "PID-424242", PATIENT)],
            )
        )
    files = _files(db_path)  # while open: the WAL and shared-memory files exist too
    assert any(p.name.endswith("-wal") for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in (PATIENT.encode(), PATIENT.encode("utf-16-le"), b"PID-424242", b"dr-who"):
            assert needle not in data, f"{needle!r} in plaintext in {path.name}"
    db.close()


def test_wrong_key_is_refused_and_file_untouched(db_path: Path) -> None:
    open_database(db_path).close()
    before = _digest(db_path)
    keyring.set_password(SERVICE, key_entry_name(db_path), "ab" * 32)
    with pytest.raises(WrongKeyError, match="does not decrypt") as info:
        open_database(db_path)
    assert str(db_path) in str(info.value)
    assert "keyring" in str(info.value)
    assert _digest(db_path) == before


def test_missing_key_never_recreates_the_database(db_path: Path) -> None:
    open_database(db_path).close()
    before = _digest(db_path)
    keyring.delete_password(SERVICE, key_entry_name(db_path))
    with pytest.raises(KeyringUnavailableError, match="holds no key"):
        open_database(db_path)
    assert _digest(db_path) == before
    assert keyring.get_password(SERVICE, key_entry_name(db_path)) is None  # no new key made


def test_flipped_bytes_are_detected(db_path: Path) -> None:
    db = open_database(db_path)
    log = AuditLog(db)
    for i in range(300):
        log.append(AuditEvent(EventType.QUERY, user="u", details={"n": i, "pad": "x" * 200}))
    db.close()
    rng = random.Random(7)
    size = db_path.stat().st_size
    for trial in range(5):
        copy = db_path.with_name(f"copy{trial}.db")
        data = bytearray(db_path.read_bytes())
        offset = rng.randrange(4096, size)  # past the first page: a data page
        data[offset] ^= 0xFF
        copy.write_bytes(bytes(data))
        keyring.set_password(
            SERVICE, key_entry_name(copy), keyring.get_password(SERVICE, key_entry_name(db_path))
        )
        try:
            damaged = open_database(copy)
        except DatabaseError:
            continue  # detected on open
        problems = damaged.integrity_check()
        damaged.close()
        assert problems, f"flip at byte {offset} went unnoticed"


def test_corrupt_header_is_reported_not_recreated(db_path: Path) -> None:
    open_database(db_path).close()
    data = bytearray(db_path.read_bytes())
    data[100:200] = bytes(100)
    db_path.write_bytes(bytes(data))
    before = _digest(db_path)
    with pytest.raises((WrongKeyError, DatabaseCorruptError)):
        open_database(db_path)
    assert _digest(db_path) == before
