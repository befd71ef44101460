"""The AI panel's result fits the window: after a run on the shared adult CR at 1280x860 (and a
series run on the real MR at 1600x1000) the result's title, guard banner, score rows and
Accept / Reject lie inside the AI dock's visible area without scrolling; no blank rows in the
model list or the score table; the findings list only for a run over several images; the
queue's columns show the model and the progress whole."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QScrollArea, QWidget

from tests.desktop.helpers import open_for_ai
from tests.desktop.test_ai_review import CR, MR_PARTS, TIMEOUT_MS

SHOTS = Path(os.environ.get("DOCTORAI_LAYOUT_SHOTS", "/tmp/doctorai_ai_layout"))


def _scroll(win) -> QScrollArea:
    scroll = win.ai_dock.widget()
    assert isinstance(scroll, QScrollArea)
    return scroll


def _in_view(win, widget: QWidget) -> bool:
    """Whether ``widget`` lies wholly inside the visible part of the AI dock."""
    scroll = _scroll(win)
    view = scroll.viewport()
    top_left = widget.mapTo(view, QPoint(0, 0))
    return view.rect().contains(QRect(top_left, widget.size())) and widget.isVisible()


def _rows_in_view(win, table) -> bool:
    view = _scroll(win).viewport()
    for i in range(table.rowCount()):
        rect = table.visualItemRect(table.item(i, 0))
        top_left = table.viewport().mapTo(view, rect.topLeft())
        if not view.rect().contains(QRect(top_left, rect.size())):
            return False
        if not table.viewport().rect().contains(rect):  # not cut by the table itself
            return False
    return True


def _shoot(win, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert win.grab().save(str(SHOTS / f"{name}.png"))
    assert win.ai_dock.grab().save(str(SHOTS / f"{name}_dock.png"))


def test_cr_result_is_visible_at_1280x860_without_scrolling(qtbot, window) -> None:
    win, panel = window, window.ai
    win.resize(1280, 860)
    win.tags_dock.raise_()  # the result arrives while the AI tab is behind another
    open_for_ai(qtbot, win, CR)
    row = panel.run_current_image()
    qtbot.waitUntil(lambda: row.finished, timeout=TIMEOUT_MS)
    assert row.state == "done", row.message
    win.ai_dock.raise_()
    qtbot.waitUntil(lambda: panel.verdict.text() == "Not reviewed yet", timeout=TIMEOUT_MS)
    qtbot.wait(50)  # the layout settles
    _shoot(win, "cr_1280x860")

    assert _scroll(win).verticalScrollBar().value() == 0
    for widget in (panel.result_title, panel.guard_banner, panel.scores):
        assert _in_view(win, widget), widget.objectName() or widget
    assert panel.scores.rowCount() == 2
    assert _rows_in_view(win, panel.scores)
    assert _in_view(win, panel.accept_button)
    assert _in_view(win, panel.reject_button)
    # the score table is as high as its rows: no empty row under them
    s = panel.scores
    rows = sum(s.rowHeight(i) for i in range(s.rowCount()))
    assert s.height() == s.horizontalHeader().height() + rows + 2 * s.frameWidth()
    # one image: no findings list (its result says it all) and no mark on the slider
    assert panel.findings_box.isHidden()
    assert panel.slider_marks.marks == {}
    # the model list is as high as its entries
    m = panel.models
    assert m.height() <= m.count() * m.sizeHintForRow(0) + 2 * m.frameWidth() + 2
    # the queue shows the model id and the progress whole
    q = panel.queue_table
    for col in (0, 3):
        text = q.item(0, col).text()
        assert q.columnWidth(col) >= q.fontMetrics().horizontalAdvance(text), text
    assert q.viewport().width() >= sum(q.columnWidth(c) for c in range(4)) - 1


def test_mr_series_result_is_visible_at_1600x1000(qtbot, window, dicom_data: Path) -> None:
    win, panel = window, window.ai
    win.resize(1600, 1000)
    win.ai_dock.raise_()
    open_for_ai(qtbot, win, dicom_data.joinpath(*MR_PARTS))
    panel.select_model("brain-tumour-mri")
    said: list[str] = []
    panel.queue.changed.connect(
        lambda: said.append(panel.run_status.text() if panel.run_status.isVisibleTo(panel) else "")
    )
    row = panel.run_series()
    qtbot.waitUntil(lambda: row.finished, timeout=TIMEOUT_MS)
    assert row.state == "done", row.message
    # the progress is said under Run (the queue may be below the fold)
    assert any(t.startswith("brain-tumour-mri on series (24 images): running ") for t in said)
    assert said[-1] == ""
    assert panel.run_status.isHidden()
    qtbot.waitUntil(lambda: panel.verdict.text() == "Not reviewed yet", timeout=TIMEOUT_MS)
    qtbot.wait(50)
    _shoot(win, "mr_1600x1000")

    for widget in (panel.result_title, panel.guard_banner, panel.accept_button):
        assert _in_view(win, widget), widget
    assert _rows_in_view(win, panel.scores)
    assert not panel.findings_box.isHidden()  # a series run lists its findings
