"""Key images and the annotation exports in a real window on a real signed-in profile (issue
17): K marks the CT slice on screen, the list shows it and double-click brings it back, K again
unmarks it; the key images are exported as a KOS that dciodvfy accepts and that, opened back
in the window as another system's, lists and shows the image it selects; annotations are
exported as GSPS + TID 1500 (dciodvfy) and inserted in the report as measurement lines."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from PySide6.QtCore import Qt

from core.annotations.model import AcquiredImage, Annotation, Kind
from core.annotations.store import Purpose
from core.app import annotations as notes
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.config import SecuritySettings
from core.dicom_out.read import read_kos, read_measurements
from desktop.report_gui import ReportsGui, install_reports
from tests.conftest import DICOM_DATA
from tests.desktop.workstation.helpers import PASSWORD, add_users

CT3_DIR = DICOM_DATA / "QIICR__dcmqi" / "data" / "segmentations" / "ct-3slice"
TIMEOUT_MS = 60_000


def dciodvfy_errors(path: Path) -> set[str]:
    tool = shutil.which("dciodvfy")
    assert tool is not None, "dciodvfy is not installed (apt-get install dicom3tools)"
    out = subprocess.run(
        [tool, str(path)], capture_output=True, text=True, errors="replace", timeout=60
    )
    said = (out.stdout + out.stderr).splitlines()
    assert said, f"dciodvfy printed nothing for {path}"
    return {line.strip() for line in said if line.startswith("Error")}


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    w = Workstation.open(tmp_path / "ws.db", SecuritySettings(lock_timeout_min=30))
    add_users(w)
    w.session.login("rad", PASSWORD)
    yield w
    w.close()


@pytest.fixture
def window(qtbot, ws: Workstation, tmp_path: Path):  # type: ignore[no-untyped-def]
    from desktop.main_window import MainWindow

    if not CT3_DIR.is_dir():
        pytest.skip(f"the shared 3-slice CT is not at '{CT3_DIR}'")
    win = MainWindow(workstation=ws, lock_check_ms=60_000)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    yield win
    assert win.shutdown(20_000)


def _open(qtbot, win, gui: ReportsGui, path: Path) -> str:  # type: ignore[no-untyped-def]
    win.open_paths([str(path)])
    qtbot.waitUntil(
        lambda: "series_loaded" in win.controller.timings and not win.controller.indexing,
        timeout=TIMEOUT_MS,
    )
    win.audit_hooks.flush()
    qtbot.waitUntil(lambda: gui.keys.study_uid != "", timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: gui.panel.doc is not None and gui.panel.doc.loaded, timeout=TIMEOUT_MS)
    return gui.keys.study_uid


def _press_k(qtbot, win, shift: bool = False) -> None:  # type: ignore[no-untyped-def]
    win.activateWindow()
    win.viewport.setFocus()
    mods = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    qtbot.keyClick(win.viewport, Qt.Key.Key_K, mods)


def test_mark_list_show_unmark_and_export_kos(  # type: ignore[no-untyped-def]
    qtbot, window, ws: Workstation, tmp_path: Path
) -> None:
    gui = install_reports(window)
    assert gui is not None
    keys = gui.keys
    study_uid = _open(qtbot, window, gui, CT3_DIR)
    state = window.state
    assert state.slice_count == 3
    state.set_slice(1)
    shown = state.current_slice()
    assert shown is not None
    _press_k(qtbot, window)
    qtbot.waitUntil(lambda: keys.list.count() == 1, timeout=TIMEOUT_MS)
    (key,) = notes.list_key_images(ws, study_uid)
    assert (key.sop_instance_uid, key.purpose) == (
        shown.instance.sop_instance_uid,
        Purpose.OF_INTEREST,
    )
    assert "Of Interest" in keys.list.item(0).text()
    # with a thumbnail of the slice as decoded on screen: a picture, not a blank
    icon = keys.list.item(0).icon()
    assert not icon.isNull()
    picture = icon.pixmap(64, 64).toImage()
    greys = {picture.pixelColor(x, y).value() for x in range(0, 64, 4) for y in range(0, 64, 4)}
    assert len(greys) > 8
    marks = [
        e
        for e in ws.audit.iter_events(event_type=EventType.INSTANCES_ACCESSED)
        if e.details.get("action") == "key-image-mark"
    ]
    assert len(marks) == 1

    # double-click shows the key image again
    state.set_slice(0)
    keys._show_item(keys.list.item(0))
    assert state.viewport.slice_index == 1

    # K again on the same image unmarks it; Shift+K marks it for the report
    _press_k(qtbot, window)
    qtbot.waitUntil(lambda: keys.list.count() == 0, timeout=TIMEOUT_MS)
    assert notes.list_key_images(ws, study_uid) == []
    _press_k(qtbot, window, shift=True)
    qtbot.waitUntil(lambda: keys.list.count() == 1, timeout=TIMEOUT_MS)
    assert "For Report" in keys.list.item(0).text()
    assert [r.sop_instance_uid for r in keys.report_refs()] == [shown.instance.sop_instance_uid]

    # typing K in the report types a K: the key is the viewer's, not the editor's
    gui.panel.findings.setFocus()
    before = gui.panel.findings.toPlainText()
    qtbot.keyClick(gui.panel.findings, Qt.Key.Key_K)
    assert gui.panel.findings.toPlainText() == "k" + before  # the cursor was at the start
    assert len(notes.list_key_images(ws, study_uid)) == 1
    assert gui.menu is not None
    entries = {a.text(): a.shortcut().toString() for a in gui.menu.actions() if a.text()}
    assert entries["Mark key image"] == "K"
    assert entries["Mark key image for the report"] == "Shift+K"
    assert "Export key images (KOS)…" in entries

    # inserted in the report as a line naming the image
    gui.panel.findings.setFocus()
    gui.panel.insert_key_image_lines()
    qtbot.waitUntil(lambda: "Key image:" in gui.panel.findings.toPlainText(), timeout=TIMEOUT_MS)
    number = shown.instance.instance_number
    assert f"image {number} - for the report" in gui.panel.findings.toPlainText()

    # exported as a KOS that dciodvfy accepts, selecting that image
    out = tmp_path / "kos"
    out.mkdir()
    assert keys.export_kos(out)
    qtbot.waitUntil(lambda: bool(keys.last_export), timeout=TIMEOUT_MS)
    (path,) = out.glob("KOS_*.dcm")
    assert dciodvfy_errors(path) == set()
    kos = pydicom.dcmread(path)
    assert kos.StudyInstanceUID == study_uid
    selection = read_kos(kos)
    assert selection.title == "For Report Attachment"
    assert [r.sop_instance_uid for r in selection.images] == [shown.instance.sop_instance_uid]

    # the KOS opened as another system's: listed with the image it selects, shown on demand
    window.open_paths([str(path)])
    qtbot.waitUntil(lambda: keys.others.count() == 1, timeout=TIMEOUT_MS)
    assert keys.others.item(0).text().startswith("For Report Attachment: series")
    qtbot.waitUntil(lambda: not window.controller.indexing, timeout=TIMEOUT_MS)
    state.set_slice(2)
    keys._show_item(keys.others.item(0))
    assert state.current_slice().instance.sop_instance_uid == shown.instance.sop_instance_uid
    qtbot.waitUntil(lambda: window.runner.active == 0, timeout=TIMEOUT_MS)


def test_annotations_export_as_gsps_and_tid1500_and_insert_as_lines(  # type: ignore[no-untyped-def]
    qtbot, window, ws: Workstation, tmp_path: Path
) -> None:
    gui = install_reports(window)
    assert gui is not None
    study_uid = _open(qtbot, window, gui, CT3_DIR)
    state = window.state
    ref = state.current_slice()
    assert ref is not None
    inst = ref.instance
    image = AcquiredImage(inst.sop_instance_uid, ref.frame, inst.pixel_spacing)
    series_uid = state.series.series_instance_uid
    notes.create_annotation(
        ws, Annotation(Kind.LENGTH, ((100, 100), (100, 200)), image, study_uid, series_uid)
    )
    notes.create_annotation(
        ws, Annotation(Kind.RECTANGLE, ((120, 120), (180, 200)), image, study_uid, series_uid)
    )
    qtbot.waitUntil(lambda: state.current_frame() is not None, timeout=TIMEOUT_MS)

    # inserted as measurement lines, with the ROI's values in HU from the frame on screen
    gui.panel.findings.setFocus()
    gui.panel.insert_measurement_lines()
    qtbot.waitUntil(lambda: "Length" in gui.panel.findings.toPlainText(), timeout=TIMEOUT_MS)
    text = gui.panel.findings.toPlainText()
    spacing = inst.pixel_spacing[1]
    assert f"Length {100 * spacing:.1f} mm (series" in text
    assert "Mean" in text
    assert "HU" in text

    out = tmp_path / "gsps"
    out.mkdir()
    assert gui.keys.export_annotations(out)
    qtbot.waitUntil(lambda: bool(gui.keys.last_export), timeout=TIMEOUT_MS)
    assert {e.kind for e in gui.keys.last_export} == {"GSPS", "TID1500"}
    (gsps_path,) = out.glob("GSPS_*.dcm")
    (sr_path,) = out.glob("TID1500_*.dcm")
    assert dciodvfy_errors(gsps_path) == set()
    assert dciodvfy_errors(sr_path) == set()
    found = read_measurements(pydicom.dcmread(sr_path))
    quantities = {m.quantity for values in found.values() for m in values}
    assert "Length" in quantities
    gsps = pydicom.dcmread(gsps_path)
    voi = gsps.SoftcopyVOILUTSequence[0]
    assert float(voi.WindowWidth) == pytest.approx(state.viewport.window_width)
    qtbot.waitUntil(lambda: window.runner.active == 0, timeout=TIMEOUT_MS)
