"""AI results as SR / SEG / Parametric Map, stored with STOW-RS in a real Orthanc, read back and
checked: references to the source images, contents, and validation (highdicom, dciodvfy)."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from core.imaging.index import build_index
from core.imaging.overlays import read_seg, read_sr
from core.imaging.pixels import read_frame
from core.pacs import audit as A
from core.pacs.cache import PacsCache
from core.pacs.client import PacsClient, StudyQuery, client_for_url
from core.pacs.export import AiFinding, build_heatmap, build_seg, build_sr, store_objects
from core.pacs.retrieve import retrieve_series
from tests.pacs.conftest import CT3_DIR, RecordingSink

HU_BONE = 200.0  # threshold of the test's segmentation mask (bone and contrast on CT)


@pytest.fixture
def retrieved(
    orthanc_rw, sink: RecordingSink, tmp_path: Path
) -> tuple[PacsClient, list[pydicom.Dataset]]:
    """The 3-slice CT retrieved from Orthanc into the cache, as full datasets in slice order."""
    client = client_for_url(orthanc_rw.dicomweb, sink, name="orthanc")
    hit = client.search_studies(StudyQuery(patient_id="99000"))[0]
    series = client.search_series(hit.study_uid)[0]
    result = retrieve_series(
        client, PacsCache(tmp_path / "cache"), hit.study_uid, series.series_uid
    )
    index = build_index([str(p) for p in result.paths])
    ((_p, _s, ser),) = list(index.iter_series())
    return client, [pydicom.dcmread(inst.path) for inst in ser.instances]


def _finding(sources: list[pydicom.Dataset], **kw: object) -> AiFinding:
    base = dict(
        model_id="test-ct-classifier",
        model_version="2.1.0",
        labels=["normal", "abnormal"],
        scores={"normal": 0.25, "abnormal": 0.75},
        decision="abnormal",
        input_sop_uids=[str(sources[1].SOPInstanceUID)],
        result_id="r-123",
        model_name="CT abnormality classifier",
        manufacturer="DoctorAI Labs",
    )
    base.update(kw)
    return AiFinding(**base)  # type: ignore[arg-type]


def _new_series(client: PacsClient, study_uid: str, known: set[str]) -> dict[str, object]:
    return {s.modality: s for s in client.search_series(study_uid) if s.series_uid not in known}


def _read_back(client: PacsClient, study_uid: str, series_uid: str) -> pydicom.Dataset:
    (inst,) = client.search_instances(study_uid, series_uid)
    return client.retrieve_instance(study_uid, series_uid, inst["00080018"]["Value"][0])


def _dciodvfy_errors(path: Path) -> set[str]:
    """dciodvfy's errors for one file (the IOD validator of dicom3tools, which .ci/run installs:
    a machine without it fails here, naming the package, rather than skipping the check)."""
    tool = shutil.which("dciodvfy")
    assert tool is not None, (
        "dciodvfy is not installed: the SR and SEG exports are validated with it "
        "(Debian/Ubuntu: apt-get install dicom3tools; .ci/run installs it)"
    )
    out = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    said = (out.stdout + out.stderr).splitlines()
    assert said, f"dciodvfy printed nothing for {path} (exit code {out.returncode})"
    return {line.strip() for line in said if line.startswith("Error")}


def _ai_equipment(ds: pydicom.Dataset, manufacturer: str = "DoctorAI Labs") -> pydicom.Dataset:
    """The model's item (highdicom adds one of its own, also 'Processing Equipment')."""
    items = [
        i
        for i in ds.ContributingEquipmentSequence
        if i.PurposeOfReferenceCodeSequence[0].CodeValue == codes.DCM.ProcessingEquipment.value
        and i.Manufacturer == manufacturer
    ]
    assert len(items) == 1, "exactly one Processing Equipment item for the AI model"
    return items[0]


def test_sr_and_seg_round_trip_through_orthanc(retrieved, sink: RecordingSink, tmp_path) -> None:
    import highdicom as hd

    client, sources = retrieved
    study_uid = str(sources[0].StudyInstanceUID)
    known = {s.series_uid for s in client.search_series(study_uid)}
    finding = _finding(sources)
    # a real mask from real pixels: HU above a threshold, computed here from pydicom directly
    hu = [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in sources]
    mask = np.stack([h > HU_BONE for h in hu])
    assert 0 < mask.sum() < mask.size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # highdicom: the source's one-part name
        sr = build_sr(finding, sources)
        seg = build_seg(mask, sources, finding, segment_label="Bone")
    stored = store_objects(client, [sr, seg], finding)
    assert set(stored) == {sr.SOPInstanceUID, seg.SOPInstanceUID}
    export = sink.of(A.EXPORT)
    assert len(export) == 1
    assert export[0][1] == A.SUCCESS
    assert ("instance", str(sr.SOPInstanceUID)) in export[0][2]
    assert ("model", "test-ct-classifier@2.1.0") in export[0][2]

    new = _new_series(client, study_uid, known)
    assert set(new) == {"SR", "SEG"}
    sr_back = _read_back(client, study_uid, new["SR"].series_uid)  # type: ignore[attr-defined]
    seg_back = _read_back(client, study_uid, new["SEG"].series_uid)  # type: ignore[attr-defined]

    # SR: references, contents, the model as contributing equipment
    source_uids = {str(ds.SOPInstanceUID) for ds in sources}
    evidence = {
        str(r.ReferencedSOPInstanceUID)
        for s in sr_back.CurrentRequestedProcedureEvidenceSequence
        for se in s.ReferencedSeriesSequence
        for r in se.ReferencedSOPSequence
    }
    assert evidence == source_uids
    parsed = hd.sr.Comprehensive3DSR.from_dataset(sr_back)
    (group,) = parsed.content.get_image_measurement_groups()  # highdicom reads TID 1500/1501
    scores = {m.name.meaning: m.value for m in group.get_measurements()}
    assert scores == {"AI probability of normal": 0.25, "AI probability of abnormal": 0.75}
    (evaluation,) = group.get_qualitative_evaluations()
    assert evaluation.value.meaning == "abnormal"
    assert [s.referenced_sop_instance_uid for s in group.source_images] == [
        str(sources[1].SOPInstanceUID)
    ]
    ai = _ai_equipment(sr_back)
    assert (ai.Manufacturer, ai.ManufacturerModelName, ai.SoftwareVersions) == (
        "DoctorAI Labs",
        "CT abnormality classifier",
        "2.1.0",
    )
    sr_path = tmp_path / "sr.dcm"
    sr_back.save_as(sr_path, enforce_file_format=True)
    summary = read_sr(str(sr_path))
    assert summary.template == "TID 1500"
    assert str(sources[1].SOPInstanceUID) in summary.referenced_sop_uids
    text = summary.text()
    assert "AI probability of abnormal: 0.75" in text
    assert "AI classification: abnormal" in text
    assert "Algorithm Version: 2.1.0" in text

    # SEG: each frame references its source slice, and the mask survives byte for byte
    seg_path = tmp_path / "seg.dcm"
    seg_back.save_as(seg_path, enforce_file_format=True)
    overlay = read_seg(str(seg_path))
    assert overlay.unmapped_frames == 0
    assert overlay.source_uids == source_uids
    for ds, expected in zip(sources, mask, strict=True):
        ((segment, got),) = overlay.masks_for(str(ds.SOPInstanceUID))
        assert segment.label == "Bone"
        assert np.array_equal(got, expected)
    assert _ai_equipment(seg_back).SoftwareVersions == "2.1.0"
    hd.seg.Segmentation.from_dataset(seg_back)  # highdicom's own parsing accepts it

    assert _dciodvfy_errors(sr_path) == set()
    assert _dciodvfy_errors(seg_path) == set()


def test_heatmap_parametric_map_from_a_zoo_model(retrieved, sink: RecordingSink, tmp_path) -> None:
    """Run a real zoo model on a retrieved slice and export its result and heatmap."""
    pytest.importorskip("torch", reason="the zoo's torch model needs torch (the 'ai' extra)")
    from core.inference.manager import manager_from_settings
    from core.inference.pipeline import run_images
    from core.inference.result import InputRef
    from core.pacs.export import finding_from_result

    client, sources = retrieved
    ds = sources[1]
    index = build_index([str(CT3_DIR)])
    inst = next(
        i
        for _p, _s, se in index.iter_series()
        for i in se.instances
        if i.sop_instance_uid == ds.SOPInstanceUID
    )
    manager = manager_from_settings(device="cpu")
    try:
        model_id = "chest-xray-pneumonia"
        result = run_images(
            manager,
            model_id,
            [read_frame(inst)],
            [
                InputRef(
                    inst.sop_instance_uid, 0, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
                )
            ],
            heatmap=True,
        )
        name = manager.package(model_id).manifest.name
    finally:
        manager.shutdown()
    assert result.heatmaps is not None
    finding = finding_from_result(result, model_name=name)
    assert finding.input_sop_uids == [str(ds.SOPInstanceUID)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sr = build_sr(finding, [ds])
        pm = build_heatmap(result.heatmaps[:1], [ds], finding)
    store_objects(client, [sr, pm], finding)
    back = client.retrieve_instance(
        str(ds.StudyInstanceUID), str(pm.SeriesInstanceUID), str(pm.SOPInstanceUID)
    )
    ref = back.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
    assert ref.SourceImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    values = np.asarray(back.pixel_array, dtype=np.float32)
    assert np.allclose(values, np.clip(result.heatmaps[0], 0, 1), atol=1e-6)
    assert _ai_equipment(back, "DoctorAI").ManufacturerModelName == name[:64]
    summary_path = tmp_path / "sr.dcm"
    client.retrieve_instance(
        str(ds.StudyInstanceUID), str(sr.SeriesInstanceUID), str(sr.SOPInstanceUID)
    ).save_as(summary_path, enforce_file_format=True)
    decision = result.decisions[0]
    assert f"AI classification: {decision}" in read_sr(str(summary_path)).text()


def test_export_refuses_a_result_whose_input_is_not_given(retrieved) -> None:
    _client, sources = retrieved
    finding = _finding(sources, input_sop_uids=["1.2.3.999"])
    with pytest.raises(ValueError, match=r"'1.2.3.999' is not among the source images"):
        build_sr(finding, sources)
    with pytest.raises(ValueError, match="mask has 2 planes for 3 source images"):
        build_seg(np.zeros((2, 4, 4), bool), sources, finding)


def test_failed_store_is_audited(sink: RecordingSink) -> None:
    from core.pacs.errors import PacsError
    from tests.pacs.orthanc import _free_port

    ds = pydicom.dcmread(next(CT3_DIR.glob("*.dcm")))
    client = client_for_url(f"http://127.0.0.1:{_free_port()}/dicom-web", sink, name="gone")
    with pytest.raises(PacsError, match="PACS 'gone'"):
        store_objects(client, [ds], _finding([ds, ds], input_sop_uids=[]))
    assert sink.of(A.EXPORT)[-1][1] == A.SERIOUS_FAILURE
