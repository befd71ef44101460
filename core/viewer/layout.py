"""The reading room's grid of viewports, one active, one maybe maximised, as an evented object.

Each viewport (a ``Cell``) holds its own ``ViewerState``, because the existing widget, tools,
overlays and heatmaps all work on a ViewerState; what must not be duplicated is the pixel data.
So every cell shares the layout's one ``StudyIndex``, and decoded frames are delivered through
``Layout.deliver_frame``, which hands the same ``Frame`` object to every cell showing that series
(and ``assign`` gives a new cell the frames other cells already hold; a slice loaded into any one
viewport by its own loader reaches the others too): a series shown in four viewports is decoded
and stored once. Per cell stays only what differs: slice, window, zoom, pan,
measurements, and the plane it shows (``orientation``: the acquired slices, or an axial,
coronal or sagittal reformat drawn by the reformat engine).

Keys move the active viewport: next/previous run through the grid in reading order and wrap;
up/down/left/right move in the grid and stop at its edges. While a viewport is maximised the
maximised one follows the active one, so the keys page through the viewports full size.
Nothing here draws or does I/O; ``desktop/viewport_grid.py`` draws it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from psygnal import Signal

from core.imaging.model import Frame, Series, StudyIndex
from core.viewer.state import ViewerState

Orientation = Literal["acquired", "axial", "coronal", "sagittal"]
Direction = Literal["next", "prev", "up", "down", "left", "right"]

PRESETS: dict[str, tuple[int, int]] = {
    "1x1": (1, 1),
    "1x2": (1, 2),
    "2x1": (2, 1),
    "2x2": (2, 2),
    "1x3": (1, 3),
    "2x3": (2, 3),
    "3x3": (3, 3),
}
MAX_SIDE = 6  # a custom grid up to 6 x 6 (36 viewports is already unreadable on one screen)
_GRID = re.compile(r"^\s*(\d+)\s*[xX\u00d7*]\s*(\d+)\s*$")


class LayoutError(ValueError):
    """A grid or viewport request that cannot be honoured (the message says which and why)."""


def parse_grid(text: str) -> tuple[int, int]:
    """'2x3' (rows x columns) -> (2, 3); refuses anything outside 1..MAX_SIDE."""
    m = _GRID.match(text)
    if m is None:
        raise LayoutError(f"layout '{text}' is not rows x columns, such as '2x2'")
    rows, cols = int(m.group(1)), int(m.group(2))
    check_grid(rows, cols)
    return rows, cols


def check_grid(rows: int, cols: int) -> None:
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE):
        raise LayoutError(f"layout {rows}x{cols} is outside 1x1 to {MAX_SIDE}x{MAX_SIDE} viewports")


@dataclass(eq=False)
class Cell:
    """One viewport of the grid: its own viewer state over the shared index and frames."""

    state: ViewerState
    orientation: Orientation = "acquired"
    label: str = ""  # what the hanging protocol put here ("current axial", "prior") for the overlay

    @property
    def series_uid(self) -> str | None:
        s = self.state.series
        return None if s is None else s.series_instance_uid


class Layout:
    """Viewports on a rows x columns grid; every change is announced through a signal."""

    grid_changed = Signal(int, int)  # rows, cols (cells may have been added or removed)
    active_changed = Signal(int)  # index of the active cell
    maximised_changed = Signal(object)  # index of the maximised cell, or None (restored)
    cell_changed = Signal(int)  # a cell got another series or orientation

    def __init__(self, rows: int = 1, cols: int = 1, *, first: ViewerState | None = None) -> None:
        check_grid(rows, cols)
        self.index: StudyIndex = first.index if first is not None else StudyIndex()
        self.rows, self.cols = rows, cols
        self.cells: list[Cell] = []
        if first is not None:
            self.cells.append(self._watch(Cell(first)))
        self._fill()
        self.active = 0
        self.maximised: int | None = None
        self._dropped: list[Cell] = []  # cells the last grid change removed (frames to reuse)

    # --- grid ----------------------------------------------------------------------------
    def _new_cell(self) -> Cell:
        # one index and one set of the user's window presets for every viewport
        state = ViewerState(presets=self.cells[0].state.presets if self.cells else None)
        state.index = self.index
        state.hide_phi = self.cells[0].state.hide_phi if self.cells else False
        return self._watch(Cell(state))

    def _watch(self, cell: Cell) -> Cell:
        """Whatever loads a slice into one viewport gives it to the others showing that series."""
        cell.state.frame_loaded.connect(lambda index: self._spread(cell, index))
        return cell

    def _spread(self, source: Cell, index: int) -> None:
        uid = source.series_uid
        frame = source.state.frames[index] if 0 <= index < len(source.state.frames) else None
        if uid is None or frame is None:
            return
        for c in self:
            state = c.state
            same = c is not source and c.series_uid == uid
            if (
                same
                and len(state.frames) == len(source.state.frames)
                and state.frames[index] is None
            ):
                state.set_frame(index, frame)

    def _fill(self) -> None:
        while len(self.cells) < self.rows * self.cols:
            self.cells.append(self._new_cell())

    def __len__(self) -> int:
        return self.rows * self.cols

    def __iter__(self) -> Iterator[Cell]:
        return iter(self.cells[: len(self)])

    def set_grid(self, rows: int, cols: int) -> None:
        """Change the grid; cells keep their series in reading order, extra ones are dropped.

        Dropped cells' frames are kept until the next grid change, so a hanging stage that shows
        their series in another cell hands the frames over instead of decoding them again.
        The active cell is clamped; a maximised cell outside the grid is restored.
        """
        check_grid(rows, cols)
        if (rows, cols) == (self.rows, self.cols):
            return
        self.rows, self.cols = rows, cols
        self._dropped = [c for c in self.cells[rows * cols :] if c.state.loaded_count]
        del self.cells[rows * cols :]
        self._fill()
        self.grid_changed.emit(rows, cols)
        if self.maximised is not None and self.maximised >= len(self):
            self.restore()
        if self.active >= len(self):
            self.set_active(len(self) - 1)

    def set_preset(self, name: str) -> None:
        """A named grid ('2x2') or a custom 'RxC'."""
        self.set_grid(*(PRESETS.get(name) or parse_grid(name)))

    def position(self, i: int) -> tuple[int, int]:
        """(row, column) of cell ``i``."""
        return divmod(i, self.cols)

    def cell(self, i: int) -> Cell:
        if not 0 <= i < len(self):
            raise LayoutError(f"viewport {i + 1} is outside the {self.rows}x{self.cols} layout")
        return self.cells[i]

    # --- active / maximised ------------------------------------------------------------
    @property
    def active_state(self) -> ViewerState:
        return self.cells[self.active].state

    def set_active(self, i: int) -> None:
        self.cell(i)
        if i != self.active:
            self.active = i
            self.active_changed.emit(i)
        if self.maximised is not None and self.maximised != i:
            self.maximised = i
            self.maximised_changed.emit(i)

    def move_active(self, direction: Direction) -> None:
        """Keys between viewports: next/prev wrap in reading order, arrows stop at the edge."""
        n = len(self)
        row, col = self.position(self.active)
        if direction == "next":
            target = (self.active + 1) % n
        elif direction == "prev":
            target = (self.active - 1) % n
        elif direction in ("up", "down"):
            row = min(max(row + (1 if direction == "down" else -1), 0), self.rows - 1)
            target = row * self.cols + col
        elif direction in ("left", "right"):
            col = min(max(col + (1 if direction == "right" else -1), 0), self.cols - 1)
            target = row * self.cols + col
        else:
            raise LayoutError(f"unknown direction '{direction}'")
        self.set_active(target)

    def maximise(self, i: int | None = None) -> None:
        """Show one viewport alone (default: the active one); it becomes active."""
        i = self.active if i is None else i
        self.cell(i)
        if self.active != i:
            self.active = i
            self.active_changed.emit(i)
        if self.maximised != i:
            self.maximised = i
            self.maximised_changed.emit(i)

    def restore(self) -> None:
        if self.maximised is not None:
            self.maximised = None
            self.maximised_changed.emit(None)

    def toggle_maximise(self, i: int | None = None) -> None:
        """The double-click: maximise that viewport, or restore the grid if it is maximised."""
        if self.maximised is not None and (i is None or i == self.maximised):
            self.restore()
        else:
            self.maximise(i)

    def visible(self) -> list[int]:
        """The cells on screen: the maximised one alone, else the whole grid."""
        return [self.maximised] if self.maximised is not None else list(range(len(self)))

    # --- series --------------------------------------------------------------------------
    def assign(
        self,
        i: int,
        series: Series | None,
        orientation: Orientation = "acquired",
        label: str = "",
    ) -> None:
        """Show a series in viewport ``i``, reusing frames other viewports already decoded."""
        cell = self.cell(i)
        cell.orientation, cell.label = orientation, label
        cell.state.set_series(series)
        if series is not None:
            donor = self._holder(series.series_instance_uid, exclude=cell)
            if donor is not None and len(donor.state.frames) == len(cell.state.frames):
                # the same objects: no copy; one progress signal for the whole hand-over
                cell.state.set_frames(
                    [(j, f) for j, f in enumerate(donor.state.frames) if f is not None]
                )
                for j, reason in donor.state.failed.items():
                    cell.state.mark_failed(j, reason)
        self.cell_changed.emit(i)

    def _holder(self, series_uid: str, exclude: Cell | None = None) -> Cell | None:
        for c in [*self.cells[: len(self)], *self._dropped]:
            if c is not exclude and c.series_uid == series_uid and c.state.loaded_count:
                return c
        return None

    def cells_showing(self, series_uid: str) -> list[int]:
        return [i for i, c in enumerate(self) if c.series_uid == series_uid]

    def deliver_frame(self, series_uid: str, index: int, frame: Frame) -> None:
        """A decoded slice of a series, given to every viewport showing it (one object)."""
        for i in self.cells_showing(series_uid):
            state = self.cells[i].state
            if 0 <= index < len(state.frames):
                state.set_frame(index, frame)

    def deliver_failure(self, series_uid: str, index: int, reason: str) -> None:
        for i in self.cells_showing(series_uid):
            self.cells[i].state.mark_failed(index, reason)

    def series_to_load(self) -> list[Series]:
        """The series on screen that still miss frames, each once (what a loader should run)."""
        seen: dict[str, Series] = {}
        for c in self:
            s = c.state.series
            if s is not None and c.state.settled_count < c.state.slice_count:
                seen.setdefault(s.series_instance_uid, s)
        return list(seen.values())

    def set_hide_phi(self, hide: bool) -> None:
        for c in self.cells:
            c.state.hide_phi = hide
