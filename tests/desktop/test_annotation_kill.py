"""kill -9 while drawing: a child process runs the real window offscreen on a real profile,
draws annotations and edits one with synthesized mouse events, and is killed with SIGKILL in the
middle of the next drag. The profile reopened holds every annotation finished before the kill,
as it was finished, and nothing of the stroke in progress.

Run as a module (``python -m tests.desktop.test_annotation_kill DB``) it is that child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.config import SecuritySettings

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
PASSWORD = "correct horse battery"


def _child(db: str) -> None:  # pragma: no cover - runs in the child process
    from PySide6.QtCore import QCoreApplication, QPoint, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from core.app.workstation import Workstation
    from desktop.annotation_layer import install_annotations, where_acquired
    from desktop.main_window import MainWindow

    app = QApplication([])
    ws = Workstation.open(Path(db), SecuritySettings(lock_timeout_min=30))
    ws.session.login("rad", PASSWORD)
    win = MainWindow(workstation=ws, hang_on_open=False)
    win.resize(1280, 860)
    win.show()
    layer = install_annotations(win)
    win.open_paths([str(CR)])

    def wait(ok: Any, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while not ok():
            if time.monotonic() > deadline:
                raise SystemExit("timed out")
            app.processEvents()
            time.sleep(0.005)

    wait(lambda: where_acquired(win.viewport) is not None and not win.controller.indexing)
    at = where_acquired(win.viewport)
    assert at is not None
    wait(lambda: at.study_uid in layer.loaded)
    vp = win.viewport

    def s(row: float, col: float) -> QPoint:
        x, y = at.to_screen((row, col))
        return QPoint(round(x), round(y))

    def stroke(points: list[QPoint]) -> None:
        QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[0])
        for p in points[1:]:
            QTest.mouseMove(vp, p)
            app.processEvents()
            time.sleep(0.03)  # a hand's pace
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                           points[-1])  # fmt: skip

    def finished() -> None:
        shown = {a.uid: [list(p) for p in a.points] for a in layer.shown.values()}
        print("FINISHED " + json.dumps({"study": at.study_uid, "shown": shown}), flush=True)

    for label, pts in (
        ("Length", [s(300, 300), s(300, 450), s(300, 600)]),
        ("Ellipse", [s(300, 1000), s(400, 1100), s(450, 1200)]),
        ("Arrow", [s(1400, 900), s(1450, 1000), s(1500, 1100)]),
        ("Freehand", [s(700, 1000), s(700, 1150), s(800, 1200), s(850, 1050)]),
    ):
        win.actions_by_name[label].trigger()
        stroke(pts)
        finished()
    win.actions_by_name["W/L"].trigger()
    stroke([s(300, 600), s(350, 650), s(400, 700)])  # the length's end edited by its handle
    finished()
    win.actions_by_name["ROI"].trigger()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, s(1000, 300))
    for k in range(10_000):  # the stroke in progress: killed during it
        QTest.mouseMove(vp, s(1000 + k % 200, 300 + k % 300))
        app.processEvents()
        time.sleep(0.02)
        if k == 10:
            print("DRAGGING", flush=True)
    QCoreApplication.quit()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_during_a_drag_loses_only_the_stroke_in_progress(tmp_path: Path) -> None:
    from core.app.annotations import list_annotations
    from core.app.workstation import Workstation
    from tests.desktop.workstation.helpers import add_users

    db = tmp_path / "ws.db"
    ws = Workstation.open(db, SecuritySettings(lock_timeout_min=30))
    add_users(ws)
    ws.close()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.desktop.test_annotation_kill", str(db)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last: dict[str, Any] = {}
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 120
        for line in child.stdout:
            if line.startswith("FINISHED "):
                last = json.loads(line.split(" ", 1)[1])
            elif line.startswith("DRAGGING"):
                break
            assert time.monotonic() < deadline, "the child did not get to its drag"
        else:
            pytest.fail(f"the child ended before its drag: {child.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
    assert child.returncode == -signal.SIGKILL

    shown = last["shown"]
    assert len(shown) == 4
    ws = Workstation.open(db, SecuritySettings(lock_timeout_min=30))
    ws.session.login("rad", PASSWORD)
    stored = {a.uid: [list(p) for p in a.points] for a in list_annotations(ws, last["study"])}
    ws.close()
    assert stored == shown  # every finished stroke and the edit; not the rectangle dragged


if __name__ == "__main__":  # pragma: no cover
    _child(sys.argv[1])
