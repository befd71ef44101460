"""``doctorai backup create`` on a 100,000-event trail against a plain file copy.

Baseline, same run: ``shutil.copyfile`` of the same database file (checkpointed first, so the
main file holds every page) - the cheapest possible copy, neither online-consistent nor
checked nor carrying its keys; also shown with an fsync (the backup's file is fsynced).
Measured: the whole core function (online copy through SQLite's backup API, page HMAC check
of the copy, SHA-256, sealing the keys, the ZIP written, fsynced and renamed), and the online
copy step alone by the three ways SQLCipher 4 offers that keep the copy encrypted (backup
API, ``VACUUM INTO``, ``sqlcipher_export``).
Median of ``REPEATS`` runs each; the trail is built as the app writes it (append_many batches).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EVENTS = 100_000
BATCH = 500
REPEATS = 5


def _build(db_path: Path) -> Any:
    from core.audit.log import AuditEvent, AuditLog, AuditObject
    from core.audit.vocabulary import EventType
    from core.store.database import open_database

    db = open_database(db_path)
    log = AuditLog(db)
    for start in range(0, EVENTS, BATCH):
        log.append_many(
            [
                AuditEvent(
                    EventType.INSTANCES_ACCESSED,
                    user="dr-bench",
                    role="radiologist",
                    objects=[
                        AuditObject("patient", f"PID-{n % 977:04d}", "Bench^Patient"),
                        AuditObject("study", f"1.2.826.0.1.{n % 3001}"),
                    ],
                    details={"n": n, "action": "view"},
                )
                for n in range(start, start + BATCH)
            ]
        )
    raw = db.engine.raw_connection()  # outside a transaction (the engine's begin is IMMEDIATE)
    try:  # the main file then holds every page: a fair file copy
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    finally:
        raw.close()
    return db


def _median(run: Callable[[int], None]) -> float:
    times = []
    for i in range(REPEATS):
        start = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from core.store import backup

    with tempfile.TemporaryDirectory(prefix="doctorai-bench-backup-") as name:
        tmp = Path(name)
        os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
        os.environ["XDG_DATA_HOME"] = name  # a throw-away keyring for the benchmark's keys
        db_path = tmp / "doctorai.db"
        start = time.perf_counter()
        db = _build(db_path)
        built = time.perf_counter() - start
        recipient = X25519PrivateKey.generate().public_key()
        key = backup._profile_secrets(db_path)["database"]
        try:
            plain = _median(lambda i: shutil.copyfile(db_path, tmp / f"plain-{i}.db"))
            durable = _median(lambda i: _copy_fsync(db_path, tmp / f"durable-{i}.db"))
            full = _median(lambda i: backup.create_backup(db_path, tmp / f"b-{i}.zip", recipient))
            steps = {
                "backup API": _median(
                    lambda i: backup._copy_online(db_path, key, tmp / f"api-{i}.db")
                ),
                "VACUUM INTO": _median(lambda i: _vacuum_into(db_path, key, tmp / f"vi-{i}.db")),
                "sqlcipher_export": _median(lambda i: _export(db_path, key, tmp / f"ex-{i}.db")),
            }
            manifest, _ = backup.read_manifest(tmp / "b-0.zip")
        finally:
            db.close()
        size = db_path.stat().st_size
        out_size = (tmp / "b-0.zip").stat().st_size

    print(
        f"trail: {manifest.event_count:,} events, database {size / 2**20:.1f} MiB "
        f"(built in {built:.1f} s with append_many x{BATCH}); "
        f"backup file {out_size / 2**20:.1f} MiB"
    )
    print(f"median of {REPEATS}:")
    print(f"  shutil.copyfile (baseline)        {plain * 1000:8.1f} ms")
    print(f"  copyfile + fsync                  {durable * 1000:8.1f} ms   {durable / plain:6.1f}x")
    print(f"  backup create (core function)     {full * 1000:8.1f} ms   {full / plain:6.1f}x")
    for label, t in steps.items():
        print(f"  online copy step, {label:<16} {t * 1000:8.1f} ms   {t / plain:6.1f}x")


def _copy_fsync(src: Path, dst: Path) -> None:
    """The durable plain copy (the backup fsyncs its file too)."""
    shutil.copyfile(src, dst)
    with dst.open("rb+") as f:
        os.fsync(f.fileno())


def _vacuum_into(db_path: Path, key: str, out: Path) -> None:
    from core.store.backup import _connect

    con = _connect(db_path, key)
    try:
        con.execute("VACUUM INTO ?", (str(out),))
    finally:
        con.close()


def _export(db_path: Path, key: str, out: Path) -> None:
    from core.store.backup import _connect

    con = _connect(db_path, key)
    try:
        con.execute(f"ATTACH DATABASE ? AS copy KEY \"x'{key}'\"", (str(out),))
        con.execute("SELECT sqlcipher_export('copy')")
        con.execute("DETACH DATABASE copy")
    finally:
        con.close()


if __name__ == "__main__":
    main()
