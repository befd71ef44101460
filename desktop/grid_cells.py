"""Every viewport widget of the reading room's grid, now and after each rebuild.

Features that draw over or react to every viewport (series drop, AI heatmaps, SEG masks) must
reach the cells the grid makes later too: a new layout, a hanging stage, a custom grid. The grid
builds its cell widgets itself (``desktop.viewport_grid``) and announces a new grid through its
``Layout.grid_changed``, but a hanging stage builds them after that signal, so this also watches
the grid for new child frames. ``added`` fires once per widget, in cell order.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, QTimer, Signal

from desktop.viewport_widget import ViewportWidget

if TYPE_CHECKING:
    from desktop.viewport_grid import ViewportGrid


def tie(owner: QObject, signal: Any, slot: Callable[..., Any]) -> None:
    """Connect a Qt-free (psygnal) ``signal`` of a model that may outlive ``owner`` to its
    ``slot``, and disconnect it when ``owner`` is destroyed (the layout outlives its window)."""
    signal.connect(slot)
    owner.destroyed.connect(partial(_untie, signal, slot))


def _untie(signal: Any, slot: Callable[..., Any], *_: object) -> None:
    signal.disconnect(slot, missing_ok=True)


class GridCells(QObject):
    """Tells ``added(widget)`` for each ViewportWidget the grid shows, old and new."""

    added = Signal(object)  # ViewportWidget

    def __init__(self, grid: ViewportGrid) -> None:
        super().__init__(grid)
        self.grid = grid
        self._known: list[ViewportWidget] = []
        tie(self, grid.model.grid_changed, self._on_grid_changed)  # after the grid's rebuild
        grid.installEventFilter(self)

    def widgets(self) -> list[ViewportWidget]:
        """The grid's cell widgets as they are now (hidden cells of a maximised grid too)."""
        return list(self.grid.widgets)

    def owns(self, widget: ViewportWidget) -> bool:
        """Whether ``widget`` is still one of the grid's cells (a dropped cell's state may
        outlive its widget and still emit)."""
        return any(w is widget for w in self.grid.widgets)

    def start(self) -> None:
        """Announce the widgets there already are (call after connecting ``added``)."""
        self.sync()

    def sync(self) -> None:
        current = self.widgets()
        new = [w for w in current if not any(w is k for k in self._known)]
        self._known = current
        for widget in new:
            self.added.emit(widget)

    def _on_grid_changed(self, _rows: int, _cols: int) -> None:
        self.sync()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.grid and event.type() == QEvent.Type.ChildAdded:
            # a cell frame is made before its widget is placed in it: look once it is built
            QTimer.singleShot(0, self, self.sync)
        return False
