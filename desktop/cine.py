"""Cine: steps the slice on a QTimer while ``viewport.cine_playing`` is true."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

from core.viewer.state import ViewerState


class CinePlayer(QObject):
    def __init__(self, state: ViewerState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.timer = QTimer(self)
        self.timer.timeout.connect(lambda: state.step_slice(1, wrap=True))
        state.viewport.events.cine_playing.connect(self._on_playing)
        state.viewport.events.cine_fps.connect(
            lambda _f: self._on_playing(state.viewport.cine_playing)
        )

    def _on_playing(self, playing: bool) -> None:
        if playing and self.state.slice_count > 1:
            self.timer.start(max(int(1000 / self.state.viewport.cine_fps), 1))
        else:
            self.timer.stop()
