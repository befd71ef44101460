"""timestamp.json stays fresh when backend tasks scale out and the database fails over (issue 19,
defect 1): one task re-signs at a time, a failed check is retried instead of ending re-signing,
and /readyz turns red before the timestamp lapses (/healthz, the liveness check, stays 200)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from tuf.api.metadata import Metadata, Timestamp  # type: ignore[attr-defined]

from backend import app as backend_app
from backend.app import build_state
from backend.tuf_repo import TufRepository, init_keys
from tests.backend import pg
from tests.backend.conftest import LiveServer, base_settings

ROOT = Path(__file__).resolve().parents[2]
_pg_reason = pg.unavailable_reason()
needs_pg = pytest.mark.skipif(_pg_reason is not None, reason=_pg_reason or "")


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg.postgres_server() as url:
        yield url


def _timestamp_version(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            v = conn.scalar(text("SELECT max(version) FROM tuf_metadata WHERE role = 'timestamp'"))
    finally:
        engine.dispose()
    return int(v or 0)


def _stop_postgres(url: str) -> tuple[list[str], list[str]]:
    """Stop the cluster behind ``url`` (fast shutdown: every connection is cut); returns the
    commands that start it again with the same options."""
    engine = create_engine(url)
    with engine.connect() as conn:
        data = str(conn.scalar(text("SHOW data_directory")))
    engine.dispose()
    opts = shlex.split(Path(data, "postmaster.opts").read_text())
    bindir = pg.pg_bindir()
    assert bindir is not None
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    start_opts = " ".join(shlex.quote(o) for o in opts[1:] if o != data and o != "-D")
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    log = str(Path(data).parent / "log")
    return prefix, [str(bindir / "pg_ctl"), "-D", data, "-w", "-l", log, "-o", start_opts, "start"]


@needs_pg
def test_two_processes_resigning_at_once_never_collide(pg_url: str, tmp_path: Path) -> None:
    """30 re-signings in each of two processes at the same moment: before the lock, 27 of 30
    concurrent trials hit an IntegrityError on (role, version)."""
    data = tmp_path / "data"
    init_keys(data / "keys")
    st = build_state(base_settings(data, db_url=pg_url))
    with st.sessions() as s:
        st.repo.bootstrap(s)
        s.commit()
    st.engine.dispose()
    first = _timestamp_version(pg_url)
    n = 30
    start_at = time.time() + 8.0  # both processes imported and connected by then
    argv = [sys.executable, "-m", "tests.backend.timestamp_worker", str(data), pg_url]
    procs = [
        subprocess.Popen(
            [*argv, str(n), str(start_at)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [json.loads(p.communicate(timeout=90)[0].strip().splitlines()[-1]) for p in procs]
    assert all(o["late_s"] < 0 for o in outs), f"a worker started late: {outs}"
    errors = [e for o in outs for e in o["errors"]]
    assert errors == [], errors
    versions = [v for o in outs for v in o["versions"]]
    assert len(versions) == 2 * n
    assert sorted(versions) == list(range(first + 1, first + 2 * n + 1))  # no gap, no twin
    for o in outs:  # each process saw its own versions strictly increase
        assert o["versions"] == sorted(set(o["versions"]))
    assert _timestamp_version(pg_url) == first + 2 * n


@needs_pg
def test_resigning_survives_a_database_outage(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL stops for a few seconds (every connection cut, new ones refused): the checks
    in that window fail; once it is back, timestamp.json is re-signed again (before, the first
    non-TUF error ended the loop for good)."""
    monkeypatch.setattr(backend_app, "TIMESTAMP_CHECK_S", 0.2)
    monkeypatch.setattr(backend_app, "TIMESTAMP_RETRY_S", 0.2)
    # a 4 s timestamp is "due" 2 s after signing: the loop re-signs every couple of seconds
    live = LiveServer(base_settings(tmp_path / "data", db_url=pg_url, timestamp_expiry_s=4))
    live.start()
    try:
        deadline = time.monotonic() + 20
        while _timestamp_version(pg_url) < 3:
            assert time.monotonic() < deadline, "the loop never re-signed before the outage"
            time.sleep(0.2)
        prefix, start = _stop_postgres(pg_url)
        time.sleep(3.0)  # several checks fail while the database is down
        subprocess.run([*prefix, *start], check=True, capture_output=True, timeout=60)
        after_outage = _timestamp_version(pg_url)
        deadline = time.monotonic() + 20
        while _timestamp_version(pg_url) < after_outage + 2:
            assert time.monotonic() < deadline, "re-signing did not resume after the outage"
            time.sleep(0.2)
        assert httpx.get(f"{live.url}/readyz", timeout=10).status_code == 200
    finally:
        live.stop()


def test_readyz_turns_red_when_timestamp_is_about_to_expire(tmp_path: Path) -> None:
    """/readyz reports the near expiry; /healthz (what ECS and the ALB check) stays 200, since
    replacing every task would not re-sign anything."""
    live = LiveServer(base_settings(tmp_path / "data")).start()
    try:
        ok = httpx.get(f"{live.url}/readyz")
        assert ok.status_code == 200, ok.text
        with live.state.sessions() as s:  # as if re-signing had stopped a day ago
            live.state.repo.publish_timestamp(s, expires=datetime.now(UTC) + timedelta(minutes=5))
            s.commit()
        red = httpx.get(f"{live.url}/readyz")
        assert red.status_code == 503, red.text
        body = red.json()
        assert body["status"] == "unready"
        assert any("timestamp.json expires" in r for r in body["reasons"]), body
        live_check = httpx.get(f"{live.url}/healthz")
        assert live_check.status_code == 200, live_check.text
        with live.state.sessions() as s:
            live.state.repo.publish_timestamp(s)
            s.commit()
            expires = (
                Metadata[Timestamp]
                .from_bytes(TufRepository.get(s, "timestamp") or b"")
                .signed.expires
            )
        assert expires - datetime.now(UTC) > timedelta(hours=20)
        assert httpx.get(f"{live.url}/readyz").status_code == 200
    finally:
        live.stop()


def test_metrics_export_when_timestamp_expires(tmp_path: Path) -> None:
    """The gauge the expiry alerts in deploy/prometheus read, from the shared database."""
    live = LiveServer(base_settings(tmp_path / "data")).start()
    try:
        with live.state.sessions() as s:
            expires = Metadata[Timestamp].from_bytes(TufRepository.get(s, "timestamp") or b"")
        text_out = httpx.get(f"{live.url}/metrics", headers=live.admin_headers()).text
        line = next(
            ln
            for ln in text_out.splitlines()
            if ln.startswith("doctorai_tuf_timestamp_expiry_timestamp_seconds ")
        )
        assert float(line.split()[1]) == expires.signed.expires.timestamp()
    finally:
        live.stop()
