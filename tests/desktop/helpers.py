"""Steps several window tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

AI_TIMEOUT_MS = 120_000


def open_for_ai(qtbot: Any, win: Any, path: Path) -> None:
    """Open ``path`` and wait until it is painted, indexed, and the models are found."""
    painted: list[int] = []
    win.viewport.painted.connect(painted.append)
    win.open_paths([path])
    qtbot.waitUntil(lambda: bool(painted), timeout=AI_TIMEOUT_MS)
    # the first paint may be a provisional image shown while the folder is still indexed
    qtbot.waitUntil(lambda: not win.controller.indexing, timeout=AI_TIMEOUT_MS)
    qtbot.waitUntil(lambda: win.ai.manager is not None, timeout=AI_TIMEOUT_MS)
