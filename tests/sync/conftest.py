"""Sync tests: a live backend on 127.0.0.1, the OS keyring pointed at a temp folder, and the
workstation's own encrypted store (SQLCipher) holding the outbox the engine drains."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.audit.log import AuditEvent, AuditLog, AuditObject
from core.audit.vocabulary import EventType
from core.store.database import Database, open_database
from core.store.outbox import StoreOutbox, enqueue_many
from core.store.schema import outbox as outbox_table
from core.sync.client import SyncClient
from core.sync.credentials import CredentialStore
from tests.backend.conftest import LiveServer, base_settings
from tests.sync.faultproxy import FaultProxy


@pytest.fixture(autouse=True)
def _keyring_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """keyrings.alt's plaintext file backend, chosen explicitly, its file under tmp_path."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    import keyring.core

    keyring.core._keyring_backend = None  # re-read the backend from the environment


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(base_settings(tmp_path_factory.mktemp("backend"))).start()
    yield live
    live.stop()


@pytest.fixture
def proxy(server: LiveServer) -> Iterator[FaultProxy]:
    p = FaultProxy(server.url)
    yield p
    p.close()


def enrolled_client(
    server: LiveServer, url: str | None = None, timeout: float = 10.0
) -> SyncClient:
    client = SyncClient(url or server.url, CredentialStore(url or server.url), timeout=timeout)
    client.enrol(server.enrol_code(), label="test-ws")
    return client


@dataclass
class LocalStore:
    """A workstation's encrypted database as production opens it (core.store.open_database),
    its audit trail, and the outbox the sync engine drains (core.store.outbox.StoreOutbox)."""

    db: Database
    audit: AuditLog
    outbox: StoreOutbox

    @classmethod
    def open(cls, path: Path) -> LocalStore:
        db = open_database(path)
        return cls(db, AuditLog(db), StoreOutbox(db))

    def close(self) -> None:
        self.db.close()

    def last_error(self, item_id: str) -> str | None:
        with self.db.engine.connect() as conn:
            return conn.execute(
                select(outbox_table.c.last_error).where(outbox_table.c.id == item_id)
            ).scalar_one_or_none()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    opened = LocalStore.open(tmp_path / "workstation.db")
    yield opened
    opened.close()


def result_payload(i: int = 0) -> dict[str, Any]:
    """A result in the wire's ResultItem form, as core.results.upstream.result_item builds it."""
    return {
        "client_id": uuid.uuid4().hex,
        "created_at": datetime.now(UTC).isoformat(),
        "model_id": "chest-xray-pneumonia",
        "model_version": "1.0.0",
        "decision": ("accepted", "rejected", "none")[i % 3],
        "latency_ms": 50.0 + i % 100,
        "summary": {"label": "pneumonia", "score": round((i % 97) / 97, 3)},
    }


def viewed(i: int = 0) -> AuditEvent:
    return AuditEvent(
        EventType.INSTANCES_ACCESSED,
        user="dr-test",
        role="radiologist",
        objects=[AuditObject("study", f"1.2.826.0.1.3680043.8.498.{i}")],
        details={"n": i},
    )


#: Items of each kind written together: a working session interleaves results and events.
CHUNK = 50


def queue(store: LocalStore, n_results: int, n_events: int) -> None:
    """Queue results and audit events in the encrypted outbox through the store's own batch
    APIs, in one transaction: results with core.store.outbox.enqueue_many, audit events with
    AuditLog.append_many (which chains them and queues their wire form), interleaved."""
    with store.db.transaction() as conn:
        for start in range(0, max(n_results, n_events), CHUNK):
            results = range(start, min(start + CHUNK, n_results))
            enqueue_many(conn, "result", [(str(uuid.uuid4()), result_payload(i)) for i in results])
            events = range(start, min(start + CHUNK, n_events))
            if events:
                store.audit.append_many([viewed(i) for i in events], conn=conn)
