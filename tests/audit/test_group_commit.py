"""Group commit on a real SQLCipher file: concurrent appends share transactions, each caller
gets back its own durable event, the chain stays linear, and failures reach every caller."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.audit.group_commit import GroupCommit
from core.audit.log import AuditEvent, AuditLog, AuditObject, StoredEvent
from core.audit.vocabulary import EventType
from core.store.database import WAL_AUTOCHECKPOINT_PAGES, Database
from core.store.outbox import StoreOutbox
from core.store.schema import audit_events


def _event(user: str, n: int = 0) -> AuditEvent:
    return AuditEvent(
        EventType.INSTANCES_ACCESSED,
        user=user,
        role="radiologist",
        objects=[AuditObject("patient", f"P{n}", "Group^Commit")],
        details={"n": n},
    )


def _run_threads(count: int, target: Callable[[int], None], timeout: float = 60) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a writer hung"


def _rows(db: Database) -> dict[int, tuple[str, str, str]]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.idx, audit_events.c.event_id, audit_events.c.hash).add_columns(
                audit_events.c.user
            )
        ).fetchall()
    return {r.idx: (r.event_id, r.hash, r.user) for r in rows}


def test_concurrent_appends_are_batched_and_each_caller_gets_its_own_event(db: Database) -> None:
    log = AuditLog(db)
    writers, per_writer = 8, 25
    returned: dict[int, list[StoredEvent]] = {}

    def write(w: int) -> None:
        returned[w] = [log.append(_event(f"writer-{w}", n)) for n in range(per_writer)]

    _run_threads(writers, write)
    total = writers * per_writer
    stored = _rows(db)
    assert sorted(stored) == list(range(total)), "indices are not one linear chain"
    for w, events in returned.items():
        assert [e.details["n"] for e in events] == list(range(per_writer))
        for e in events:  # the acknowledged event is exactly the row at its index
            assert stored[e.index] == (e.event_id, e.hash, f"writer-{w}")
        assert [e.index for e in events] == sorted(e.index for e in events)
    assert log.verify().ok
    transactions, events_written = log.group_stats
    assert events_written == total
    assert transactions < total, "no two appends ever shared a transaction"
    assert StoreOutbox(db).count_unsent() == total  # each event queued for sync exactly once


def test_append_many_is_contiguous_and_all_or_nothing(db: Database) -> None:
    log = AuditLog(db)
    log.append(_event("before"))
    batch = log.append_many([_event("import", n) for n in range(50)])
    assert [e.index for e in batch] == list(range(1, 51))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(batch))
    with pytest.raises(ValueError, match="QUERY: details are not JSON-serialisable"):
        log.append_many([_event("import"), AuditEvent(EventType.QUERY, "u", details={"x": {1j}})])
    assert log.chain_head() == (50, batch[-1].hash)  # the good first event was not written
    assert log.append_many([]) == []
    assert log.verify().ok


def test_append_with_conn_joins_the_callers_transaction(db: Database) -> None:
    log = AuditLog(db)
    head = log.chain_head()

    class Abort(Exception):
        pass

    def append_then_abort() -> None:
        with db.transaction() as conn:
            log.append_many([_event("rolled-back", n) for n in range(3)], conn=conn)
            raise Abort

    with pytest.raises(Abort):
        append_then_abort()
    assert log.chain_head() == head
    with db.transaction() as conn:
        kept = log.append(_event("kept"), conn=conn)
    assert log.chain_head() == (kept.index, kept.hash)
    assert log.verify().ok


def test_group_appends_wait_for_a_callers_open_transaction_without_deadlock(
    db: Database,
) -> None:
    """A caller holding a write transaction (append with conn) does not block the group
    forever, and the group's event lands after it in the chain."""
    log = AuditLog(db)
    inside = threading.Event()
    order: list[str] = []

    def holder(_: int) -> None:
        with db.transaction() as conn:
            log.append(_event("holder"), conn=conn)
            inside.set()
            time.sleep(0.3)
            order.append("holder-commit")

    def grouped(_: int) -> None:
        inside.wait(10)
        log.append(_event("grouped"))
        order.append("grouped-return")

    threads = [threading.Thread(target=f, args=(i,)) for i, f in enumerate((holder, grouped))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads), "deadlock between conn= and group commit"
    assert order == ["holder-commit", "grouped-return"]
    assert [e.user for e in log.iter_events()] == ["holder", "grouped"]
    assert log.verify().ok


def test_a_failed_batch_acknowledges_nobody_and_the_group_recovers(db: Database) -> None:
    """A real trigger refuses one user's events: every caller either got an event that is in
    the file or an exception for one that is not; later appends still work."""
    with db.transaction() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_events WHEN NEW.user = 'refused' "
            "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
        )
    log = AuditLog(db)
    acked: list[StoredEvent] = []
    failed: list[str] = []
    lock = threading.Lock()

    def write(w: int) -> None:
        for n in range(10):
            user = "refused" if (w == 0 and n % 3 == 0) else f"w{w}"
            try:
                event = log.append(_event(user, n))
            except IntegrityError as exc:  # the batch's error, reported to each caller
                with lock:
                    failed.append(str(exc))
                continue
            with lock:
                acked.append(event)

    _run_threads(4, write)
    assert failed
    assert all("refused by test trigger" in f for f in failed)
    stored = _rows(db)
    assert {e.index: (e.event_id, e.hash, e.user) for e in acked} == stored
    assert all(user != "refused" for _, _, user in stored.values())
    assert log.verify().ok
    assert log.append(_event("after")).index == len(stored)


def test_group_commit_hands_results_back_in_order_and_never_splits_a_request() -> None:
    seen: list[list[int]] = []
    seen_lock = threading.Lock()

    def commit(payloads: Sequence[list[int]]) -> list[int]:
        time.sleep(0.005)  # like an fsync: the GIL is free, others queue up meanwhile
        with seen_lock:
            seen.append([len(p) for p in payloads])
        return [sum(p) for p in payloads]

    group: GroupCommit[list[int], int] = GroupCommit(commit, max_items=10)
    results: dict[tuple[int, int], int] = {}

    def submit(w: int) -> None:
        for n in range(20):
            payload = [w, n] if n != 7 else [w] * 25  # one request larger than max_items
            results[(w, n)] = group.submit(payload, size=len(payload))

    _run_threads(6, submit)
    for (w, n), value in results.items():
        assert value == (w + n if n != 7 else 25 * w)
    assert sum(sum(b) for b in seen) == 6 * (19 * 2 + 25)
    assert any(len(b) > 1 for b in seen), "nothing was batched"
    assert all(sum(b) <= 10 or len(b) == 1 for b in seen), "a batch exceeded max_items"
    assert group.batches == len(seen)


def test_every_pooled_connection_keeps_full_durability(db: Database) -> None:
    """synchronous=FULL, WAL and the autocheckpoint hold on the connections appends use."""
    log = AuditLog(db)
    log.append(_event("x"))
    raw = db.engine.raw_connection()  # the group-commit path's kind of connection
    try:
        pragmas = [
            raw.cursor().execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("journal_mode", "synchronous", "wal_autocheckpoint")
        ]
    finally:
        raw.close()
    assert pragmas == ["wal", 2, WAL_AUTOCHECKPOINT_PAGES]  # 2 = FULL


def test_outbox_hands_group_committed_events_to_sync_in_chain_order(db: Database) -> None:
    """One batch queues its events with the same created_at; the backend only accepts audit
    events in chain order, so the outbox must give them back in insertion order."""
    log = AuditLog(db)
    log.append(_event("first"))
    log.append_many([_event("import", n) for n in range(40)])

    def write(w: int) -> None:
        for n in range(10):
            log.append(_event(f"w{w}", n))

    _run_threads(4, write)
    items = [i for i in StoreOutbox(db).fetch_unsent(1000) if i.kind == "audit"]
    assert [i.payload["index"] for i in items] == list(range(81))
    assert all(b.payload["prev_hash"] == a.payload["hash"] for a, b in itertools.pairwise(items))


PROCESS_WRITER = """
import sys, threading
from pathlib import Path
from core.audit.log import AuditEvent, AuditLog
from core.audit.vocabulary import EventType
from core.store.database import open_database
db = open_database(Path(sys.argv[1]))
log = AuditLog(db)
def write(w):
    for n in range(30):
        log.append(AuditEvent(EventType.QUERY, user=f"{sys.argv[2]}-{w}", details={"n": n}))
threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
db.close()
"""


def test_group_commits_of_two_processes_interleave_into_one_chain(db: Database) -> None:
    """BEGIN IMMEDIATE still serialises group commits across processes: one linear chain."""
    procs = [
        subprocess.Popen([sys.executable, "-c", PROCESS_WRITER, str(db.path), name])
        for name in ("proc-a", "proc-b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    log = AuditLog(db)
    assert log.verify().ok
    users = [e.user for e in log.iter_events()]
    assert len(users) == 180
    for name in ("proc-a", "proc-b"):
        for w in range(3):
            assert users.count(f"{name}-{w}") == 30


def test_details_are_hashed_as_they_will_be_read_back(db: Database) -> None:
    """Tuples and non-string keys are stored as JSON lists / string keys; the chain hashes that
    stored form, so the event verifies after a reload."""
    log = AuditLog(db)
    stored = log.append(AuditEvent(EventType.QUERY, "u", details={"window": (40, 400), 3: "x"}))
    assert stored.details == {"window": [40, 400], "3": "x"}
    assert next(log.iter_events()).details == stored.details
    assert log.verify().ok
