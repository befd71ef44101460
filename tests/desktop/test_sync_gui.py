"""Sync in the workstation window, against a real backend on 127.0.0.1 and a real encrypted
workstation database: a result accepted in the AI panel reaches the server, the GUI thread
never stalls while 2,000 items go, the last sync survives a restart, a restored older database
raises a Security Alert the user sees, and an unreachable or unconfigured server is explained."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QMainWindow

from backend.local import LocalBackend, start_local_backend
from core.app.results import StoredResults
from core.app.workstation import Workstation
from core.audit.events import SYSTEM_USER
from core.audit.log import AuditEvent
from core.audit.vocabulary import EventType
from core.config import Settings, SyncSettings
from core.security.users import Role
from core.store.outbox import StoreOutbox
from core.sync.credentials import CredentialStore
from core.sync.engine import BackoffPolicy
from desktop.sync_worker import install_sync, load_last_success
from tests.backend.conftest import LiveServer, base_settings
from tests.desktop.helpers import open_for_ai

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
PASSWORD = "correct horse battery"
FAST = BackoffPolicy(base_s=0.05, cap_s=0.2, max_attempts=2)
# The window must never freeze: a sync pass on the GUI thread would stop it for seconds
# (2,000 items). The longest single gap also takes in the OS preempting this process on a
# loaded 2-core machine (51 ms seen with a second test run beside it), so the worst gap has a
# freeze's bound and the 99th percentile the p99 goal.
MAX_STALL_S = 0.100
P99_STALL_S = 0.030


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(base_settings(tmp_path_factory.mktemp("backend"))).start()
    yield live
    live.stop()


class RemoteServer(LocalBackend):
    """The backend in a process of its own, as in production: its threads do not share the
    workstation's interpreter (and GIL), so the stall measured is the workstation's alone."""

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with closing(sqlite3.connect(self.data_dir / "backend.sqlite3")) as con:
            return con.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteServer]:
    local = start_local_backend(tmp_path_factory.mktemp("remote-backend"))
    server = RemoteServer(local.url, local.data_dir, local.env, local.proc)
    try:
        yield server
    finally:
        server.stop()


def _open_ws(path: Path, first: bool = False) -> Workstation:
    ws = Workstation.open(path)
    if first:
        ws.users.create_user("admin", PASSWORD, Role.ADMIN, by=SYSTEM_USER)
        ws.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    ws.session.login("rad", PASSWORD)
    return ws


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    workstation = _open_ws(tmp_path / "ws.db", first=True)
    yield workstation
    workstation.close()


def _settings(url: str, code: str | None = None, interval_s: float = 60.0) -> Settings:
    return Settings(sync=SyncSettings(server_url=url, enrolment_code=code, interval_s=interval_s))


def _bare_window(qtbot) -> QMainWindow:  # type: ignore[no-untyped-def]
    win = QMainWindow()
    qtbot.addWidget(win)
    win.menuBar().addMenu("&Tools")
    return win


class StallMeter(QObject):
    """A 2 ms precise timer on the GUI thread; the longest gap between ticks is the worst stall."""

    def __init__(self) -> None:
        super().__init__()
        self.timer = QTimer(self, interval=2)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.last: float | None = None
        self.worst = 0.0
        self.ticks = 0
        self.gaps: list[float] = []

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            gap = now - self.last - 0.002
            self.gaps.append(gap)
            self.worst = max(self.worst, gap)
        self.last, self.ticks = now, self.ticks + 1

    @property
    def p99(self) -> float:
        ordered = sorted(self.gaps)
        return ordered[int(len(ordered) * 0.99)] if ordered else 0.0

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()


def test_not_configured_says_so_and_runs_nothing(qtbot, ws: Workstation) -> None:  # type: ignore[no-untyped-def]
    win = _bare_window(qtbot)
    assert install_sync(win, ws, Settings()) is None
    widget = win.sync_status_widget  # type: ignore[attr-defined]
    assert widget.text.text() == "Sync not configured"
    assert "sync.server_url" in widget.toolTip()
    assert win.sync is None  # type: ignore[attr-defined]  # nothing runs
    assert StoreOutbox(ws.db).count_unsent() > 0  # queued, and stays queued
    # plain http to a remote host is refused, with the reason, and nothing runs either
    assert install_sync(win, ws, _settings("http://pacs.example.org:8000")) is None
    assert "only https is allowed" in win.sync_status_widget.toolTip()  # type: ignore[attr-defined]


def test_accepted_result_reaches_server_without_stalling_the_gui(  # type: ignore[no-untyped-def]
    qtbot, window, ws: Workstation, remote: RemoteServer
) -> None:
    window.ai.set_results(StoredResults(ws))
    open_for_ai(qtbot, window, CR)
    window.ai.run_image_button.click()
    row = window.ai.queue.rows[-1]
    qtbot.waitUntil(lambda: row.state == "done", timeout=120_000)
    with qtbot.waitSignal(window.ai.decided, timeout=30_000):  # recorded by a job
        assert window.ai.decide("accepted")
    result_id = window.ai.current_result()[0].result_id
    # a long working day offline: 2,000 more audit events wait in the real outbox
    ws.audit.append_many(
        [
            AuditEvent(EventType.INSTANCES_ACCESSED, user="rad", role="radiologist")
            for _ in range(2000)
        ]
    )
    queued = StoreOutbox(ws.db).count_unsent()
    assert queued >= 2001

    # Measured as the application runs: nothing is done to the garbage collector here. The
    # model load above froze the long-lived heap (core.heap); before it did, a full collection
    # landing in the sync pass stalled this window ~200 ms.
    settings = _settings(remote.url, code=remote.enrol_code())
    meter = StallMeter()
    meter.start()
    t_install = time.perf_counter()
    sync = install_sync(window, ws, settings)
    assert sync is not None
    try:
        qtbot.waitUntil(lambda: sync.status.snapshot.state == "online", timeout=120_000)
        meter.stop()
        widget = window.sync_status_widget
        qtbot.waitUntil(
            lambda: widget.text.text().startswith("Sync: online - nothing waiting"), timeout=5_000
        )
        assert "last synced" in widget.text.text()
        assert StoreOutbox(ws.db).count_unsent() == 0
        took = time.perf_counter() - t_install
        print(
            f"sync of {queued} items: {took:.2f} s, GUI stall worst {meter.worst * 1000:.1f} ms,"
            f" p99 {meter.p99 * 1000:.1f} ms"
        )
        assert meter.ticks > 100  # the GUI loop ran all along
        assert meter.worst < MAX_STALL_S, f"GUI thread stalled {meter.worst * 1000:.0f} ms"
        assert meter.p99 < P99_STALL_S, f"GUI stall p99 {meter.p99 * 1000:.0f} ms"
        device = CredentialStore(remote.url).require_device().device_id  # enrolled by the loop
        got = remote.query(
            "SELECT decision, model_id FROM results WHERE device_id = ? AND client_id = ?",
            device,
            result_id,
        )
        assert got == [("accepted", "chest-xray-pneumonia")]
        (events,) = remote.query("SELECT COUNT(*) FROM audit_events WHERE device_id = ?", device)
        assert events[0] == ws.audit.chain_head()[0] + 1 - _unsent_audit(ws)
        assert load_last_success(ws) == sync.status.snapshot.last_success
    finally:
        assert sync.stop(5.0)


def _unsent_audit(ws: Workstation) -> int:
    return sum(1 for r in StoreOutbox(ws.db).fetch_unsent(10_000) if r.kind == "audit")


def test_unreachable_server_sync_now_and_quick_stop(
    qtbot,
    ws: Workstation,
    server: LiveServer,  # type: ignore[no-untyped-def]
) -> None:
    with socket.socket() as s:  # a port nobody listens on: the server is "down"
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    CredentialStore(dead).save_device(
        CredentialStore(server.url).device()  # type: ignore[arg-type]
        or _enrol(server)
    )
    queued = StoreOutbox(ws.db).count_unsent()
    win = _bare_window(qtbot)
    sync = install_sync(win, ws, _settings(dead), backoff=FAST)
    assert sync is not None
    widget = win.sync_status_widget  # type: ignore[attr-defined]
    try:
        qtbot.waitUntil(
            lambda: widget.text.text() == f"Sync: offline - {queued} waiting to send",
            timeout=20_000,
        )
        assert "nothing is lost" in widget.toolTip()
        assert "cannot connect" in widget.toolTip()
        passes = sync.passes
        menus = [a.menu() for a in win.menuBar().actions() if a.menu() is not None]
        assert any(sync.action in m.actions() for m in menus)  # a Sync menu in a bare window
        sync.action.trigger()  # "Sync now" runs a pass at once, not after interval_s (60 s)
        qtbot.waitUntil(lambda: sync.passes > passes, timeout=20_000)
    finally:
        started = time.monotonic()
        assert sync.stop(5.0)
        assert time.monotonic() - started < 5.0
    assert StoreOutbox(ws.db).count_unsent() == queued  # nothing lost, nothing marked sent


def _enrol(server: LiveServer):  # type: ignore[no-untyped-def]
    from core.sync.client import SyncClient

    client = SyncClient(server.url)
    try:
        return client.enrol(server.enrol_code(), "test-ws")
    finally:
        client.close()


def _copy_db(src: Path, dst: Path) -> None:
    for f in src.parent.glob(src.name + "*"):
        shutil.copy(f, dst.parent / f.name.replace(src.name, dst.name))


def _sync_until_online(qtbot, ws: Workstation, settings: Settings):  # type: ignore[no-untyped-def]
    win = _bare_window(qtbot)
    sync = install_sync(win, ws, settings, backoff=FAST)
    assert sync is not None
    qtbot.waitUntil(lambda: sync.status.snapshot.state == "online", timeout=30_000)
    assert sync.stop(5.0)
    return sync


def test_restored_older_database_alerts_the_user(
    qtbot,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    server: LiveServer,
) -> None:
    path, backup = tmp_path / "fork.db", tmp_path / "old-copy.db"
    settings = _settings(server.url, code=server.enrol_code())
    ws = _open_ws(path, first=True)
    first = _sync_until_online(qtbot, ws, settings)
    synced_at = first.status.snapshot.last_success
    ws.close()
    _copy_db(path, backup)  # an old copy of the database, taken here

    ws = _open_ws(path)
    assert load_last_success(ws) == synced_at  # the last sync survives a restart
    second = _sync_until_online(qtbot, ws, settings)  # this history reaches the server
    assert second.status.snapshot.last_success > synced_at
    ws.close()

    for f in path.parent.glob(path.name + "*"):
        f.unlink()
    _copy_db(backup, path)  # someone puts the old copy back
    ws = _open_ws(path)  # the login itself is audited: the restored chain goes on, forked
    try:
        win = _bare_window(qtbot)
        sync = install_sync(win, ws, settings, backoff=FAST)
        assert sync is not None
        try:
            qtbot.waitUntil(lambda: bool(sync.alerts), timeout=30_000)
            assert sync.alerts[0].code == "audit_chain_fork"
            box = sync.alert_box
            assert box is not None
            assert box.isVisible()
            assert "SECURITY ALERT" in box.text()
            assert "older copy" in box.text()
            widget = win.sync_status_widget  # type: ignore[attr-defined]
            qtbot.waitUntil(lambda: widget.text.text() == "Sync: SECURITY ALERT", timeout=5_000)
            assert "inform IT security" in widget.toolTip()
        finally:
            assert sync.stop(5.0)
        alerts = list(ws.audit.iter_events(event_type=EventType.SECURITY_ALERT))
        from_sync = [e for e in alerts if e.details.get("source") == "sync"]
        assert [(e.user, e.details["code"]) for e in from_sync] == [("rad", "audit_chain_fork")]
    finally:
        ws.close()
