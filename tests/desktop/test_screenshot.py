"""The screenshot script (``make screenshot``) writes a window-sized PNG of a loaded study."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from desktop.screenshot import SAMPLE, take


def test_screenshot_of_sample(tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "shot.png"
    assert take(out, [SAMPLE], size=(1000, 700), timeout_s=60) == 0
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1000, 700)
    # dark theme: the corner pixel is a dark grey, not a default light window
    corner = img.pixelColor(img.width() - 5, img.height() // 2)
    assert corner.lightness() < 80


# --- the reading room hung by protocol (issue 16): looked at during development ------------
def _shots_dir(tmp_path: Path) -> Path:
    """DOCTORAI_SHOTS=/tmp/shots keeps the PNGs to look at; otherwise they go with tmp_path."""
    import os

    folder = Path(os.environ.get("DOCTORAI_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _hung_window(qtbot, tmp_path: Path, prior_files: list[Path], date: str, open_path: Path):  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QApplication

    from core.app.workstation import Workstation
    from core.config import SecuritySettings
    from desktop.main_window import MainWindow
    from desktop.theme import apply_dark_theme
    from tests.desktop.test_hang_on_open import copy_as_study, index_as_prior
    from tests.desktop.workstation.helpers import PASSWORD, add_users

    ws = Workstation.open(tmp_path / "ws.db", SecuritySettings(lock_timeout_min=30))
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    copy_as_study(prior_files, tmp_path / "prior", date)
    index_as_prior(ws, tmp_path / "prior")
    apply_dark_theme(QApplication.instance())  # type: ignore[arg-type]
    win = MainWindow(workstation=ws, lock_check_ms=60_000)
    qtbot.addWidget(win)
    win.resize(1600, 1000)
    win.show()
    qtbot.waitExposed(win)
    win.open_paths([str(open_path)])
    qtbot.waitUntil(lambda: win.auto_hang.hanging is not None, timeout=120_000)

    def settled() -> bool:
        cells = [c.state for c in win.grid.model]
        loaded = all(s.series is None or s.settled_count == s.slice_count for s in cells)
        mpr = all(m.view is not None for m in win.grid.mpr.values())
        return loaded and mpr and not win.auto_hang.jobs and win.runner.active == 0

    qtbot.waitUntil(settled, timeout=120_000)
    qtbot.wait(300)  # the last paints
    return win, ws


def _lit_fraction(widget) -> float:  # type: ignore[no-untyped-def]
    """How much of a viewport's picture is lit (an image drawn, not an empty black cell)."""
    import numpy as np

    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_Grayscale8)
    arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    arr = arr.reshape(img.height(), img.bytesPerLine())[:, : img.width()]
    return float((arr > 40).mean())


def test_screenshot_of_a_ct_hung_with_its_prior(qtbot, tmp_path: Path, ct_dir: Path) -> None:  # type: ignore[no-untyped-def]
    win, ws = _hung_window(qtbot, tmp_path, sorted(ct_dir.glob("*.dcm")), "20100101", ct_dir)
    try:
        shot = _shots_dir(tmp_path) / "ct_prior_2x2_mpr.png"
        assert win.grab().save(str(shot))
        model = win.grid.model
        assert (model.rows, model.cols) == (2, 2)
        for i, widget in enumerate(win.grid.visible_widgets()):
            mpr = win.grid.mpr.get(i)
            target = mpr if mpr is not None else widget
            assert _lit_fraction(target) > 0.05, f"viewport {i + 1} is empty"
        # the reformats keep the physical aspect: as wide as the CT's 512 columns x pixel
        # spacing and as high as its first to last slice positions, drawn square in mm
        slices = model.cells[0].state.slices
        first, last = slices[0].instance, slices[-1].instance
        assert first.pixel_spacing is not None
        assert first.image_position is not None
        assert last.image_position is not None
        width_mm = 512 * float(first.pixel_spacing[1])
        height_mm = abs(float(last.image_position[2]) - float(first.image_position[2]))
        for i in (1, 2):
            drawn = win.grid.mpr[i].image_rect
            assert drawn.width() / drawn.height() == pytest.approx(width_mm / height_mm, rel=0.03)
    finally:
        assert win.shutdown(10_000)
        ws.close()


def test_screenshot_of_a_radiograph_hung_with_its_prior(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.desktop.workstation.helpers import CR

    win, ws = _hung_window(qtbot, tmp_path, [CR], "20000101", CR)
    try:
        shot = _shots_dir(tmp_path) / "cr_prior_side_by_side.png"
        assert win.grab().save(str(shot))
        widgets = win.grid.visible_widgets()
        assert len(widgets) == 2
        assert all(_lit_fraction(w) > 0.05 for w in widgets)
    finally:
        assert win.shutdown(10_000)
        ws.close()
