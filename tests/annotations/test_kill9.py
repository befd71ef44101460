"""kill -9 while drawing: a child process draws annotations through the application layer on a
real SQLCipher profile and is SIGKILLed at random moments. Reopening finds every annotation
whose create returned (and every edit whose update returned), and the audit chain verifies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.annotations.store import get_annotation
from core.app import annotations as app
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from tests.annotations.conftest import PASSWORD, add_users, show_ct

DRAWER = """
import sys
from pathlib import Path
from core.annotations.model import AcquiredImage, Annotation, Kind
from core.app import annotations as app
from core.app.workstation import Workstation
db, password, study, series, sop = sys.argv[1:6]
ws = Workstation.open(Path(db))
ws.session.login("dr-a", password)
image = AcquiredImage(sop, 0, (0.7, 0.7))
print("ready", flush=True)
n = 0
while True:
    n += 1
    a = app.create_annotation(
        ws, Annotation(Kind.ELLIPSE, [(n % 500, 1), (n % 500 + 8, 9)], image, study, series)
    )
    print("created", a.uid, flush=True)  # only after create returned (committed, fsynced)
    if n % 3 == 0:
        moved = app.update_annotation(ws, a.moved(1, 1), "move")
        print("updated", moved.uid, moved.revision, flush=True)
"""


@pytest.mark.slow  # six child processes, each signing in (argon2): about 25 s
def test_sigkill_while_drawing_loses_no_returned_annotation(db_path: Path) -> None:
    ws = Workstation.open(db_path)
    add_users(ws)
    ws.session.login("dr-a", PASSWORD)
    shown = show_ct(ws)
    ws.close()
    args = [
        str(db_path),
        PASSWORD,
        shown.study_uid,
        shown.series_uid,
        shown.instances[0].sop_instance_uid,
    ]
    rng = random.Random(4321)
    created: set[str] = set()
    updated: dict[str, int] = {}
    iterations = 6
    for _ in range(iterations):
        proc = subprocess.Popen(
            [sys.executable, "-c", DRAWER, *args],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "created" and len(parts[1]) == 36:
                created.add(parts[1])
            elif len(parts) == 3 and parts[0] == "updated" and parts[2].isdigit():
                updated[parts[1]] = int(parts[2])

        reopened = Workstation.open(db_path)
        try:
            assert reopened.db.integrity_check() == []
            assert reopened.audit.verify().ok
            reopened.session.login("dr-a", PASSWORD)
            stored = {a.uid: a for a in app.list_annotations(reopened, shown.study_uid)}
            lost = created - set(stored)
            assert not lost, f"acknowledged annotations lost: {sorted(lost)[:3]}"
            with reopened.db.engine.connect() as conn:
                for uid, revision in updated.items():
                    assert get_annotation(conn, uid)[0].revision >= revision
            audited = {
                o["id"]
                for e in reopened.audit.iter_events(event_type=EventType.INSTANCES_ACCESSED)
                if e.details.get("action") == "annotation-create"
                for o in e.objects
                if o["kind"] == "annotation"
            }
            assert set(stored) <= audited  # no annotation without its audit event
        finally:
            reopened.close()
    assert len(created) > iterations, len(created)  # the drawer really drew between kills
    assert updated
