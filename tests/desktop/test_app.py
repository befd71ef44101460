"""``run_gui`` (what ``doctorai --demo resources/sample`` runs): opens the sample, exits cleanly."""

from __future__ import annotations

from argparse import Namespace

import pydicom
from PySide6.QtCore import QThreadPool, QTimer
from PySide6.QtWidgets import QApplication

from desktop.app import SAMPLE, run_gui
from desktop.main_window import MainWindow


def test_demo_opens_sample_and_exits_cleanly(qtbot) -> None:
    seen: dict[str, int] = {}

    def poll() -> None:
        wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        win = wins[-1] if wins else None
        if win is not None and "series_loaded" in win.controller.timings:
            seen["slices"] = win.state.slice_count
            seen["series"] = sum(1 for _ in win.state.index.iter_series())
            win.close()  # as the user closing the window
        else:
            QTimer.singleShot(50, poll)

    QTimer.singleShot(50, poll)
    code = run_gui(Namespace(paths=[], demo=True, device=None))
    assert code == 0
    series: dict[str, int] = {}
    for f in SAMPLE.rglob("*.dcm"):
        uid = str(pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID)
        series[uid] = series.get(uid, 0) + 1
    assert seen["series"] == len(series)
    assert seen["slices"] == max(series.values())  # the biggest series is shown first
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    assert SAMPLE.is_dir()
