"""Issue 15, hole 3: the chain is a keyed MAC. Someone who can open the database (its key) but
does not hold the chain key can no longer rewrite an event and re-chain the rest: each attack
here passed ``audit verify``'s chain check when the chain was plain SHA-256."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

import keyring
import pytest
import sqlcipher3

import cli
from core.audit.chain import GENESIS_HASH, chain_hash
from core.audit.events import SYSTEM, event
from core.audit.head_record import forget_head
from core.audit.log import AuditLog, StoredEvent
from core.audit.vocabulary import EventType
from core.store.database import open_database
from core.store.errors import KeyringUnavailableError
from core.store.keys import SERVICE, chain_key_entry, get_or_create_key


def _trail(db_path: Path, n: int, first: int = 0) -> list[StoredEvent]:
    db = open_database(db_path)
    log = AuditLog(db)
    for i in range(first, first + n):
        log.append(event(EventType.APPLICATION_ACTIVITY, SYSTEM, action=f"e{i}"))
    events = list(log.iter_events())
    db.close()
    return events


def _raw(db_path: Path) -> sqlcipher3.Connection:
    """The attacker's view: the database key (e.g. a copy taken with it), nothing else."""
    con = sqlcipher3.connect(str(db_path), isolation_level=None)
    con.execute(f"PRAGMA key = \"x'{get_or_create_key(db_path)}'\"")
    return con


def _rechain(db_path: Path, events: list[StoredEvent], at: int, link: object) -> None:
    """Rewrite event ``at`` and re-link every later one with ``link(prev, content)``."""
    con = _raw(db_path)
    prev = events[at - 1].hash if at else GENESIS_HASH
    for e in events[at:]:
        content = e.content()
        if e.index == at:
            content["details"] = {"action": "nothing to see"}
        new = link(prev, content)  # type: ignore[operator]
        con.execute(
            "UPDATE audit_events SET details = ?, prev_hash = ?, hash = ? WHERE idx = ?",
            (json.dumps(content["details"]), prev, new, e.index),
        )
        prev = new
    con.close()


def _check(db_path: Path) -> str:
    db = open_database(db_path)
    try:
        return AuditLog(db).check().chain_line()
    finally:
        db.close()


def test_rewritten_and_rechained_with_sha256_is_named_at_its_index(db_path: Path) -> None:
    events = _trail(db_path, 8)
    _rechain(db_path, events, 3, chain_hash)  # the SHA-256 re-chain that used to pass
    line = _check(db_path)
    assert "TAMPERED at index 3" in line
    assert "re-chained without the key" in line


def test_rechained_with_a_key_of_the_attackers_own_is_named(db_path: Path) -> None:
    events = _trail(db_path, 6)
    own = secrets.token_bytes(32)
    _rechain(db_path, events, 2, lambda prev, content: chain_hash(prev, content, own))
    assert "TAMPERED at index 2" in _check(db_path)


def test_rechained_without_the_head_record_either_is_still_named(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Even with the head record and its key gone (the second line), the chain names it."""
    events = _trail(db_path, 5)
    _rechain(db_path, events, 1, chain_hash)
    forget_head(db_path)
    code = cli.main(["audit", "verify", "--db", str(db_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "TAMPERED at index 1" in err


def test_a_trail_from_before_keyed_chains_is_keyed_from_its_next_event(db_path: Path) -> None:
    """An older trail (plain SHA-256 links) keeps verifying; new events are keyed, and a
    re-chain of those is caught; a re-chain of the old part breaks the first keyed link."""
    events = _trail(db_path, 4)
    # make it an old trail: SHA-256 links, no chain key in the keyring
    _rechain_all_sha256(db_path, events)
    keyring.delete_password(SERVICE, chain_key_entry(db_path))
    forget_head(db_path)
    events = _trail(db_path, 3, first=4)
    stored = keyring.get_password(SERVICE, chain_key_entry(db_path))
    assert stored is not None
    assert stored.startswith("1:4:")  # keyed from index 4 on
    assert _check(db_path).startswith("hash chain: ok (7 events")
    key = bytes.fromhex(stored.split(":")[2])
    assert (
        events[3].hash
        == hashlib.sha256((events[2].hash + _canonical(events[3].content())).encode()).hexdigest()
    )  # the old part as it was
    assert events[4].hash != chain_hash(events[3].hash, events[4].content())
    assert events[4].hash == chain_hash(events[3].hash, events[4].content(), key)
    # the old part rewritten and re-chained with SHA-256: the first keyed event no longer links
    _rechain(db_path, events[:4], 1, chain_hash)
    assert "TAMPERED at index 4" in _check(db_path)


def test_a_damaged_chain_key_entry_is_a_clear_refusal(db_path: Path) -> None:
    _trail(db_path, 2)
    keyring.set_password(SERVICE, chain_key_entry(db_path), "not a key")
    db = open_database(db_path)
    try:
        with pytest.raises(KeyringUnavailableError, match="is not an audit chain key"):
            AuditLog(db)
    finally:
        db.close()


def _canonical(content: dict[str, object]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _rechain_all_sha256(db_path: Path, events: list[StoredEvent]) -> None:
    con = _raw(db_path)
    prev = GENESIS_HASH
    for e in events:
        new = chain_hash(prev, e.content())
        con.execute(
            "UPDATE audit_events SET prev_hash = ?, hash = ? WHERE idx = ?", (prev, new, e.index)
        )
        prev = new
    con.close()


def test_two_openers_of_a_new_trail_chain_with_one_key(db_path: Path) -> None:
    """Two processes (here: two Database instances) open a new trail at the same moment:
    one makes the key under the write lock, the other reads it; every event verifies."""
    import threading

    open_database(db_path).close()  # the file exists, no chain key yet
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            db = open_database(db_path)
            barrier.wait()
            log = AuditLog(db)
            for i in range(5):
                log.append(event(EventType.APPLICATION_ACTIVITY, SYSTEM, action=f"w{n}-{i}"))
            db.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _check(db_path) == "hash chain: ok (20 events, chain intact)"
