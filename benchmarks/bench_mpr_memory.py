"""Memory of MPR (issue 16: a 400-slice series shown in four viewports with MPR uses <= 1.2x the
volume's bytes plus display buffers).

The real application path, offscreen: a ``ViewportGrid`` of 2 x 2 over one ``Layout`` with a
``JobRunner``, one 512 x 512 x 400 CT series (0.7 x 0.7 x 2.5 mm, synthetic pixels made as the
loader makes them: one float32 array per slice, delivered to the cells like decoded slices) in
the four cells: the acquired (axial) slices, coronal and sagittal (``MprCell``: the grid's
``SharedVolumes`` builds the one Volume from the viewer's frames in a job, ``build_view``), and
a coronal turned 30 degrees into an oblique plane (the crosshair rotation). Every reformat then
steps through ``STEPS`` planes with a repaint each, so each reformat's image cache is full (its
bounded steady state while reading).

Measured: growth of the process's RSS and of tracemalloc's traced memory (numpy reports its
buffers to tracemalloc; Qt's images are in the RSS only) from just before the first slice
exists to the end, after ``gc.collect()``, in a second run (a first one with 8 slices pays
the one-time costs: imports such as scipy for the oblique plane, Qt's fonts). Also the peaks:
of the RSS (sampled every 5 ms by a thread) and tracemalloc's (which counts the whole volume
from its ``np.empty``, before its pages are touched, while the frames still exist), and how
much of the RSS growth was freed memory glibc had kept (``core.imaging.memory``, after the
measurement). Baseline in the same run: the volume's bytes plus the display buffers (each
cell's 8-bit image of what it shows, rows padded to 4 bytes as a QImage pads them, and the
window's ARGB32 backing store). Figure: RSS growth / baseline (goal <= 1.2x).
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from typing import Any

SLICES = 400
SIZE = (512, 512)
SPACING = (2.5, 0.7, 0.7)  # (slice, row, col) mm
STEPS = 20
WINDOW = (1200, 900)
MB = 1024 * 1024


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _frame(k: int) -> Any:
    """Slice ``k`` as the loader hands it over: its own float32 array in HU, value range set."""
    import numpy as np

    from core.imaging.pixels import gray_frame

    r = np.arange(SIZE[0], dtype=np.float32)[:, None]
    c = np.arange(SIZE[1], dtype=np.float32)[None, :]
    values = np.sin(r / 17.0) * np.cos(c / 23.0) * np.float32(400.0) + np.float32(3.0 * k - 600)
    return gray_frame(
        values.astype(np.float32),
        invert=False,
        windows=((40.0, 400.0),),
        units="HU",
        spacing=(SPACING[1], SPACING[2]),
    )


class _PeakRss:
    """The highest RSS seen while running (a thread polls every 5 ms)."""

    def __init__(self) -> None:
        import threading

        self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _wait(app: Any, done: Any, what: str, timeout: float = 300.0) -> None:
    end = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > end:
            raise TimeoutError(f"{what} did not finish in {timeout:.0f} s")
        app.processEvents()
        time.sleep(0.005)


def run(slices: int = SLICES) -> dict[str, float]:
    """Show a ``slices``-slice series in four viewports with MPR; the figures (bytes, ratio)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from core.imaging.model import Patient, Study, StudyIndex
    from core.viewer.layout import Layout
    from core.viewer.state import ViewerState
    from desktop.viewport_grid import ViewportGrid
    from desktop.viewport_widget import ViewportWidget
    from desktop.workers import ErrorSink, JobRunner
    from tests.viewer.synthetic import stack

    app = QApplication.instance() or QApplication([])
    series = stack(
        "2.25.1.400",
        slices,
        SPACING[0],
        start=(-179.0, -179.0, -500.0),
        size=SIZE,
        pixel_spacing=(SPACING[1], SPACING[2]),
    )
    uid = series.series_instance_uid
    sink = ErrorSink()
    errors: list[str] = []
    sink.message.connect(lambda job, text: errors.append(f"{job}: {text}"))
    runner = JobRunner(sink)
    first = ViewerState()
    study = Study("2.25.1", "20260101", description="MPR memory", series={uid: series})
    first.add_index(
        StudyIndex(patients={"BENCH": Patient("BENCH", "BENCH^MPR", studies={"2.25.1": study})})
    )
    layout = Layout(2, 2, first=first)
    grid = ViewportGrid(layout, ViewportWidget(first), runner=runner)
    grid.resize(*WINDOW)
    grid.show()
    app.processEvents()

    gc.collect()
    rss0 = _rss()
    sampler = _PeakRss()
    tracemalloc.start()
    traced0 = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    for i, orientation in enumerate(("acquired", "coronal", "sagittal", "coronal")):
        layout.assign(i, series, orientation)  # type: ignore[arg-type]
    for k in range(slices):
        layout.deliver_frame(uid, k, _frame(k))
    app.processEvents()
    cells = [grid.mpr[i] for i in (1, 2, 3)]
    _wait(app, lambda: all(c.view is not None for c in cells) or bool(errors), "the reformats")
    if errors:
        raise RuntimeError("; ".join(errors))
    cells[2].tilt("u", 30.0)  # the fourth viewport: an oblique plane
    for _ in range(STEPS):
        first.set_slice((first.viewport.slice_index + 1) % slices)
        for cell in cells:
            assert cell.view is not None
            cell.view.step(1)
        grid.repaint()
        _wait(app, lambda: runner.active == 0, "rendering")  # the oblique plane: in a job
    grid.repaint()
    seconds = time.perf_counter() - t0
    gc.collect()
    traced1, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = sampler.stop()
    rss1 = _rss()
    from core.imaging.memory import give_back_freed_memory

    give_back_freed_memory()
    retained = rss1 - _rss()  # freed, but kept by the allocator until trimmed

    volume = grid.volumes.get(series, first.slices, first.frames)  # the one already built
    views = [c.view for c in cells if c.view is not None]
    reformats = {id(r): r for v in views for r in (*v._standard.values(), v.reformat)}
    cached = sum(int(image.nbytes) for r in reformats.values() for image in r._cache.items.values())
    images = [SIZE] + [(v.plane().rows, v.plane().cols) for v in views]
    display = sum(rows * ((cols + 3) // 4 * 4) for rows, cols in images)
    display += grid.width() * grid.height() * 4
    baseline = volume.nbytes + display
    grid.close()
    grid.deleteLater()
    runner.shutdown()
    app.processEvents()
    return {
        "slices": slices,
        "volume": volume.nbytes,
        "display": display,
        "cached": cached,
        "rss": rss1 - rss0,
        "traced": traced1 - traced0,
        "peak": peak - traced0,
        "rss_peak": rss_peak - rss0,
        "retained": retained,
        "ratio_rss": (rss1 - rss0) / baseline,
        "ratio_traced": (traced1 - traced0) / baseline,
        "seconds": seconds,
        "shares": float(all(f is not None and f.values.base is not None for f in first.frames)),
    }


def main() -> None:
    run(8)  # warm-up: imports (scipy for the oblique plane), Qt's fonts and styles, once
    f = run(SLICES)
    print(
        f"series {int(f['slices'])} x {SIZE[0]} x {SIZE[1]}: volume {f['volume'] / MB:.0f} MiB, "
        f"display buffers {f['display'] / MB:.1f} MiB (baseline = their sum)"
    )
    print(
        f"  4 viewports (acquired, coronal, sagittal, oblique), {STEPS} steps each, "
        f"{f['seconds']:.1f} s; reformat image caches {f['cached'] / MB:.1f} MiB; "
        f"acquired frames are views of the volume: {bool(f['shares'])}"
    )
    print(
        f"  growth: RSS {f['rss'] / MB:.0f} MiB, numpy (tracemalloc) {f['traced'] / MB:.0f} MiB, "
        f"peak: RSS {f['rss_peak'] / MB:.0f} MiB, tracemalloc {f['peak'] / MB:.0f} MiB"
    )
    print(
        f"ratio (RSS growth / baseline): {f['ratio_rss']:.3f}x (goal <= 1.2x); "
        f"numpy only: {f['ratio_traced']:.3f}x"
    )
    print(
        f"  of the RSS growth, {f['retained'] / MB:.0f} MiB is freed memory glibc kept "
        "(malloc_trim gave it back after the measurement)"
    )


if __name__ == "__main__":
    main()
