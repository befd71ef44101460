"""A small fleet through a kill -9 (issue 19, performance): workstations with their own encrypted
stores and the project's sync engine drain to two real backend processes on one PostgreSQL; one
backend is killed with SIGKILL mid-run and restarted on its port. Every result and audit event
ends up in the database exactly once, every chain complete, no security alert, nothing unsent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from backend.db import AuditEvent, Device, Result, SecurityAlert
from core.sync.client import SyncClient
from core.sync.credentials import CredentialStore
from core.sync.engine import BackoffPolicy, SyncEngine
from tests.backend import pg
from tests.backend.two_process import ROOT, Fleet, backend_processes

_reason = pg.unavailable_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

WORKSTATIONS, ITEMS = 4, 500


@pytest.fixture(autouse=True)
def _keyring_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """keyrings.alt's plaintext file backend, chosen explicitly, its file under tmp_path."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    import keyring.core

    keyring.core._keyring_backend = None
    yield
    keyring.core._keyring_backend = None


def _restart(fleet: Fleet, i: int, tmp: Path) -> None:
    """Start backend ``i`` again on its port, as an orchestrator replaces a dead task."""
    port = fleet.urls[i].rsplit(":", 1)[1]
    cmd = [sys.executable, "-m", "backend", "serve", "--data-dir", str(tmp / f"p{i}")]
    cmd += ["--db-url", fleet.db_url, "--port", port]
    fleet.procs[i] = subprocess.Popen(
        cmd, cwd=ROOT, env=fleet.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{fleet.urls[i]}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert fleet.procs[i].poll() is None, "the restarted backend exited"
        assert time.monotonic() < deadline, "the restarted backend did not answer in 60 s"
        time.sleep(0.1)


def _stored(fleet: Fleet) -> int:
    with fleet.state.sessions() as s:
        n_results = s.scalar(select(func.count()).select_from(Result)) or 0
        n_events = s.scalar(select(func.count()).select_from(AuditEvent)) or 0
    return n_results + n_events


def test_kill_9_mid_run_loses_nothing(tmp_path: Path) -> None:
    from tests.sync.conftest import LocalStore, queue

    with backend_processes(tmp_path) as fleet:
        stations = []
        for i in range(WORKSTATIONS):
            url = fleet.urls[i % 2]
            client = SyncClient(url, CredentialStore(f"{url}#ws{i}"), timeout=15)
            client.enrol(fleet.enrol_code(), label=f"load-{i}")
            client.access_token()  # logged in before the threads: one keyring file
            store = LocalStore.open(tmp_path / f"ws{i}.db")
            queue(store, ITEMS, ITEMS)
            stations.append((store, client))
        unsent: dict[int, int] = {}

        def drain(k: int) -> None:
            store, client = stations[k]
            policy = BackoffPolicy(base_s=0.1, cap_s=1.0, max_attempts=20)
            engine = SyncEngine(store.outbox, client, batch_size=100, backoff=policy)
            deadline = time.monotonic() + 90
            while store.outbox.count_unsent() and time.monotonic() < deadline:
                if not engine.sync_once().ok:
                    time.sleep(0.3)  # the workstation's scheduler tries again later
            unsent[k] = store.outbox.count_unsent()

        threads = [threading.Thread(target=drain, args=(k,)) for k in range(WORKSTATIONS)]
        for t in threads:
            t.start()
        total = WORKSTATIONS * 2 * ITEMS
        while _stored(fleet) < 0.3 * total:
            assert any(t.is_alive() for t in threads), "the run ended before the kill"
            time.sleep(0.05)
        os.kill(fleet.procs[1].pid, signal.SIGKILL)
        fleet.procs[1].wait()
        killed_at = _stored(fleet)
        _restart(fleet, 1, tmp_path)
        for t in threads:
            t.join(120)
        for store, client in stations:
            client.close()
            store.close()

        assert killed_at < total, "the kill came after everything was stored"
        assert unsent == dict.fromkeys(range(WORKSTATIONS), 0)
        with fleet.state.sessions() as s:
            for dev in s.scalars(select(Device).where(Device.label.like("load-%"))):
                n_results = s.scalar(select(func.count()).where(Result.device_id == dev.device_id))
                n_events = s.scalar(
                    select(func.count()).where(AuditEvent.device_id == dev.device_id)
                )
                assert (n_results, n_events, dev.head_index) == (ITEMS, ITEMS, ITEMS - 1)
            assert s.scalar(select(func.count()).select_from(Result)) == WORKSTATIONS * ITEMS
            assert s.scalar(select(func.count()).select_from(SecurityAlert)) == 0
