"""Opening a study that hangs by its protocol, as the app runs (issue 16: CT + prior in four
viewports, the first image painted within 10% of the time to load both series).

A throw-away encrypted profile is signed in, a prior is made of the real 134-slice CT (its files
copied under new study/series/instance UIDs and an earlier date) and indexed into the local study
database, then the current CT is opened in the main window with File > Open folder's path
(``MainWindow.open_paths``): the window indexes it, shows the first image, finds the prior in the
study database and hangs the shipped protocol (2 x 2: axial, coronal, sagittal of the current
CT + the prior) on its own (``desktop.auto_hang``). Measured from ``open_paths``: the first
image painted in any viewport, the first image of the prior's viewport (the hanging is complete
on screen), and both series fully loaded in all four viewports; the figures are the ratios of the
first two to the third. The file cache is warmed by one load of each series first, so the ratio
reflects the viewer, not the disk.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CT = REPO.parent / "shared" / "data" / "dicom" / "pyvista__vtk-data" / "Data" / "DICOM_Stack"
RUNS = 3


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="doctorai-bench-hanging-") as name:
        tmp = Path(name)
        os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
        os.environ["XDG_DATA_HOME"] = str(tmp / "xdg")  # a throw-away keyring for the key
        os.environ["DOCTORAI_HOME"] = str(tmp / "profile")
        os.environ["DOCTORAI_MACHINE_CONFIG"] = str(tmp / "machine.toml")  # the defaults
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _run(tmp)


def _run(tmp: Path) -> None:
    import keyring
    from keyrings.alt.file import PlaintextKeyring
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication

    from core.app.access import index_read
    from core.app.workstation import Workstation
    from core.config import SecuritySettings
    from core.imaging.index import build_index
    from core.imaging.volume import iter_load
    from desktop.main_window import MainWindow
    from desktop.viewport_widget import ViewportWidget
    from tests.desktop.test_hang_on_open import copy_as_study
    from tests.desktop.workstation.helpers import PASSWORD, add_users

    keyring.set_keyring(PlaintextKeyring())
    app = QApplication.instance() or QApplication([])
    _prior_study, prior_series = copy_as_study(sorted(CT.glob("*.dcm")), tmp / "prior", "20100101")
    ws = Workstation.open(tmp / "ws.db", SecuritySettings(lock_timeout_min=60))
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    index_read(ws, build_index([str(tmp / "prior")]), action="bench-setup")
    for folder in (CT, tmp / "prior"):  # warm the file cache
        for _p, _st, series in build_index([str(folder)]).iter_series():
            for _ in iter_load(series):
                pass

    class Paints(QObject):
        """When a viewport first painted a decoded image, and the prior's viewport did."""

        def __init__(self) -> None:
            super().__init__()
            self.first: float | None = None
            self.prior: float | None = None

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and isinstance(obj, ViewportWidget):
                st = obj.state
                if st.loaded_count and st.current_frame() is not None:
                    now = time.perf_counter()
                    self.first = self.first or now
                    uid = st.series.series_instance_uid if st.series is not None else ""
                    if uid == prior_series and self.prior is None:
                        self.prior = now
            return False

    firsts, priors = [], []
    try:
        for run in range(RUNS):
            win = MainWindow(workstation=ws, lock_check_ms=600_000)
            win.resize(1600, 1000)
            win.show()
            app.processEvents()
            paints = Paints()
            app.installEventFilter(paints)
            start = time.perf_counter()
            win.open_paths([str(CT)])
            deadline = start + 300
            while time.perf_counter() < deadline and not _all_loaded(win):
                app.processEvents()
                time.sleep(0.001)
            done = time.perf_counter()
            app.removeEventFilter(paints)
            hanging = win.auto_hang.hanging
            protocol = hanging.protocol if hanging is not None else "(not hung)"
            total = done - start
            first = (paints.first or done) - start
            prior = (paints.prior or done) - start
            firsts.append(first / total)
            priors.append(prior / total)
            print(
                f"  run {run + 1}: hung by '{protocol}'; first image {first * 1e3:.0f} ms, "
                f"prior's first image {prior * 1e3:.0f} ms, both series loaded in four "
                f"viewports {total * 1e3:.0f} ms: {first / total:.1%} / {prior / total:.1%}",
                flush=True,
            )
            win.shutdown(10_000)
            win.close()
            win.deleteLater()
            app.processEvents()
    finally:
        ws.close()
    print(
        f"first image / both series loaded: {min(firsts):.1%}-{max(firsts):.1%} (goal < 10%); "
        f"prior's first image: {min(priors):.1%}-{max(priors):.1%}"
    )


def _all_loaded(win: Any) -> bool:
    """Hung in four viewports, every one with all its slices decoded."""
    states = [c.state for c in win.grid.model]
    return (
        win.auto_hang.hanging is not None
        and len(states) == 4
        and all(s.slice_count and s.loaded_count == s.slice_count for s in states)
    )


if __name__ == "__main__":
    main()
