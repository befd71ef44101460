"""Offscreen screenshot of the main window with a CT series open, a length and an ROI drawn.

``python -m desktop.screenshot --out out/screenshot.png [PATH]`` (``make screenshot``).
Default PATH: the shared 134-slice CT if present, else the bundled sample study.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_CT = REPO.parent / "shared" / "data" / "dicom" / "pyvista__vtk-data" / "Data" / "DICOM_Stack"
SAMPLE = REPO / "resources" / "sample"


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Run the Qt event loop until ``predicate()`` holds or the time is up."""
    from PySide6.QtCore import QEventLoop, QTimer

    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    timer = QTimer()

    def check() -> None:
        if predicate() or time.monotonic() > deadline:
            loop.quit()

    timer.timeout.connect(check)
    timer.start(20)
    if not predicate():
        loop.exec()
    timer.stop()
    return predicate()


def take(
    out: Path,
    paths: list[Path],
    size: tuple[int, int] = (1600, 1000),
    hide_phi: bool = False,
    timeout_s: float = 120.0,
) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from core.viewer.measure import Measurement
    from desktop.main_window import MainWindow
    from desktop.theme import apply_dark_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_dark_theme(app)  # type: ignore[arg-type]
    win = MainWindow()
    win.resize(*size)
    win.state.hide_phi = hide_phi
    win.show()
    win.open_paths([str(p) for p in paths])
    ctl, st = win.controller, win.state
    ok = wait_until(lambda: "series_loaded" in ctl.timings and not ctl.thumb_jobs, timeout_s)
    if not ok:
        print(
            f"screenshot: {[str(p) for p in paths]} did not load within {timeout_s:.0f} s",
            file=sys.stderr,
        )
        win.shutdown()
        return 1
    frame = st.current_frame()
    if frame is not None:
        rows, cols = frame.shape
        i = st.viewport.slice_index
        st.add_measurement(
            Measurement("length", i, (cols * 0.30, rows * 0.62), (cols * 0.62, rows * 0.62))
        )
        st.add_measurement(
            Measurement("roi", i, (cols * 0.06, rows * 0.06), (cols * 0.20, rows * 0.18))
        )
    wait_until(lambda: bool(win.tags.rows), 10.0)
    wait_until(lambda: False, 0.3)  # let the last paints and dock layouts settle
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = win.grab().save(str(out))
    win.shutdown()
    win.close()
    if not saved:
        print(f"screenshot: could not write '{out}'", file=sys.stderr)
        return 1
    print(f"screenshot written to '{out}'")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m desktop.screenshot", description=__doc__)
    parser.add_argument("path", nargs="?", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "screenshot.png")
    parser.add_argument("--size", default="1600x1000", help="window size WxH")
    parser.add_argument("--hide-phi", action="store_true", help="hide patient-identifying text")
    args = parser.parse_args(argv)
    # default: the shared CT (shown, as the biggest series) next to the bundled sample study
    paths = [args.path] if args.path else [p for p in (SHARED_CT, SAMPLE) if p.is_dir()]
    missing = [p for p in paths if not p.exists()]
    if missing or not paths:
        print(f"screenshot: '{missing[0] if missing else SAMPLE}' does not exist", file=sys.stderr)
        return 2
    w, h = (int(v) for v in args.size.lower().split("x"))
    return take(args.out, paths, (w, h), args.hide_phi)


if __name__ == "__main__":
    sys.exit(main())
