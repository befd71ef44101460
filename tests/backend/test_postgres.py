"""The same flows against a real PostgreSQL server started by the test (skipped without one)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tuf.ngclient import Updater

from backend.catalogue import add_model
from backend.db import AuditEvent, Result, SecurityAlert
from core.sync.tuf_fetch import HttpxFetcher
from tests.backend import pg
from tests.backend.conftest import LiveServer, base_settings, make_package, result_item

_reason = pg.unavailable_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with pg.postgres_server() as url:
        live = LiveServer(base_settings(tmp_path_factory.mktemp("pg"), db_url=url)).start()
        assert live.state.engine.dialect.name == "postgresql"
        yield live
        live.stop()


def test_sync_flow_on_postgres(pg_server: LiveServer) -> None:
    ws = pg_server.workstation()
    items = [result_item() for _ in range(50)]
    first = ws.post("/results:batch", {"items": items}, key="pg-1")
    assert first.status_code == 200
    assert ws.post("/results:batch", {"items": items}, key="pg-1").content == first.content
    assert ws.post("/results:batch", {"items": items[:10]}).json()["duplicates"] == [
        i["client_id"] for i in items[:10]
    ]

    # the same new batch from several threads at once, under different keys: stored once
    extra = [result_item() for _ in range(30)]
    codes: list[int] = []

    def send() -> None:
        codes.append(ws.post("/results:batch", {"items": extra}).status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(codes) <= {200, 409}
    assert 200 in codes

    ws.post("/audit-events:batch", {"events": ws.make_events(5)}).raise_for_status()
    ws.chain = ws.chain[:3]
    r = ws.post("/audit-events:batch", {"events": ws.make_events(1)})
    assert r.status_code == 409
    with pg_server.state.sessions() as s:
        assert s.query(Result).filter_by(device_id=ws.device_id).count() == 80
        assert s.query(AuditEvent).filter_by(device_id=ws.device_id).count() == 5
        assert s.query(SecurityAlert).filter_by(device_id=ws.device_id).count() == 1


def test_tuf_on_postgres(pg_server: LiveServer, tmp_path: Path) -> None:
    with pg_server.state.sessions() as s:
        pkg = add_model(s, pg_server.state.repo, make_package(tmp_path, "pg-model", "1.0"))
        root = pg_server.state.repo.get(s, "root", 1)
    assert root is not None
    (tmp_path / "m").mkdir()
    ws = pg_server.workstation("pg-tuf")  # targets are served to enrolled workstations only
    with httpx.Client(timeout=30) as http:
        up = Updater(
            str(tmp_path / "m"),
            f"{pg_server.url}/tuf/metadata/",
            str(tmp_path),
            f"{pg_server.url}/tuf/targets/",
            fetcher=HttpxFetcher(http, lambda _renew: str(ws.tokens["access_token"])),
            bootstrap=root,
        )
        up.refresh()
        info = up.get_targetinfo(pkg.target_path)
        assert info is not None
        got = Path(up.download_target(info)).read_bytes()
        assert hashlib.sha256(got).hexdigest() == pkg.sha256
        # the device's token is checked on PostgreSQL too: without one, no package
        assert http.get(f"{pg_server.url}/tuf/targets/{pkg.target_path}").status_code == 401
    ws.close()
