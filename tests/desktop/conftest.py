"""GUI fixtures: a main window that is shut down after the test, and a guard that fails any
test leaving a background job running (napari's leaked-thread check)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QThreadPool
from superqt.utils import WorkerBase

CT_PARTS = ("pyvista__vtk-data", "Data", "DICOM_Stack")


@pytest.fixture(autouse=True)
def _no_leaked_workers(qapp: object) -> Iterator[None]:
    yield
    pool = QThreadPool.globalInstance()
    # a job that already emitted its result may still be returning, and superqt forgets a
    # worker only when its queued 'finished' reaches this thread's event loop: let it, for up
    # to a second (on a loaded 2-core machine an argon2 job took over 300 ms to wind down)
    deadline = time.monotonic() + 1.0
    while (pool.activeThreadCount() or WorkerBase._worker_set) and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        pool.waitForDone(10)
    running = pool.activeThreadCount()
    pending = len(WorkerBase._worker_set)
    if running or pending:
        WorkerBase.await_workers(10_000)
        pytest.fail(f"test left {running} background job(s) running ({pending} worker(s))")


@pytest.fixture
def ct_dir(dicom_data: Path) -> Path:
    path = dicom_data.joinpath(*CT_PARTS)
    if not path.is_dir():
        pytest.skip(f"the shared 134-slice CT is not at '{path}'")
    return path


@pytest.fixture
def window(qtbot):  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QApplication

    from desktop.main_window import MainWindow
    from desktop.theme import apply_dark_theme

    apply_dark_theme(QApplication.instance())
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1280, 860)
    win.show()
    qtbot.waitExposed(win)
    yield win
    assert win.shutdown(10_000), "background jobs did not stop on shutdown"
