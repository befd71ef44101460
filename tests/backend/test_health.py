"""Liveness and readiness are separate (issue 19 review): /healthz is what ECS and the ALB check,
so it must stay 200 while the process serves, even when the shared database is down; otherwise
an RDS fail-over makes every task fail at once and ECS replaces them all in a loop. /readyz
reports the fleet-wide conditions (database, timestamp.json expiry)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backend import pg
from tests.backend.conftest import LiveServer, base_settings
from tests.backend.test_timestamp_resign import _stop_postgres

_pg_reason = pg.unavailable_reason()
needs_pg = pytest.mark.skipif(_pg_reason is not None, reason=_pg_reason or "")


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg.postgres_server() as url:
        yield url


@needs_pg
def test_database_outage_fails_readiness_not_liveness(pg_url: str, tmp_path: Path) -> None:
    live = LiveServer(base_settings(tmp_path / "data", db_url=pg_url)).start()
    try:
        assert httpx.get(f"{live.url}/healthz").status_code == 200
        prefix, start = _stop_postgres(pg_url)
        try:
            alive = httpx.get(f"{live.url}/healthz", timeout=10)
            assert alive.status_code == 200, alive.text  # before the fix: 503, task replaced
            assert alive.json() == {"status": "ok"}
            ready = httpx.get(f"{live.url}/readyz", timeout=30)
            assert ready.status_code == 503, ready.text
            body = ready.json()
            assert body["status"] == "unready"
            assert any("database unreachable" in r for r in body["reasons"]), body
        finally:
            subprocess.run([*prefix, *start], check=True, capture_output=True, timeout=60)
        again = httpx.get(f"{live.url}/readyz", timeout=30)
        assert again.status_code == 200, again.text
    finally:
        live.stop()


def test_readyz_is_ok_on_a_fresh_backend(tmp_path: Path) -> None:
    """A fresh backend (SQLite, freshly signed timestamp.json) is ready and alive."""
    live = LiveServer(base_settings(tmp_path / "data")).start()
    try:
        for path in ("/healthz", "/readyz"):
            r = httpx.get(live.url + path)
            assert (r.status_code, r.json()) == (200, {"status": "ok"}), path
    finally:
        live.stop()
