"""QIDO-RS search and streamed WADO-RS retrieve against a real Orthanc on 127.0.0.1."""

from __future__ import annotations

import hashlib
import threading
from datetime import date
from pathlib import Path

import pydicom
import pytest

from core.imaging.index import build_index
from core.pacs import audit as A
from core.pacs.cache import PacsCache
from core.pacs.client import StudyQuery, client_for_url
from core.pacs.errors import PacsError
from core.pacs.retrieve import retrieve_series, retrieve_study
from tests.pacs.conftest import CT3_DIR, RecordingSink, ct_subset

CT3_PATIENT = "99000"
PANCREAS_PATIENT = "Pancreas-CT-CB_001"


def _header(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def test_search_by_patient_id_finds_that_study_only(orthanc, sink: RecordingSink) -> None:
    client = client_for_url(orthanc.dicomweb, sink)
    hits = client.search_studies(StudyQuery(patient_id=CT3_PATIENT))
    expected = _header(next(CT3_DIR.glob("*.dcm")))
    assert [h.study_uid for h in hits] == [expected.StudyInstanceUID]
    hit = hits[0]
    assert hit.patient_id == CT3_PATIENT
    assert hit.accession == str(expected.AccessionNumber)
    assert hit.instance_count == 3
    assert "CT" in hit.modalities
    queries = sink.of(A.QUERY)
    assert len(queries) == 1
    assert queries[0][1] == A.SUCCESS
    assert queries[0][3]["matches"] == "1"
    assert queries[0][3]["keys"] == "PatientID"


def test_search_filters_name_accession_date_modality(orthanc, sink: RecordingSink) -> None:
    client = client_for_url(orthanc.dicomweb, sink)
    everything = client.search_studies(StudyQuery())
    assert len(everything) == 2
    by_name = client.search_studies(StudyQuery(patient_name="pancreas"))
    assert [h.patient_id for h in by_name] == [PANCREAS_PATIENT]
    accession = str(_header(next(CT3_DIR.glob("*.dcm"))).AccessionNumber)
    assert [h.patient_id for h in client.search_studies(StudyQuery(accession=accession))] == [
        CT3_PATIENT
    ]
    in_2012 = client.search_studies(
        StudyQuery(date_from=date(2012, 1, 1), date_to=date(2012, 12, 31))
    )
    assert [h.patient_id for h in in_2012] == [PANCREAS_PATIENT]
    assert client.search_studies(StudyQuery(modality="MR")) == []
    assert len(sink.of(A.QUERY)) == 5


def test_series_search_lists_instance_counts(orthanc, sink: RecordingSink) -> None:
    client = client_for_url(orthanc.dicomweb, sink)
    study = client.search_studies(StudyQuery(patient_id=PANCREAS_PATIENT))[0]
    series = client.search_series(study.study_uid)
    assert len(series) == 1
    assert series[0].instance_count == len(ct_subset())
    assert series[0].series_uid == _header(ct_subset()[0]).SeriesInstanceUID
    assert sink.of(A.QUERY)[-1][2] == [("study", study.study_uid)]


def test_retrieve_series_is_byte_exact_progressive_and_opens(orthanc, sink, tmp_path) -> None:
    client = client_for_url(orthanc.dicomweb, sink)
    cache = PacsCache(tmp_path / "cache")
    src = ct_subset()
    h = _header(src[0])
    seen: list[tuple[Path, int, int]] = []
    result = retrieve_series(
        client,
        cache,
        h.StudyInstanceUID,
        h.SeriesInstanceUID,
        on_instance=lambda p, i, n: seen.append((p, i, n)),
        expected=len(src),
    )
    assert not result.from_cache
    assert len(result.paths) == len(src)
    assert [i for _p, i, _n in seen] == list(range(1, len(src) + 1))
    assert seen[0][0].exists()
    assert result.first_instance_s is not None
    assert result.first_instance_s < result.seconds
    digest = {hashlib.sha256(p.read_bytes()).hexdigest() for p in src}
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in result.paths} == digest
    index = build_index([str(p) for p in result.paths])
    assert not index.errors
    ((_pat, _st, series),) = list(index.iter_series())
    assert series.series_instance_uid == h.SeriesInstanceUID
    assert len(series.instances) == len(src)
    transferred = sink.of(A.TRANSFERRED)
    assert len(transferred) == 1
    assert transferred[0][1] == A.SUCCESS
    assert transferred[0][3]["instances"] == str(len(src))

    again = retrieve_series(client, cache, h.StudyInstanceUID, h.SeriesInstanceUID)
    assert again.from_cache
    assert sorted(again.paths) == sorted(result.paths)
    assert len(sink.of(A.TRANSFERRED)) == 1  # nothing crossed the network


def test_retrieve_study_fetches_every_series(orthanc, sink, tmp_path) -> None:
    client = client_for_url(orthanc.dicomweb, sink)
    cache = PacsCache(tmp_path / "cache")
    h = _header(next(CT3_DIR.glob("*.dcm")))
    results = retrieve_study(client, cache, h.StudyInstanceUID)
    assert [len(r.paths) for r in results] == [3]
    got = {_header(p).SOPInstanceUID for p in results[0].paths}
    assert got == {_header(p).SOPInstanceUID for p in CT3_DIR.glob("*.dcm")}


def test_cancel_stops_and_leaves_series_incomplete(orthanc, sink, tmp_path) -> None:
    client = client_for_url(orthanc.dicomweb, sink)
    cache = PacsCache(tmp_path / "cache")
    h = _header(ct_subset()[0])
    stop = threading.Event()
    result = retrieve_series(
        client,
        cache,
        h.StudyInstanceUID,
        h.SeriesInstanceUID,
        on_instance=lambda _p, i, _n: stop.set() if i == 2 else None,
        cancel=stop,
    )
    assert result.cancelled
    assert len(result.paths) == 2
    assert cache.complete_paths(h.StudyInstanceUID, h.SeriesInstanceUID) is None
    assert sink.of(A.TRANSFERRED)[-1][1] == A.MINOR_FAILURE


def test_unknown_series_fails_with_node_name_and_is_audited(orthanc, sink, tmp_path) -> None:
    client = client_for_url(orthanc.dicomweb, sink, name="test-orthanc")
    with pytest.raises(PacsError, match=r"test-orthanc.*HTTP 404"):
        retrieve_series(client, PacsCache(tmp_path / "c"), "1.2.3", "1.2.3.4")
    assert sink.of(A.TRANSFERRED)[-1][1] == A.SERIOUS_FAILURE


def test_server_down_gives_clear_error(sink) -> None:
    from tests.pacs.orthanc import _free_port

    client = client_for_url(f"http://127.0.0.1:{_free_port()}/dicom-web", sink, name="down")
    with pytest.raises(PacsError, match=r"PACS 'down'.*not reachable"):
        client.search_studies(StudyQuery())
    assert sink.of(A.QUERY)[-1][1] == A.SERIOUS_FAILURE


def test_hostile_uid_cannot_escape_the_cache(orthanc, sink, tmp_path) -> None:
    client = client_for_url(orthanc.dicomweb, sink)
    with pytest.raises(ValueError, match="invalid DICOM Study Instance UID"):
        retrieve_series(client, PacsCache(tmp_path / "c"), "../../etc", "1.2")
