"""The screenshot script (``make screenshot``) writes a window-sized PNG of a loaded study."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QImage

from desktop.screenshot import SAMPLE, take


def test_screenshot_of_sample(tmp_path: Path, qtbot) -> None:
    out = tmp_path / "shot.png"
    assert take(out, [SAMPLE], size=(1000, 700), timeout_s=60) == 0
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1000, 700)
    # dark theme: the corner pixel is a dark grey, not a default light window
    corner = img.pixelColor(img.width() - 5, img.height() // 2)
    assert corner.lightness() < 80
