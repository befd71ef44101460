"""Objects made by "another system": built here with plain pydicom in structures our builders
never produce (no per-annotation image list, DISPLAY units, a bounding-box text, numbers
directly under the root with a sibling image, multi-valued frame numbers), then read."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from core.dicom_out.read import (
    GSPS_CLASS,
    KOS_CLASS,
    ReadError,
    read_gsps,
    read_kos,
    read_measurements,
)
from core.reports.items import ImageRef

CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _ref(sop_uid: str, frames: list[int] | None = None, sop_class: str = CT) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_uid
    if frames:
        item.ReferencedFrameNumber = frames
    return item


def _content(value_type: str, name: Dataset, relationship: str = "CONTAINS", **values) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = relationship, value_type
    item.ConceptNameCodeSequence = Sequence([name])
    for key, value in values.items():
        setattr(item, key, value)
    return item


def _num(meaning: str, value: float, unit: str, **values) -> Dataset:
    measured = Dataset()
    measured.NumericValue = value
    measured.MeasurementUnitsCodeSequence = Sequence([_code(unit, "UCUM", unit)])
    return _content(
        "NUM",
        _code("X" + meaning[:5], "99OTHER", meaning),
        MeasuredValueSequence=[measured],
        **values,
    )


@pytest.fixture
def images() -> list[str]:
    return [generate_uid() for _ in range(3)]


def test_gsps_annotation_without_its_own_images_applies_to_all(images) -> None:
    ps = Dataset()
    ps.SOPClassUID, ps.SOPInstanceUID = GSPS_CLASS, generate_uid()
    series = Dataset()
    series.SeriesInstanceUID = generate_uid()
    series.ReferencedImageSequence = Sequence([_ref(u) for u in images[:2]])
    ps.ReferencedSeriesSequence = Sequence([series])
    everywhere = Dataset()
    everywhere.GraphicLayer = "OTHER_VENDOR"
    circle = Dataset()
    circle.GraphicAnnotationUnits, circle.GraphicDimensions = "DISPLAY", 2
    circle.NumberOfGraphicPoints, circle.GraphicType = 2, "CIRCLE"
    circle.GraphicData = [0.5, 0.5, 0.6, 0.5]
    circle.GraphicFilled = "N"
    everywhere.GraphicObjectSequence = Sequence([circle])
    boxed = Dataset()
    boxed.BoundingBoxAnnotationUnits = "PIXEL"
    boxed.UnformattedTextValue = "R"
    boxed.BoundingBoxTopLeftHandCorner = [4.0, 8.0]
    boxed.BoundingBoxBottomRightHandCorner = [40.0, 20.0]
    boxed.BoundingBoxTextHorizontalJustification = "LEFT"
    everywhere.TextObjectSequence = Sequence([boxed])
    one_frame = Dataset()
    one_frame.GraphicLayer = "OTHER_VENDOR"
    one_frame.ReferencedImageSequence = Sequence([_ref(images[2], [3, 4])])
    arrow = Dataset()
    arrow.GraphicAnnotationUnits, arrow.GraphicDimensions = "PIXEL", 2
    arrow.NumberOfGraphicPoints, arrow.GraphicType = 2, "POLYLINE"
    arrow.GraphicData = [1.0, 2.0, 3.0, 4.0]
    one_frame.GraphicObjectSequence = Sequence([arrow])
    ps.GraphicAnnotationSequence = Sequence([everywhere, one_frame])

    found = read_gsps(ps)
    for uid in images[:2]:
        drawn = found[ImageRef(CT, uid)]
        assert [(g.kind, g.points, g.units) for g in drawn] == [
            ("CIRCLE", ((0.5, 0.5), (0.6, 0.5)), "DISPLAY"),
            ("TEXT", ((4.0, 8.0),), "PIXEL"),
        ]
        assert drawn[1].text == "R"
    for frame in (3, 4):
        (line,) = found[ImageRef(CT, images[2], frame)]
        assert (line.kind, line.points, line.layer) == (
            "POLYLINE",
            ((1.0, 2.0), (3.0, 4.0)),
            "OTHER_VENDOR",
        )
    assert ImageRef(CT, images[2]) not in found


def test_enhanced_sr_with_numbers_beside_their_image(images) -> None:
    sr = Dataset()
    sr.SOPClassUID, sr.SOPInstanceUID = ENHANCED_SR, generate_uid()
    sr.ValueType = "CONTAINER"
    sr.ConceptNameCodeSequence = Sequence([_code("OTHER", "99OTHER", "Vendor measurements")])
    sibling_image = _content(
        "IMAGE", _code("IMG", "99OTHER", "Image"), ReferencedSOPSequence=[_ref(images[0])]
    )
    diameter = _num("Diameter", 17.5, "mm")
    outline = _content(
        "SCOORD",
        _code("OUT", "99OTHER", "Outline"),
        "INFERRED FROM",
        GraphicType="POLYLINE",
        GraphicData=[1.0, 1.0, 5.0, 5.0],
    )
    outline.ContentSequence = Sequence(
        [
            _content(
                "IMAGE",
                _code("SRC", "99OTHER", "Source"),
                "SELECTED FROM",
                ReferencedSOPSequence=[_ref(images[1], [2])],
            )
        ]
    )
    own_coords = _num("Width", 3.25, "cm", ContentSequence=[outline])
    nested = _content("CONTAINER", _code("GRP", "99OTHER", "Group"), ContinuityOfContent="SEPARATE")
    nested.ContentSequence = Sequence(
        [
            _content("TEXT", _code("112039", "DCM", "Tracking Identifier"), TextValue="nodule A"),
            _num("Volume", 900.0, "mm3"),
        ]
    )
    sr.ContentSequence = Sequence([sibling_image, diameter, own_coords, nested])

    found = read_measurements(sr)
    assert [(m.quantity, m.value, m.unit, m.label) for m in found[ImageRef(CT, images[0])]] == [
        ("Diameter", 17.5, "mm", ""),
        ("Volume", 900.0, "mm3", "nodule A"),  # inherits the root's image, has its own label
    ]
    (width,) = found[ImageRef(CT, images[1], 2)]
    assert (width.quantity, width.value, width.unit) == ("Width", 3.25, "cm")
    assert (width.graphic_type, width.points) == ("POLYLINE", ((1.0, 1.0), (5.0, 5.0)))
    sr.ContentSequence = Sequence([_num("Loose", 1.0, "1")])
    assert list(read_measurements(sr)) == [None]  # a number about no image is kept, unplaced


def test_kos_with_a_composite_and_multi_valued_frames(images) -> None:
    kos = Dataset()
    kos.SOPClassUID, kos.SOPInstanceUID = KOS_CLASS, generate_uid()
    kos.ConceptNameCodeSequence = Sequence([_code("113013", "DCM", "Best In Set")])
    multi = _content(
        "IMAGE", _code("SRC", "99OTHER", "Source"), ReferencedSOPSequence=[_ref(images[0], [1, 7])]
    )
    pdf = _content(
        "COMPOSITE",
        _code("SRC", "99OTHER", "Source"),
        ReferencedSOPSequence=[_ref(images[1], sop_class="1.2.840.10008.5.1.4.1.1.104.1")],
    )
    kos.ContentSequence = Sequence([multi, pdf])
    selection = read_kos(kos)
    assert selection.title == "Best In Set"
    assert [(r.sop_instance_uid, r.frame) for r in selection.images] == [
        (images[0], 1),
        (images[0], 7),
        (images[1], None),
    ]
    kos.ContentSequence = Sequence([])
    with pytest.raises(ReadError, match="selects nothing"):
        read_kos(kos)


def test_the_wrong_kind_of_object_is_named(images) -> None:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CT, images[0]
    with pytest.raises(ReadError, match=f"'{images[0]}' is not a grayscale softcopy"):
        read_gsps(ds)
    with pytest.raises(ReadError, match="is not a structured report"):
        read_measurements(ds)
    with pytest.raises(ReadError, match="is not a key object selection"):
        read_kos(pydicom.Dataset(ds))
