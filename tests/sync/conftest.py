"""Sync tests: a live backend on 127.0.0.1, the OS keyring pointed at a temp folder, helpers."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.sync.client import SyncClient
from core.sync.credentials import CredentialStore
from core.sync.outbox import Kind, SqliteOutbox
from core.sync.wire import GENESIS_HASH
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


class Chain:
    """A workstation audit chain (sha256 over prev hash + canonical event), as core.audit makes."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def next(self, kind: str = "viewed", **data: Any) -> dict[str, Any]:
        prev = self.events[-1]["hash"] if self.events else GENESIS_HASH
        ev: dict[str, Any] = {
            "event_id": uuid.uuid4().hex,
            "index": len(self.events),
            "prev_hash": prev,
            "created_at": datetime.now(UTC).isoformat(),
            "type": kind,
            "actor": "dr-test",
            "data": data,
        }
        ev["hash"] = hashlib.sha256((prev + json.dumps(ev, sort_keys=True)).encode()).hexdigest()
        self.events.append(ev)
        return ev


def result_payload(i: int = 0) -> dict[str, Any]:
    return {
        "client_id": uuid.uuid4().hex,
        "created_at": datetime.now(UTC).isoformat(),
        "model_id": "chest-xray-pneumonia",
        "model_version": "1.0.0",
        "decision": ("accepted", "rejected", "none")[i % 3],
        "latency_ms": 50.0 + i % 100,
        "summary": {"label": "pneumonia", "score": round((i % 97) / 97, 3)},
    }


def queue(outbox: SqliteOutbox, chain: Chain, n_results: int, n_events: int) -> None:
    """Interleave results and audit events in the outbox, as a working session would."""
    rows: list[tuple[Kind, dict[str, Any], str]] = []
    for i in range(max(n_results, n_events)):
        if i < n_results:
            rows.append(("result", result_payload(i), str(uuid.uuid4())))
        if i < n_events:
            rows.append(("audit", chain.next(n=i), str(uuid.uuid4())))
    outbox.add_many(rows)
