"""Status report times come from the workstation's clock, so the server clamps them to its own
now (issue 19 review): a report dated in the future must not block every later report, and a
last sync in the future must not hide a device that stops syncing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.sync.status_report import STATUS_URL
from core.sync.wire import API_PREFIX
from tests.backend.conftest import Workstation, base_settings
from tests.backend.fleet_serve import FleetServer


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    srv = FleetServer(base_settings(tmp_path_factory.mktemp("fleet-clock")), with_keys=False)
    srv.start()
    yield srv
    srv.stop()


def _status(ws: Workstation, **fields: object) -> None:
    body = {"app_version": "1.4.2", "os": "Windows-11", "queue_length": 3, "models": {}}
    r = ws.http.post(STATUS_URL.removeprefix(API_PREFIX), json={**body, **fields})
    assert r.status_code == 204, r.text


def _row(live: FleetServer, ws: Workstation, **params: Any) -> dict[str, Any] | None:
    r = httpx.get(
        f"{live.api}/admin/devices",
        params={"q": ws.device_id, **params},
        headers=live.admin_headers(),
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    return items[0] if items else None


def test_a_report_dated_in_the_future_does_not_block_later_reports(live: FleetServer) -> None:
    ws = live.workstation("future-report")
    try:
        before = datetime.now(UTC)
        future = (before + timedelta(days=365)).isoformat()  # a clock a year ahead
        _status(ws, queue_length=7, reported_at=future)
        row = _row(live, ws)
        assert row is not None
        reported = datetime.fromisoformat(row["reported_at"])
        assert before <= reported <= datetime.now(UTC)  # stored as the server's now
        _status(ws, queue_length=1)  # the clock fixed: reported now
        row = _row(live, ws)
        assert row is not None
        assert row["queue_length"] == 1  # before the fix: still 7, for a year
    finally:
        ws.close()


def test_a_last_sync_in_the_future_does_not_hide_a_stale_device(live: FleetServer) -> None:
    ws = live.workstation("future-sync")
    try:
        before = datetime.now(UTC)
        far = (before + timedelta(days=30)).isoformat()
        _status(ws, last_sync_at=far, reported_at=far)
        row = _row(live, ws)
        assert row is not None
        last_sync = datetime.fromisoformat(row["last_sync_at"])
        assert before <= last_sync <= datetime.now(UTC)  # before the fix: 30 days ahead
        reported_sync = datetime.fromisoformat(row["reported_sync_at"])
        assert reported_sync <= datetime.fromisoformat(row["reported_at"])
        # an hour later by the server's clock, the device has not synced for an hour: the list
        # sorted by last sync puts it before one that synced a minute ago
        other = live.workstation("future-sync-fresh")
        try:
            _status(other, last_sync_at=datetime.now(UTC).isoformat())
            r = httpx.get(
                f"{live.api}/admin/devices",
                params={"q": "future-sync", "sort": "last_sync_at", "order": "asc"},
                headers=live.admin_headers(),
            )
            labels = [d["label"] for d in r.json()["items"]]
            assert labels == ["future-sync", "future-sync-fresh"], labels
        finally:
            other.close()
    finally:
        ws.close()


def test_times_without_a_zone_are_read_as_utc(live: FleetServer) -> None:
    """A naive time (the wire schema accepts one) is UTC, not a server error."""
    ws = live.workstation("naive-times")
    try:
        naive = (datetime.now(UTC) - timedelta(minutes=5)).replace(tzinfo=None)
        _status(ws, queue_length=2, reported_at=naive.isoformat(), last_sync_at=naive.isoformat())
        row = _row(live, ws)
        assert row is not None
        assert datetime.fromisoformat(row["reported_sync_at"]) == naive.replace(tzinfo=UTC)
        _status(ws, queue_length=4, reported_at=naive.isoformat())  # compared with the stored
        row = _row(live, ws)
        assert row is not None
        assert row["queue_length"] == 4
    finally:
        ws.close()
