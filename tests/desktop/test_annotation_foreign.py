"""Other systems' GSPS graphics and TID 1500 measurements among the files opened are drawn
over their image, read-only, each naming the system that made it (objects built here with
highdicom, as another vendor's would be, and opened from disk with the image)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pydicom
import pytest
from PySide6.QtCore import QPoint, Qt

from core.annotations.model import AcquiredImage, Annotation, Kind
from core.dicom_out.from_annotations import marks_from_annotations
from core.dicom_out.gsps import build_gsps
from core.dicom_out.measurements import build_measurement_report
from desktop.annotation_layer import install_annotations, where_acquired

CR = Path(__file__).resolve().parents[2] / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"


def other_systems_objects(folder: Path) -> tuple[Annotation, Annotation]:
    """The CR and, beside it, a GSPS by 'Acme PACS' and a TID 1500 report by 'Acme CAD'."""
    folder.mkdir()
    shutil.copy(CR, folder / "image.dcm")
    ds = pydicom.dcmread(CR)
    pixels = ds.pixel_array
    image = AcquiredImage(str(ds.SOPInstanceUID), 0, None)
    study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
    line = Annotation(Kind.LENGTH, ((400.0, 300.0), (400.0, 700.0)), image, study, series)
    box = Annotation(Kind.RECTANGLE, ((900.0, 900.0), (1100.0, 1200.0)), image, study, series)
    marks, skipped = marks_from_annotations([line, box], [ds], lambda _uid, _frame: pixels)
    assert not skipped
    gsps = build_gsps(marks, [ds], creator="OTHER^READER")
    gsps.Manufacturer, gsps.ManufacturerModelName = "Acme PACS", "Viewer 9"
    gsps.save_as(folder / "gsps.dcm")
    sr = build_measurement_report(marks, [ds], observer="OTHER^READER")
    sr.Manufacturer = "Acme CAD"
    sr.save_as(folder / "sr.dcm")
    return line, box


def test_gsps_and_tid1500_of_other_systems_are_drawn_read_only_naming_them(
    qtbot: Any, window: Any, tmp_path: Path
) -> None:
    line, _box = other_systems_objects(tmp_path / "study")
    layer = install_annotations(window)
    window.open_paths([tmp_path / "study"])
    qtbot.waitUntil(lambda: where_acquired(window.viewport) is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not window.controller.indexing, timeout=60_000)
    foreign = layer.foreign
    qtbot.waitUntil(lambda: len(foreign.marks) > 0 and window.runner.active == 0, timeout=30_000)
    window.viewport.repaint()
    painted = foreign.painted
    systems = {m.system for m in painted}
    assert systems == {"Acme PACS Viewer 9", "Acme CAD"}
    gsps_points = {m.points for m in painted if m.system == "Acme PACS Viewer 9" and m.points}
    flat = [v for p in line.points for v in p]
    assert any([v for q in p for v in q] == pytest.approx(flat, abs=0.01) for p in gsps_points)
    sr_lines = " ".join(" ".join(m.lines) for m in painted if m.system == "Acme CAD")
    assert "Length 400 px" in sr_lines  # the line's length, as the report says it
    assert "Rectangle: Area 60000 px²" in sr_lines
    # read-only: not the reader's own annotations, a click on one selects nothing
    assert layer.shown == {}
    at = where_acquired(window.viewport)
    assert at is not None
    x, y = at.to_screen((400.0, 500.0))
    qtbot.mouseClick(window.viewport, Qt.MouseButton.LeftButton, pos=QPoint(round(x), round(y)))
    assert layer.selected is None

    # the reader's own labels and the other systems' never overlap
    use_length = window.actions_by_name["Length"]
    use_length.trigger()
    at = where_acquired(window.viewport)
    assert at is not None
    a, b = at.to_screen((400.0, 300.0)), at.to_screen((400.0, 700.0))
    qtbot.mousePress(
        window.viewport, Qt.MouseButton.LeftButton, pos=QPoint(round(a[0]), round(a[1]) + 2)
    )
    qtbot.mouseMove(window.viewport, QPoint(round(b[0]), round(b[1]) + 2))
    qtbot.mouseRelease(
        window.viewport, Qt.MouseButton.LeftButton, pos=QPoint(round(b[0]), round(b[1]) + 2)
    )
    qtbot.waitUntil(lambda: layer.writer.pending == 0, timeout=5_000)
    window.viewport.repaint()
    own = [r for _, _, r in layer.painted_items(window.viewport) if r.width > 0]
    assert len(own) == 1
    theirs = foreign.label_rects
    assert len(theirs) == len(painted)
    everything = own + theirs
    assert not any(x.intersects(y) for i, x in enumerate(everything) for y in everything[i + 1 :])
