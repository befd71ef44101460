"""Key-image and annotation exports after review (issue 17), on a real profile with the real
3-slice CT: an annotation drawn on a reformatted plane is said to be left out of GSPS and TID
1500 (as the README promises) rather than dropped silently; an older scan of the open KOS
documents never overwrites the list a newer scan made."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.annotations.model import AcquiredImage, Annotation, Kind, PlaneImage
from core.app import annotations as notes
from core.app.access import series_viewed
from core.app.workstation import Workstation
from core.imaging.index import build_index
from core.reports.items import ImageRef
from desktop.key_images import export_annotations_job
from desktop.workers import JobContext
from tests.desktop.test_report_workflow import (  # the workflow tests' window fixture
    CT3_DIR,
    TIMEOUT_MS,
    _open,
    make_window,  # noqa: F401
)
from tests.reports.conftest import PASSWORD, add_users


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    w = Workstation.open(tmp_path / "ws.db")
    add_users(w)
    w.session.login("dr-a", PASSWORD)
    yield w
    w.close()


def test_an_annotation_on_a_reformatted_plane_is_said_to_be_left_out(
    ws: Workstation, tmp_path: Path
) -> None:
    if not CT3_DIR.is_dir():
        pytest.skip(f"the shared 3-slice CT is not at '{CT3_DIR}'")
    ((patient, st, series),) = list(build_index([str(CT3_DIR)]).iter_series())
    series_viewed(ws, patient, st, series)
    study_uid, series_uid = st.study_instance_uid, series.series_instance_uid
    inst = series.instances[0]
    image = AcquiredImage(inst.sop_instance_uid, 0, inst.pixel_spacing)
    notes.create_annotation(
        ws, Annotation(Kind.LENGTH, ((100, 100), (100, 200)), image, study_uid, series_uid)
    )
    plane = PlaneImage((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.8, 0.8), "1.2.3")
    notes.create_annotation(
        ws, Annotation(Kind.ANGLE, ((1, 1), (5, 5), (9, 1)), plane, study_uid, series_uid)
    )
    paths = {i.sop_instance_uid: i.path for i in series.instances}
    out = tmp_path / "out"
    out.mkdir()
    ctx = JobContext(threading.Event(), lambda _v: None)
    done, left_out = export_annotations_job(
        ctx, ws, study_uid, paths, {}, lambda _s, _f: None, {}, out, False
    )
    assert {e.kind for e in done} == {"GSPS", "TID1500"}
    assert left_out == ["angle on a reformatted plane (not an acquired image)"]


def test_an_older_kos_scan_does_not_overwrite_a_newer_one(qtbot, make_window) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from tests.desktop.workstation.helpers import CR

    win, gui = make_window()
    _open(qtbot, win, gui, CR)
    keys = gui.keys
    ref = ImageRef("1.2.840.10008.5.1.4.1.1.1", "1.2.3.4.5", None)
    keys._kos_paths = ("newer.dcm",)  # the scan started last: what is open now
    keys._kos_read(("older.dcm",), [("Of Interest", [ref])])
    assert keys.others.count() == 0
    assert keys.selected == []
    keys._kos_read(("newer.dcm",), [("For Report Attachment", [ref])])
    assert keys.others.count() == 1
    assert keys.others.item(0).text().startswith("For Report Attachment: ")
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)


def test_the_export_says_what_it_left_out(qtbot, make_window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    if not CT3_DIR.is_dir():
        pytest.skip(f"the shared 3-slice CT is not at '{CT3_DIR}'")
    win, gui = make_window()
    study_uid = _open(qtbot, win, gui, CT3_DIR)
    state = win.state
    ref = state.current_slice()
    assert ref is not None
    assert state.series is not None
    series_uid = state.series.series_instance_uid
    image = AcquiredImage(ref.instance.sop_instance_uid, ref.frame, ref.instance.pixel_spacing)
    ws = win.workstation
    notes.create_annotation(
        ws, Annotation(Kind.LENGTH, ((100, 100), (100, 200)), image, study_uid, series_uid)
    )
    plane = PlaneImage((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.8, 0.8), "1.2.3")
    notes.create_annotation(
        ws, Annotation(Kind.ANGLE, ((1, 1), (5, 5), (9, 1)), plane, study_uid, series_uid)
    )
    out = tmp_path / "out"
    out.mkdir()
    assert gui.keys.export_annotations(out)
    qtbot.waitUntil(lambda: bool(gui.keys.last_export), timeout=TIMEOUT_MS)
    said = gui.keys.status.text()
    assert said.startswith("Exported GSPS")
    assert "Left out (1): angle on a reformatted plane (not an acquired image)" in said
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)


def test_report_lines_name_secondary_capture_as_pydicom_does() -> None:
    from pydicom.uid import SecondaryCaptureImageStorage

    from desktop.report_sources import SECONDARY_CAPTURE_CLASS

    assert SecondaryCaptureImageStorage == SECONDARY_CAPTURE_CLASS
