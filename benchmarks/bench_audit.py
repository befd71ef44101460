"""Sustained durable append throughput of the encrypted, chained audit trail.

Baseline, same run: the same table on plain SQLite (stdlib sqlite3, WAL, synchronous=FULL,
one committed transaction per event, a SHA-256 computed per row too) - so the ratio shows
what encryption and the chain's bookkeeping cost, not what durability costs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

N = 2000


def _plain(path: Path) -> float:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE audit_events (idx INTEGER PRIMARY KEY, event_id TEXT, created_at"
                " TEXT, user TEXT, role TEXT, workstation TEXT, event_type TEXT, outcome INT,"
                " objects TEXT, details TEXT, prev_hash TEXT, hash TEXT)")
    prev = "0" * 64
    start = time.perf_counter()
    for i in range(N):
        content = json.dumps({"i": i, "objects": [{"kind": "patient", "id": "P1"}]})
        digest = hashlib.sha256((prev + content).encode()).hexdigest()
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO audit_events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (i, str(i), "t", "u", "r", "w", "QUERY", 0, content, "{}", prev, digest))
        con.execute("COMMIT")
        prev = digest
    elapsed = time.perf_counter() - start
    con.close()
    return N / elapsed


def _ours(path: Path) -> float:
    from core.audit.log import AuditEvent, AuditLog, AuditObject
    from core.audit.vocabulary import EventType
    from core.store.database import open_database

    db = open_database(path)
    log = AuditLog(db)
    event = AuditEvent(EventType.QUERY, user="u", role="r", objects=[AuditObject("patient", "P1")])
    start = time.perf_counter()
    for _ in range(N):
        log.append(event)
    elapsed = time.perf_counter() - start
    assert log.verify().ok
    db.close()
    return N / elapsed


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="doctorai-bench-audit-") as tmp:
        os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
        os.environ["XDG_DATA_HOME"] = tmp  # a throw-away keyring for the benchmark's key
        plain = _plain(Path(tmp) / "plain.db")
        ours = _ours(Path(tmp) / "ours.db")
    print(f"plain SQLite (WAL, synchronous=FULL, 1 event/transaction): {plain:,.0f} events/s")
    print(f"encrypted + chained + outbox row, same durability:          {ours:,.0f} events/s")
    print(f"ratio plain/ours: {plain / ours:.2f}x slower (goal <= 2x); "
          f"{'meets' if ours >= 2000 else 'below'} the 2,000 events/s goal")
