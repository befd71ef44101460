"""Per-device rate limiting answers 429 with Retry-After, and other devices are unaffected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backend.conftest import LiveServer, base_settings


@pytest.fixture
def strict_server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(
        base_settings(tmp_path / "b", rate_per_s=0.5, rate_burst=5), with_keys=False
    ).start()
    yield live
    live.stop()


def test_429_with_retry_after(strict_server: LiveServer) -> None:
    a = strict_server.workstation("a")  # enrol + token use the address bucket: 2 of 5
    codes = [a.http.get("/models").status_code for _ in range(8)]
    assert codes[:5] == [200] * 5
    assert codes[-1] == 429
    r = a.http.get("/models")
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 2
    # the limit is per device: another workstation still gets through
    b = strict_server.workstation("b")
    assert b.http.get("/models").status_code == 200
