"""The GUI event loop while the application works hard: four inference jobs run, their results
are recorded (encrypted store, audit, outbox) and accepted, and a sync drains a day's queue to a
real backend in a process of its own.

Measured as the application runs: the signed-in window of desktop.app (``MainWindow`` on a real
SQLCipher profile), the heap frozen where ``desktop.app.run_gui`` freezes it, its sync worker and
settings. A 2 ms precise QTimer on the GUI thread records every gap between ticks; the figures
are the p50 / p99 / longest gap while the work runs, against the same timer on the idle window
just before (baseline). Goal: p99 < 30 ms. The prediction cache is cleared between the four runs
so that each is a real model run (more work than a radiologist re-running a series would cause).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MR = REPO.parent / "shared" / "data" / "dicom" / "plotly__dash-vtk" / "demos" / "data" / "mri_brain"
PASSWORD = "correct horse battery"
N_JOBS = 4
N_QUEUED = 2000


def _gaps_while(app: object, until: object, timeout_s: float) -> list[float]:
    """Gaps (s) between the ticks of a 2 ms precise timer until ``until()`` or the timeout."""
    from PySide6.QtCore import QCoreApplication, QEventLoop, Qt, QTimer

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0] - 0.002)
        last[0] = now

    timer = QTimer(interval=2)
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(tick)
    timer.start()
    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline:  # type: ignore[operator]
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
    timer.stop()
    return [max(0.0, g) for g in gaps]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def measure() -> dict[str, float]:
    from PySide6.QtWidgets import QApplication

    from backend.local import start_local_backend
    from core.app.results import StoredResults
    from core.app.workstation import Workstation
    from core.audit.events import Actor, event
    from core.audit.vocabulary import EventType
    from core.config import Settings, SyncSettings
    from core.heap import freeze_long_lived
    from core.security.users import Role
    from core.store.outbox import StoreOutbox
    from desktop.main_window import MainWindow
    from desktop.sync_worker import install_sync
    from desktop.theme import apply_dark_theme

    app = QApplication.instance() or QApplication([])
    apply_dark_theme(app)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="bench_stall_") as tmp:
        os.environ["DOCTORAI_HOME"] = str(Path(tmp) / "profile")
        backend = start_local_backend(Path(tmp) / "backend")
        try:
            ws = Workstation.open()
            ws.users.create_user("admin", PASSWORD, Role.ADMIN, by="bench")
            ws.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
            ws.session.login("rad", PASSWORD)
            rad = Actor("rad", "radiologist")
            ws.audit.append_many(
                [event(EventType.INSTANCES_ACCESSED, rad) for _ in range(N_QUEUED)]
            )  # a day offline
            win = MainWindow(workstation=ws)
            win.resize(1600, 1000)
            win.show()
            panel = win.ai
            assert isinstance(panel.results, StoredResults)
            win.open_paths([MR])
            _gaps_while(
                app,
                lambda: (
                    panel.manager is not None
                    and win.state.slice_count > 0
                    and not win.controller.indexing
                    and panel.run_series_button.isEnabled()
                ),
                120,
            )
            freeze_long_lived()  # where desktop.app.run_gui does it: the window is up
            idle = _gaps_while(app, lambda: False, 3.0)

            settings = Settings(
                sync=SyncSettings(server_url=backend.url, enrolment_code=backend.enrol_code())
            )
            start = time.perf_counter()
            sync = install_sync(win, ws, settings)
            assert sync is not None
            rows = []
            for _ in range(N_JOBS):
                if panel.queue.cache is not None:
                    panel.queue.cache.clear()
                rows.append(panel.run_series())
            images = sum(r.total for r in rows if r is not None)
            decided: list[str] = []
            panel.decided.connect(lambda rid, _d: decided.append(rid))

            def done() -> bool:
                finished = all(r is not None and r.finished for r in rows)
                if finished and not decided and panel.current_result() is not None:
                    panel.decide("accepted")
                    decided.append("")
                return (
                    finished
                    and len(decided) >= 2
                    and sync.status.snapshot.state == "online"
                    and StoreOutbox(ws.db).count_unsent() == 0
                )

            busy = _gaps_while(app, done, 600)
            took = time.perf_counter() - start
            states = [r.state if r is not None else "not started" for r in rows]
            sync.stop(5.0)
            win.shutdown()
            ws.close()
        finally:
            backend.stop()
    return {
        "idle_p99": _pct(idle, 0.99),
        "idle_max": max(idle),
        "busy_p50": _pct(busy, 0.50),
        "busy_p99": _pct(busy, 0.99),
        "busy_max": max(busy),
        "ticks": len(busy),
        "took": took,
        "images": images,
        "done": float(all(s == "done" for s in states)),
    }


def main() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # the benchmark's own throw-away profile keeps its key in a file keyring (no desktop here)
    os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    r = measure()
    print(
        f"{N_JOBS} inference jobs ({r['images']:.0f} images, recorded and one accepted) while "
        f"a sync drains {N_QUEUED}+ queued items: {r['took']:.1f} s, "
        f"{'all done' if r['done'] else 'NOT ALL DONE'}"
    )
    print("GUI event loop, gaps of a 2 ms precise timer (baseline = the idle window, 3 s)")
    print(f"  idle:  p99 {r['idle_p99'] * 1000:.1f} ms, longest {r['idle_max'] * 1000:.1f} ms")
    print(
        f"  busy:  p50 {r['busy_p50'] * 1000:.1f} ms, p99 {r['busy_p99'] * 1000:.1f} ms "
        f"(x{r['busy_p99'] / max(r['idle_p99'], 1e-4):.1f} idle), longest "
        f"{r['busy_max'] * 1000:.1f} ms over {r['ticks']:.0f} ticks   (goal: p99 < 30 ms)"
    )


if __name__ == "__main__":
    main()
