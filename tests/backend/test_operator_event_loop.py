"""The operator page's async handlers never wait on the database on the event loop (issue 19
review): sign-in's rate-limit upsert and the session check of sign-out and revoke (deps.admin
reads BackendAdmin) run in the thread pool. Probe: a PostgreSQL table lock holds the handler's
query; /healthz (served on the event loop) must still answer meanwhile. Before the fix it timed
out, since the whole process (every workstation's sync too) waited with the handler."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.backend import pg
from tests.backend.conftest import base_settings
from tests.backend.fleet_serve import FleetServer
from tests.backend.test_operator import PASSWORD, csrf_of, make_admin

_pg_reason = pg.unavailable_reason()
pytestmark = pytest.mark.skipif(_pg_reason is not None, reason=_pg_reason or "")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    with pg.postgres_server() as url:
        data: Path = tmp_path_factory.mktemp("operator-loop")
        srv = FleetServer(base_settings(data, db_url=url), with_keys=False)
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


def _probe_while_locked(live: FleetServer, table: str, request: Callable[[], object]) -> float:
    """Lock ``table``, start ``request`` in a thread, then time a /healthz answer."""
    engine = create_engine(str(live.settings.db_url))
    conn = engine.connect()
    try:
        conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        worker = threading.Thread(target=request, daemon=True)
        worker.start()
        time.sleep(0.7)  # the handler is now waiting for the lock
        start = time.monotonic()
        try:
            httpx.get(f"{live.url}/healthz", timeout=3).raise_for_status()
            answered = time.monotonic() - start
        except httpx.TimeoutException:
            answered = float("inf")
    finally:
        conn.rollback()  # releases the lock; the handler finishes
        conn.close()
        engine.dispose()
    worker.join(15)
    assert not worker.is_alive()
    return answered


def test_sign_in_rate_limit_waits_off_the_event_loop(live: FleetServer) -> None:
    totp = make_admin(live, "loop-sign-in")
    with httpx.Client(timeout=30) as http:
        form = http.get(f"{live.url}/operator/sign-in")
        body = {"csrf": csrf_of(form.text), "name": "loop-sign-in", "password": PASSWORD}
        body["code"] = totp.now()
        results: list[int] = []

        def post() -> None:
            results.append(http.post(f"{live.url}/operator/sign-in", data=body).status_code)

        answered = _probe_while_locked(live, "rate_buckets", post)
    assert answered < 1.0, f"/healthz waited {answered:.2f} s behind the sign-in's rate limit"
    assert results == [303]


@pytest.mark.parametrize("action", ["sign-out", "revoke"])
def test_session_check_waits_off_the_event_loop(live: FleetServer, action: str) -> None:
    make_admin(live, f"loop-{action}")
    token = live.state.tokens.access(f"loop-{action}", role="admin", amr=["pwd", "otp"])
    path = "/operator/sign-out" if action == "sign-out" else "/operator/devices/none/revoke"
    results: list[int] = []

    def post() -> None:
        with httpx.Client(cookies={"doctorai_operator": token}, timeout=30) as http:
            results.append(http.post(live.url + path, data={"csrf": "0" * 64}).status_code)

    answered = _probe_while_locked(live, "backend_admins", post)
    assert answered < 1.0, f"/healthz waited {answered:.2f} s behind the {action} session check"
    assert results == [303] if action == "sign-out" else results == [403]
