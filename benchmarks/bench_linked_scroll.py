"""Scrolling four linked viewports vs one (issue 16: time per step <= 4x one viewport's).

The real 134-slice CT is decoded once; the "prior" is the same frames under a second series
(another Frame of Reference, so it links by index). One step = the active viewport's slice
changes, the link group moves the others, and every visible viewport (and its reference-line
overlay) repaints synchronously (``QWidget.repaint``), which is what a wheel notch costs the GUI
thread. Baseline: the same steps in a 1x1 layout in the same run. Figures: median and p99 time
per step, and their ratio (goal <= 4x); the p99 is also the event-loop stall a step causes
(goal < 30 ms). A second 2x2 shows the reading-room layout: current axial + its coronal reformat,
prior axial + its sagittal reformat, so reference lines are drawn into the reformats at each step.
"""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CT = REPO.parent / "shared" / "data" / "dicom" / "pyvista__vtk-data" / "Data" / "DICOM_Stack"
STEPS = 120


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main() -> None:
    from PySide6.QtWidgets import QApplication

    from core.imaging.index import build_index
    from core.imaging.volume import iter_load
    from core.viewer.layout import Layout
    from core.viewer.state import ViewerState
    from desktop.viewport_grid import ViewportGrid
    from desktop.viewport_widget import ViewportWidget

    app = QApplication.instance() or QApplication([])
    index = build_index([CT])
    (_, study, series), *_ = list(index.iter_series())
    frames = dict(iter_load(series))
    prior = copy.deepcopy(series)
    prior.series_instance_uid += ".9"
    for inst in prior.instances:
        inst.frame_of_reference_uid = "9.9.prior"
    study.series[prior.series_instance_uid] = prior

    from desktop.workers import ErrorSink, JobRunner

    def run(rows: int, cols: int, reformats: dict[int, str] | None = None) -> list[float]:
        """``reformats``: cell -> plane shown as a reformat (built in the grid's jobs, as the
        window does), so that reference lines cross the acquired viewports and the reformats."""
        first = ViewerState()
        first.add_index(index)
        layout = Layout(rows, cols, first=first)
        sink = ErrorSink()
        runner = JobRunner(sink)
        grid = ViewportGrid(layout, ViewportWidget(first), runner)
        grid.resize(1200, 900)
        grid.show()
        for i in range(len(layout)):
            layout.assign(i, series if i % 2 == 0 else prior)
        for k, frame in frames.items():
            layout.deliver_frame(series.series_instance_uid, k, frame)
            layout.deliver_frame(prior.series_instance_uid, k, frame)
        for i, plane in (reformats or {}).items():
            grid.set_orientation(plane, i)
        deadline = time.perf_counter() + 120
        while any(c.view is None for c in grid.mpr.values()) and time.perf_counter() < deadline:
            app.processEvents()
            time.sleep(0.01)
        grid.links.set_links(scroll=True)
        grid.set_reference_lines(True)
        app.processEvents()
        times = []
        for s in range(STEPS):
            start = time.perf_counter()
            first.set_slice(10 + s % 100)
            grid.repaint()  # the grid and every viewport and overlay in it
            times.append(time.perf_counter() - start)
        painted = sum(o.lines_drawn for o in grid.overlays)
        grid.close()
        grid.deleteLater()
        runner.shutdown()
        app.processEvents()
        shown = f", reformats {sorted(reformats.values())}" if reformats else ""
        lines = f"reference lines drawn: {painted}"
        print(f"  {rows}x{cols}: {len(layout)} viewport(s){shown}, {lines}")
        return times

    one = run(1, 1)
    four = run(2, 2)
    m1, m4 = statistics.median(one), statistics.median(four)
    print(f"one viewport: median {m1 * 1e3:.2f} ms, p99 {_p99(one) * 1e3:.2f} ms per step")
    print(f"2x2 linked:   median {m4 * 1e3:.2f} ms, p99 {_p99(four) * 1e3:.2f} ms per step")
    print(f"ratio (median): {m4 / m1:.2f}x (goal <= 4x); stall p99 {_p99(four) * 1e3:.1f} ms")
    # the reading-room layout: current axial + its coronal, prior axial + its sagittal; the
    # axial cells scroll linked, the reformats redraw the lines where the axial planes cut them
    mpr = run(2, 2, {1: "coronal", 3: "sagittal"})
    m = statistics.median(mpr)
    print(f"2x2 with reformats: median {m * 1e3:.2f} ms, p99 {_p99(mpr) * 1e3:.2f} ms per step")
    print(f"ratio (median): {m / m1:.2f}x (goal <= 4x); stall p99 {_p99(mpr) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
