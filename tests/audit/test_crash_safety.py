"""SIGKILL a writer at random moments: every append that returned survives, the chain verifies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.audit.log import AuditLog
from core.store.database import open_database

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
