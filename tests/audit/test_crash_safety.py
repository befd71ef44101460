"""SIGKILL a writer at random moments: every append that returned survives, the chain verifies.

Both paths: one thread appending alone, and several threads whose appends are group-committed
(plus an ``append_many`` producer) - a caller may only hear back once its batch is durable."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from core.audit.log import AuditLog
from core.store.database import open_database
from core.store.schema import audit_events

WRITER = """
import sys
from pathlib import Path
from core.audit.log import AuditEvent, AuditLog, AuditObject
from core.audit.vocabulary import EventType
from core.store.database import open_database
log = AuditLog(open_database(Path(sys.argv[1])))
print("ready", flush=True)
while True:
    event = log.append(AuditEvent(EventType.INSTANCES_ACCESSED, user="writer",
                                  objects=[AuditObject("patient", "P1", "Crash^Test")]))
    print(event.index, flush=True)  # only after append returned (committed, fsynced)
"""


def test_sigkill_loses_no_returned_append(tmp_path: Path) -> None:
    db_path = tmp_path / "crash.db"
    open_database(db_path).close()  # key created once, in this process's keyring
    rng = random.Random(1234)
    env = dict(os.environ)
    confirmed: set[int] = set()
    iterations = 12
    for _ in range(iterations):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path)], env=env, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.01, 0.4))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        confirmed.update(int(line) for line in out.split() if line.isdigit())
        db = open_database(db_path)
        try:
            assert db.integrity_check() == []
            log = AuditLog(db)
            result = log.verify()
            assert result.ok, result
            head = log.chain_head()[0]
            assert confirmed <= set(range(head + 1)), "an acknowledged event was lost"
        finally:
            db.close()
    assert len(confirmed) > iterations  # the writers really wrote between kills


GROUP_WRITER = """
import sys, threading
from pathlib import Path
from core.audit.log import AuditEvent, AuditLog, AuditObject
from core.audit.vocabulary import EventType
from core.store.database import open_database
log = AuditLog(open_database(Path(sys.argv[1])))
out = threading.Lock()
def event(w):
    return AuditEvent(EventType.INSTANCES_ACCESSED, user=f"writer-{w}",
                      objects=[AuditObject("patient", "P1", "Crash^Test")])
def report(events):
    with out:  # only after the append returned (its batch committed and fsynced)
        sys.stdout.write("".join(f"{e.index} {e.event_id}\\n" for e in events))
        sys.stdout.flush()
def single(w):
    while True:
        report([log.append(event(w))])
def many(w):
    while True:
        report(log.append_many([event(w)] * 5))
threads = [threading.Thread(target=single, args=(w,), daemon=True) for w in range(5)]
threads.append(threading.Thread(target=many, args=(5,), daemon=True))
print("ready", flush=True)
for t in threads:
    t.start()
threading.Event().wait()
"""


def test_sigkill_loses_no_returned_group_commit(tmp_path: Path) -> None:
    db_path = tmp_path / "group-crash.db"
    open_database(db_path).close()
    rng = random.Random(5678)
    confirmed: dict[int, str] = {}
    iterations = 8
    for _ in range(iterations):
        proc = subprocess.Popen(
            [sys.executable, "-c", GROUP_WRITER, str(db_path)],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and len(parts[1]) == 36:  # whole lines only
                confirmed[int(parts[0])] = parts[1]
        db = open_database(db_path)
        try:
            assert db.integrity_check() == []
            log = AuditLog(db)
            result = log.verify()
            assert result.ok, result
            with db.engine.connect() as conn:
                stored = dict(
                    conn.execute(select(audit_events.c.idx, audit_events.c.event_id)).fetchall()
                )
            lost = {i: e for i, e in confirmed.items() if stored.get(i) != e}
            assert not lost, f"acknowledged events lost or replaced: {sorted(lost)[:5]}"
        finally:
            db.close()
    assert len(confirmed) > 5 * iterations  # the writers really wrote between kills
