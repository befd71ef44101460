"""The whole window as the app builds it on a signed-in profile (every panel installed): the
image keeps most of the room. A 521 px wide report panel once left the viewport 382 px of a
1280 px window, and the annotation test's tools landed on each other's labels."""

from __future__ import annotations

from typing import Any

from tests.desktop.test_annotation_window import open_window, profile, signed_in

__all__ = ["open_window", "profile"]  # fixtures


def test_the_viewports_keep_most_of_the_window_with_every_panel(
    qtbot: Any, open_window: Any, profile: Any
) -> None:
    win = open_window(signed_in(profile))
    qtbot.waitUntil(lambda: win.grid.width() > 0, timeout=5_000)
    qtbot.wait(50)  # the docks' sizes settle after the first layout
    assert win.reports is not None  # the report and key-image docks are there
    assert win.reports.report_dock.isVisible()
    assert win.grid.width() >= 0.4 * win.width(), (win.grid.width(), win.width())
    assert win.reports.report_dock.width() <= 420
