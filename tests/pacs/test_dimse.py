"""Optional DIMSE path (pynetdicom C-FIND / C-GET) against the same real Orthanc."""

from __future__ import annotations

import hashlib

import pydicom
import pytest

from core.config import PacsNode
from core.pacs import audit as A
from core.pacs.cache import PacsCache
from core.pacs.client import StudyQuery
from core.pacs.dimse import DimseClient, parse_address
from core.pacs.errors import PacsConfigError, PacsError
from tests.pacs.conftest import CT3_DIR, RecordingSink, ct_subset


def _client(orthanc, sink: RecordingSink) -> DimseClient:
    url = f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}?calling=DOCTORAI_TEST"
    return DimseClient(PacsNode(name="orthanc-dimse", url=url), sink)


def test_c_find_studies_and_series(orthanc, sink: RecordingSink) -> None:
    client = _client(orthanc, sink)
    hits = client.search_studies(StudyQuery(patient_id="99000"))
    expected = pydicom.dcmread(next(CT3_DIR.glob("*.dcm")), stop_before_pixels=True)
    assert [h.study_uid for h in hits] == [expected.StudyInstanceUID]
    assert hits[0].instance_count == 3
    (series,) = client.search_series(hits[0].study_uid)
    assert series.series_uid == expected.SeriesInstanceUID
    assert [e[3]["protocol"] for e in sink.of(A.QUERY)] == ["DIMSE", "DIMSE"]
    assert len(client.search_studies(StudyQuery(patient_name="pancreas"))) == 1


def test_c_get_series_into_the_cache(orthanc, sink: RecordingSink, tmp_path) -> None:
    client = _client(orthanc, sink)
    src = ct_subset()
    h = pydicom.dcmread(src[0], stop_before_pixels=True)
    arrived: list[int] = []
    result = client.get_series(
        PacsCache(tmp_path / "c"),
        h.StudyInstanceUID,
        h.SeriesInstanceUID,
        on_instance=lambda _p, i, _n: arrived.append(i),
    )
    assert sorted(arrived) == list(range(1, len(src) + 1))
    got = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in result.paths}
    assert got == {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in src}
    # same pixels as the source (the transfer syntax may differ, the values may not)
    a = pydicom.dcmread(result.paths[0])
    b = next(
        pydicom.dcmread(p)
        for p in src
        if pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID == a.SOPInstanceUID
    )
    assert (
        hashlib.sha256(a.pixel_array.tobytes()).digest()
        == hashlib.sha256(b.pixel_array.tobytes()).digest()
    )
    assert sink.of(A.TRANSFERRED)[-1][1] == A.SUCCESS


def test_dimse_errors_name_the_node() -> None:
    with pytest.raises(PacsConfigError, match="must look like dicom://"):
        parse_address(PacsNode(name="bad", url="dicom://127.0.0.1"))
    from tests.pacs.orthanc import _free_port

    sink = RecordingSink()
    client = DimseClient(
        PacsNode(name="off", url=f"dicom://X@127.0.0.1:{_free_port()}"), sink, timeout=5
    )
    with pytest.raises(PacsError, match="PACS 'off'"):
        client.search_studies(StudyQuery())
    assert sink.of(A.QUERY)[-1][1] == A.SERIOUS_FAILURE


def test_cli_and_retrieve_dispatch_to_dimse(orthanc, capsys: pytest.CaptureFixture[str]) -> None:
    import cli

    url = f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    assert cli.main(["pacs", "search", "--url", url, "--patient-id", "99000", "--json"]) == 0
    import json

    (study,) = json.loads(capsys.readouterr().out)
    assert cli.main(["pacs", "retrieve", "--url", url, "--study", study["study_uid"]]) == 0
    assert ": 3 instance(s)" in capsys.readouterr().out
    assert cli.main(["pacs", "store", "--url", url, str(next(CT3_DIR.glob("*.dcm")))]) == 1
    assert "C-STORE) is not supported" in capsys.readouterr().err
