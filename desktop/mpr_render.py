"""The images an MPR cell paints, sampled where they cost the GUI thread nothing noticeable.

A thin plane along the voxel axes is sampled in the paint (~11-16 ms sampled and windowed on a
512x512x400 CT here) until one of the view takes longer than ``SYNC_BUDGET_MS`` (a slow machine,
a huge volume); from then on, and always for a thick slab (~0.1-0.8 s) or an oblique plane
(~45 ms), the image is sampled in a ``JobRunner`` job. One job at a time: when it ends the cell
repaints and asks again for what is wanted by then (the latest request wins, scrolling never
queues), and meanwhile the last image stays on screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.imaging.model import Frame
from core.viewer.mpr import MprView
from core.viewer.reformat import Reformat, Slab

if TYPE_CHECKING:
    from desktop.workers import JobContext, JobRunner

SYNC_BUDGET_MS = 20.0  # the most a paint may spend sampling a plane


def render_frame(ctx: JobContext, reformat: Reformat, index: int, slab: Slab | None) -> Frame:
    """The worker's part of a slab or oblique image (kept in the reformat's small cache)."""
    return reformat.frame(index, slab)


class PlaneImages:
    """One cell's reformatted images: ``get(view)`` the current one or None while it renders;
    ``last`` the one drawn before (shown meanwhile). ``ready`` is called when a job ends (the
    cell repaints), ``failed`` with a message when one fails."""

    def __init__(
        self,
        runner: JobRunner | None,
        ready: Callable[[], None],
        failed: Callable[[str], None],
    ) -> None:
        self.runner = runner
        self.ready, self.failed = ready, failed
        self.sync_budget_ms = SYNC_BUDGET_MS
        self.slow = False  # a thin plane took longer than the budget: every image is a job
        self.last: Frame | None = None
        self._key: tuple[Any, ...] | None = None  # (reformat, index, slab) of ``last``
        self._rendering = False
        self._generation = 0

    def reset(self) -> None:
        """Another view (or none): forget its images; a job still running is ignored."""
        self._generation += 1
        self._key = self.last = None
        self._rendering = self.slow = False

    def get(self, view: MprView) -> Frame | None:
        key = (id(view.reformat), view.index, view.slab)
        if key == self._key:
            return self.last
        cheap = (
            not self.slow
            and view.slab is None
            and view.reformat.grid(view.index).aligned_axes() is not None
        )
        if cheap or self.runner is None:
            start = time.perf_counter()
            self._key, self.last = key, view.frame()
            if (time.perf_counter() - start) * 1000 > self.sync_budget_ms:
                self.slow = True
            return self.last
        if not self._rendering:
            self._rendering = True
            generation = self._generation
            self.runner.start(
                "Reformat slab" if view.slab is not None else "Oblique reformat",
                render_frame,
                view.reformat,
                view.index,
                view.slab,
                on_result=lambda frame: self._rendered(generation, key, frame),
                on_error=lambda exc: self._failed(generation, exc),
                on_finished=lambda _job: self._finished(generation),
            )
        return None

    def _rendered(self, generation: int, key: tuple[Any, ...], frame: Frame) -> None:
        if generation == self._generation:
            self._key, self.last = key, frame

    def _failed(self, generation: int, exc: BaseException) -> None:
        if generation == self._generation:
            self.failed(f"The reformat could not be drawn: {exc}")

    def _finished(self, generation: int) -> None:
        if generation == self._generation:
            self._rendering = False
            self.ready()
