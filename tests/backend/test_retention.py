"""Defect 7: retention. Rows past their horizon are deleted, newer ones kept, a replay within
the horizon is still answered with the same bytes, one process purges at a time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from backend.app import build_state
from backend.db import (
    Device,
    EnrolCode,
    Enrolment,
    IdempotencyRecord,
    RateBucket,
    RefreshToken,
    Result,
    RevokedRefreshFamily,
)
from backend.ops import purge_dead_metric_files
from backend.retention import PURGE_LOCK_KEY, purge, purge_once
from tests.backend import pg
from tests.backend.conftest import LiveServer, base_settings, result_item
from tests.backend.served import REPO, SECRET, backend_env

_pg_reason = pg.unavailable_reason()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(base_settings(tmp_path / "b"), with_keys=False).start()
    yield server
    server.stop()


def _seed_auth_rows(live: LiveServer, device_id: str, now: datetime) -> None:
    day = timedelta(days=1)
    with live.state.sessions() as s:
        s.add_all(
            [
                RefreshToken(jti="expired-long-ago", device_id=device_id, expires_at=now - 8 * day),
                RefreshToken(
                    jti="used-expired-lately", device_id=device_id, expires_at=now - day, used=True
                ),
                RefreshToken(
                    jti="used-valid", device_id=device_id, expires_at=now + day, used=True
                ),
                RevokedRefreshFamily(
                    family="old-family", device_id=device_id, revoked_at=now - 40 * day
                ),
                RevokedRefreshFamily(
                    family="new-family", device_id=device_id, revoked_at=now - 2 * day
                ),
                EnrolCode(code_hash="a" * 64, expires_at=now - 8 * day),
                EnrolCode(code_hash="b" * 64, expires_at=now + 5 * day, used_at=now - 8 * day),
                EnrolCode(code_hash="c" * 64, expires_at=now + 5 * day, used_at=now - 1 * day),
                EnrolCode(code_hash="d" * 64, expires_at=now + 5 * day),
                # a use of code a (purged) and of code d: both uses stay (which code enrolled
                # which device is part of the record)
                Enrolment(code_hash="a" * 64, nonce_hash="1" * 64, device_id="gone"),
                Enrolment(code_hash="d" * 64, nonce_hash="2" * 64, device_id="kept"),
                RateBucket(key="addr:idle", tokens=1.0, stamp=now.timestamp() - 7200, allowed=True),
                RateBucket(key="addr:busy", tokens=1.0, stamp=now.timestamp() - 60, allowed=True),
            ]
        )
        s.commit()


def test_purge_deletes_past_the_horizon_and_keeps_the_rest(live: LiveServer) -> None:
    ws = live.workstation("retention")
    old_body = {"items": [result_item()]}
    new_body = {"items": [result_item(), result_item()]}
    first_old = ws.post("/results:batch", old_body, key="batch-old")
    first_new = ws.post("/results:batch", new_body, key="batch-new")
    assert first_old.status_code == first_new.status_code == 200
    now = datetime.now(UTC)
    with live.state.sessions() as s:  # the old batch arrived 31 days ago
        s.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == "batch-old")
            .values(created_at=now - timedelta(days=31))
        )
        s.commit()
    _seed_auth_rows(live, ws.device_id, now)
    with live.state.sessions() as s:
        tokens_before = s.scalar(select(func.count()).select_from(RefreshToken)) or 0

    with live.state.sessions() as s:
        counts = purge(s, now, live.state.settings)  # defaults: 30 days, 7 days grace, 1 h
        s.commit()
    assert counts == {
        "idempotency": 1,
        "refresh_tokens": 1,
        "revoked_refresh_families": 1,
        "enrol_codes": 2,
        "rate_buckets": 1,
        "metric_files": 0,
    }
    with live.state.sessions() as s:
        assert s.scalars(select(IdempotencyRecord.key)).all() == ["batch-new"]
        assert s.scalar(select(func.count()).select_from(RefreshToken)) == tokens_before - 1
        assert s.get(RefreshToken, "used-expired-lately") is not None  # reuse still detected
        assert s.get(RevokedRefreshFamily, "new-family") is not None
        codes = set(s.scalars(select(EnrolCode.code_hash)).all())
        assert {"c" * 64, "d" * 64} <= codes
        assert not {"a" * 64, "b" * 64} & codes
        uses = set(s.scalars(select(Enrolment.device_id)).all())
        assert {"kept", "gone"} <= uses  # enrolments are never purged, not even with the code
        buckets = set(s.scalars(select(RateBucket.key)).all())
        assert "addr:busy" in buckets
        assert "addr:idle" not in buckets
        assert s.get(Device, ws.device_id) is not None
        results_before = s.scalar(select(func.count()).select_from(Result))

    # within the horizon: the same bytes again
    replay = ws.post("/results:batch", new_body, key="batch-new")
    assert (replay.status_code, replay.content) == (first_new.status_code, first_new.content)
    # past it: stored again as a new batch, whose items are still only duplicates
    late = ws.post("/results:batch", old_body, key="batch-old")
    assert late.status_code == 200
    with live.state.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Result)) == results_before == 3
    # the workstation still works: its live refresh token rotates
    assert (
        ws.http.post(
            "/token/refresh", json={"refresh_token": ws.tokens["refresh_token"]}
        ).status_code
        == 200
    )
    ws.close()


def test_metric_files_of_dead_processes_are_removed_when_idle(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    old = time.time() - 2 * 86400
    files = {
        "dead_old": tmp_path / f"counter_{dead_pid}.db",
        "dead_new": tmp_path / f"histogram_{dead_pid}.db",
        "alive_old": tmp_path / f"counter_{os.getpid()}.db",
    }
    for f in files.values():
        f.write_bytes(b"\0" * 16)
    os.utime(files["dead_old"], (old, old))
    os.utime(files["alive_old"], (old, old))
    assert purge_dead_metric_files(tmp_path, idle_s=86400) == 1
    assert not files["dead_old"].exists()
    assert files["dead_new"].exists()  # recent: maybe not scraped since
    assert files["alive_old"].exists()  # its process still counts into it


@pytest.mark.skipif(_pg_reason is not None, reason=_pg_reason or "")
def test_one_process_purges_at_a_time_on_postgres(tmp_path: Path) -> None:
    with pg.postgres_server() as url:
        st = build_state(base_settings(tmp_path, db_url=url))
        with st.engine.connect() as other:  # another process's purge holds the lock
            other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PURGE_LOCK_KEY})
            assert purge_once(st, datetime.now(UTC)) is None
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PURGE_LOCK_KEY})
        counts = purge_once(st, datetime.now(UTC))
        assert counts is not None
        assert counts["idempotency"] == 0
        st.engine.dispose()


def test_purge_command(tmp_path: Path) -> None:
    env = backend_env(DOCTORAI_BACKEND_JWT_SECRET=SECRET, DOCTORAI_BACKEND_IDEMPOTENCY_DAYS="0")
    run = subprocess.run(
        [sys.executable, "-m", "backend", "purge", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [
        "idempotency=0",
        "refresh_tokens=0",
        "revoked_refresh_families=0",
        "enrol_codes=0",
        "rate_buckets=0",
        "metric_files=0",
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "backend", "purge", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**env, "DOCTORAI_BACKEND_IDEMPOTENCY_DAYS": "soon"},
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0
    assert "DOCTORAI_BACKEND_IDEMPOTENCY_DAYS='soon' is not a number" in bad.stderr


def test_the_app_task_purges_every_period(tmp_path: Path) -> None:
    """purge_periodically (started in the app's lifespan) runs rounds until cancelled."""
    import asyncio
    from dataclasses import replace

    from backend.retention import purge_periodically

    st = build_state(base_settings(tmp_path))
    st.settings = replace(st.settings, purge_every_s=0.05, rate_bucket_idle_s=60.0)
    with st.sessions() as s:
        s.add(RateBucket(key="addr:idle", tokens=1.0, stamp=time.time() - 120, allowed=True))
        s.commit()

    async def run_a_while() -> None:
        task = asyncio.create_task(purge_periodically(st))
        for _ in range(100):
            await asyncio.sleep(0.05)
            with st.sessions() as s:
                if s.get(RateBucket, "addr:idle") is None:
                    break
        task.cancel()

    asyncio.run(run_a_while())
    with st.sessions() as s:
        assert s.get(RateBucket, "addr:idle") is None
    st.engine.dispose()


def test_serve_purges_in_the_background(tmp_path: Path) -> None:
    """``serve`` runs the purge every DOCTORAI_BACKEND_PURGE_EVERY_S in the server itself."""
    from backend.db import make_engine
    from tests.backend.served import serve

    data = tmp_path / "d"
    data.mkdir()
    engine = make_engine(f"sqlite:///{data / 'backend.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO rate_buckets VALUES ('addr:idle', 1.0, :t, TRUE)"),
            {"t": time.time() - 7200},
        )
    env = backend_env(DOCTORAI_BACKEND_JWT_SECRET=SECRET, DOCTORAI_BACKEND_PURGE_EVERY_S="0.3")
    with serve(data, env=env):
        deadline = time.monotonic() + 20
        while True:
            with engine.connect() as conn:
                left = conn.execute(
                    text("SELECT count(*) FROM rate_buckets WHERE key = 'addr:idle'")
                ).scalar()
            if left == 0:
                break
            assert time.monotonic() < deadline, "the server never purged the idle bucket"
            time.sleep(0.2)
    engine.dispose()
