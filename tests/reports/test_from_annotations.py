"""The annotation engineer's model (core.annotations) exported: every tool on the real CT as
GSPS and TID 1500 objects that dciodvfy accepts, in DICOM's (column, row) order, with the
values the viewer computes (core.annotations.compute) from the real pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from core.annotations import compute
from core.annotations.model import AcquiredImage, Annotation, Kind, PlaneImage
from core.dicom_out.from_annotations import marks_from_annotations
from core.dicom_out.gsps import Window, build_gsps
from core.dicom_out.measurements import build_measurement_report
from core.dicom_out.read import read_gsps, read_measurements
from tests.reports.conftest import dciodvfy


def _hu(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_every_tool_exports_valid_gsps_and_tid1500(ct3, tmp_path: Path) -> None:
    ds = ct3[1]
    spacing = tuple(float(v) for v in ds.PixelSpacing)
    image = AcquiredImage(str(ds.SOPInstanceUID), 0, spacing)  # type: ignore[arg-type]
    study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)

    def make(kind: Kind, points, text: str = "") -> Annotation:
        return Annotation(kind, points, image, study, series, author="dr-a", text=text)

    annotations = [
        make(Kind.LENGTH, ((100, 120), (140, 150)), "L1"),
        make(Kind.ANGLE, ((100, 100), (150, 150), (100, 200))),
        make(Kind.COBB, ((50, 50), (60, 150), (200, 50), (190, 150))),
        make(Kind.ELLIPSE, ((200, 200), (240, 280)), "liver"),
        make(Kind.RECTANGLE, ((300, 300), (340, 360))),
        make(Kind.FREEHAND, ((10, 10), (10, 60), (50, 35))),
        make(Kind.PROBE, ((256.4, 256.7),)),
        make(Kind.ARROW, ((400, 400), (420, 440))),
        make(Kind.TEXT, ((30, 400),), "see prior"),
        Annotation(
            Kind.LENGTH,
            ((1, 1), (5, 5)),
            PlaneImage((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1)),
            study,
            series,
        ),
    ]
    hu = _hu(ds)
    marks, skipped = marks_from_annotations(
        annotations, ct3, lambda uid, frame: hu if uid == str(ds.SOPInstanceUID) else None, "HU"
    )
    assert [s.uid for s in skipped] == [annotations[-1].uid]
    assert "reformatted plane" in skipped[0].reason
    kinds = [m.kind for m in marks]
    assert kinds == [
        "polyline",
        "polyline",
        "polyline",
        "polyline",
        "ellipse",
        "polygon",
        "polygon",
        "point",
        "polyline",
        "text",
    ]
    length = marks[0]
    assert length.points == ((120.0, 100.0), (150.0, 140.0))  # (column, row)
    assert length.values[0].value == compute.length(annotations[0]).value
    ellipse = marks[4]
    # 80 px wide, 40 px tall: the major axis runs across, then the minor axis down
    assert ellipse.points == ((200.0, 220.0), (280.0, 220.0), (240.0, 200.0), (240.0, 240.0))
    stats = compute.roi_stats(annotations[3], hu, "HU")
    assert stats is not None
    assert {v.name: v.value for v in ellipse.values}["mean"] == stats.mean
    assert {v.name: v.unit for v in ellipse.values}["mean"] == "[hnsf'U]"

    gsps = build_gsps(marks, ct3, creator="dr-a", window=Window(40, 400))
    tid1500 = build_measurement_report(marks, ct3, observer="dr-a")
    for obj in (gsps, tid1500):
        errors, _ = dciodvfy(obj, tmp_path)
        assert errors == set()
    drawn = read_gsps(gsps)[marks[0].image]
    assert len([g for g in drawn if g.kind != "TEXT"]) == 9  # the text mark draws text only
    measured = read_measurements(tid1500)[marks[0].image]
    assert {m.label for m in measured} >= {"L1", "liver", "Angle", "Cobb", "Probe"}


def test_stored_key_images_become_one_kos_per_title(ct3, enhanced_mr, tmp_path: Path) -> None:
    from core.annotations.store import KeyImage as StoredKeyImage
    from core.annotations.store import Purpose
    from core.dicom_out.from_annotations import key_images_by_title
    from core.dicom_out.kos import build_kos
    from core.dicom_out.read import read_kos

    def stored(ds: pydicom.Dataset, frame: int, purpose: Purpose, uid: str) -> StoredKeyImage:
        return StoredKeyImage(
            uid,
            str(ds.StudyInstanceUID),
            str(ds.SeriesInstanceUID),
            str(ds.SOPInstanceUID),
            frame,
            "dr-a",
            purpose,
        )

    keys = [
        stored(ct3[0], 0, Purpose.OF_INTEREST, "k1"),
        stored(ct3[2], 0, Purpose.FOR_REPORT, "k2"),
        stored(ct3[1], 0, Purpose.OF_INTEREST, "k3"),
        stored(enhanced_mr, 4, Purpose.OF_INTEREST, "k4"),  # another study: not in the sources
    ]
    titles, skipped = key_images_by_title(keys, ct3)
    assert [s.uid for s in skipped] == ["k4"]
    assert {t: [k.image.sop_instance_uid for k in ks] for t, ks in titles.items()} == {
        "of_interest": [str(ct3[0].SOPInstanceUID), str(ct3[1].SOPInstanceUID)],
        "for_report": [str(ct3[2].SOPInstanceUID)],
    }
    for title, chosen in titles.items():
        kos = build_kos(chosen, ct3, observer="dr-a", title=title)
        errors, _ = dciodvfy(kos, tmp_path)
        assert errors == set()
        assert [r.sop_instance_uid for r in read_kos(kos).images] == [
            k.image.sop_instance_uid for k in chosen
        ]
    (mr_titles, _) = key_images_by_title(keys[3:], [enhanced_mr])
    assert [k.image.frame for k in mr_titles["of_interest"]] == [5]  # 0-based 4 is DICOM's 5
