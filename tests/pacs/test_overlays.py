"""core.imaging.overlays on the shared SEG (dcmqi liver on the 3-slice CT) and TID 1500 SR."""

from __future__ import annotations

import re

import numpy as np
import pydicom
import pytest

from core.imaging.index import build_index
from core.imaging.overlays import OverlayError, read_seg, read_sr
from tests.pacs.conftest import CT3_DIR, LIVER_SEG, SR_EXAMPLE


@pytest.fixture
def ct3_series(dicom_data):  # type: ignore[no-untyped-def]
    if not LIVER_SEG.exists():
        pytest.skip(f"shared SEG not found at '{LIVER_SEG}'")
    ((_p, _s, series),) = list(build_index([str(CT3_DIR)]).iter_series())
    return series


def test_liver_seg_frames_map_to_their_source_slices(ct3_series) -> None:
    raw = pydicom.dcmread(LIVER_SEG)
    overlay = read_seg(str(LIVER_SEG), ct3_series)
    assert overlay.segments[1].label == "Liver"
    assert overlay.unmapped_frames == 0
    assert overlay.referenced_series_uid == ct3_series.series_instance_uid
    assert overlay.source_uids == {i.sop_instance_uid for i in ct3_series.instances}
    # independent check: each frame's own reference and pixel count, straight from pydicom
    for i, group in enumerate(raw.PerFrameFunctionalGroupsSequence):
        uid = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        ((_segment, mask),) = overlay.masks_for(str(uid))
        assert mask.shape == (raw.Rows, raw.Columns)
        assert int(mask.sum()) == int(np.count_nonzero(raw.pixel_array[i]))
        assert int(mask.sum()) > 1000  # a liver, not an empty frame
    r, _g, b = overlay.segments[1].color
    assert r > b  # dcmqi's liver colour is a reddish brown


def test_seg_frames_map_by_position_when_references_are_missing(ct3_series, tmp_path) -> None:
    raw = pydicom.dcmread(LIVER_SEG)
    expected = read_seg(str(LIVER_SEG), ct3_series)
    for group in raw.PerFrameFunctionalGroupsSequence:
        del group.DerivationImageSequence
    stripped = tmp_path / "no-refs.dcm"
    raw.save_as(stripped)
    by_position = read_seg(str(stripped), ct3_series)
    assert by_position.unmapped_frames == 0
    for uid in expected.source_uids:
        assert np.array_equal(by_position.masks_for(uid)[0][1], expected.masks_for(uid)[0][1])
    assert read_seg(str(stripped)).unmapped_frames == 3  # no series given: nothing to match


def test_sr_example_summary(dicom_data) -> None:
    if not SR_EXAMPLE.exists():
        pytest.skip(f"shared SR not found at '{SR_EXAMPLE}'")
    summary = read_sr(str(SR_EXAMPLE))
    raw = pydicom.dcmread(SR_EXAMPLE)
    assert summary.title == raw.ConceptNameCodeSequence[0].CodeMeaning
    assert summary.template == "TID 1500"
    text = summary.text()
    assert "Tracking Identifier: primary tumor" in text
    assert "Volume: 33.5824 ml" in text
    assert "Person Observer Name: User2" in text
    evidence = {
        str(r.ReferencedSOPInstanceUID)
        for s in raw.CurrentRequestedProcedureEvidenceSequence
        for se in s.ReferencedSeriesSequence
        for r in se.ReferencedSOPSequence
    }
    assert evidence <= summary.referenced_sop_uids


def test_wrong_kind_of_file_is_named_in_the_error(dicom_data) -> None:
    ct = next(CT3_DIR.glob("*.dcm"))
    with pytest.raises(OverlayError, match=re.escape(f"'{ct}' is not a DICOM Segmentation")):
        read_seg(str(ct))
    with pytest.raises(OverlayError, match="is not a structured report"):
        read_sr(str(ct))
    with pytest.raises(OverlayError, match=r"cannot read '.*nope.dcm'"):
        read_sr(str(CT3_DIR / "nope.dcm"))
