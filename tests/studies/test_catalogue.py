"""The local study database on a real SQLCipher profile: a study opened is listed after the
profile is reopened, searched by name, ID, accession, date and modality, opened from its files,
and every list is an audited Query."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from core.app.access import index_read, series_viewed
from core.app.studies import last_folder, list_studies, remember_folder, study_paths
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.imaging.index import build_index
from core.studies.catalogue import StudySearch, StudyUnavailable
from tests.studies.helpers import make_study


def _view_all(ws: Workstation, folder: Path) -> None:
    """As the window does: each series on screen is one access event, its study recorded."""
    index = build_index([str(folder)])
    for patient, study, series in index.iter_series():
        series_viewed(ws, patient, study, series)


@pytest.fixture
def studies(tmp_path: Path) -> dict[str, str]:
    return {
        "jane": make_study(
            tmp_path / "jane", patient_id="PID-1", issuer="HOSP-A", name="DOE^JANE",
            date="20190304", accession="ACC-100",
        ),
        "john": make_study(
            tmp_path / "john", patient_id="PID-2", name="SMITH^JOHN", date="20210715",
            accession="ACC-200", modality="MR", description="MR BRAIN",
        ),
    }  # fmt: skip


def test_a_study_opened_is_listed_after_the_profile_is_reopened(
    tmp_path: Path, studies: dict[str, str]
) -> None:
    db = tmp_path / "ws.db"
    ws = Workstation.open_for_cli(db)
    _view_all(ws, tmp_path / "jane")
    ws.close()
    # the name, ID and accession are in the encrypted database only: not in the database's
    # side files, the head record, the keyring file or a log
    written = [
        f for f in tmp_path.rglob("*") if f.is_file() and f.parent.name not in ("jane", "john")
    ]
    assert db in written, written
    for f in written:
        data = f.read_bytes()
        for secret in (b"DOE^JANE", b"PID-1", b"ACC-100"):
            assert secret not in data, f

    ws = Workstation.open_for_cli(db)
    try:
        (entry,) = list_studies(ws)
        assert entry.study_uid == studies["jane"]
        assert (entry.patient_id, entry.issuer, entry.patient_name) == (
            "PID-1",
            "HOSP-A",
            "DOE^JANE",
        )
        assert (entry.accession, entry.study_date, entry.modalities) == (
            "ACC-100",
            "20190304",
            ("CT",),
        )
        assert (entry.n_series, entry.n_instances, entry.source) == (1, 3, "file")
        assert entry.last_opened
        paths = study_paths(ws, entry.study_uid)
        assert sorted(Path(p).name for p in paths) == ["00.dcm", "01.dcm", "02.dcm"]
        reopened = build_index(paths)
        assert [st.study_instance_uid for _p, st, _s in reopened.iter_series()] == [studies["jane"]]
        query = list(ws.audit.iter_events(event_type=EventType.QUERY))[-1]
        assert query.details["action"] == "study-list"
        assert {"kind": "patient", "id": "PID-1", "name": "DOE^JANE"} in query.objects
    finally:
        ws.close()


def test_search_by_name_id_accession_date_and_modality(
    tmp_path: Path, studies: dict[str, str]
) -> None:
    ws = Workstation.open_for_cli(tmp_path / "ws.db")
    try:
        _view_all(ws, tmp_path / "jane")
        _view_all(ws, tmp_path / "john")

        def uids(**kw: Any) -> list[str]:
            return [e.study_uid for e in list_studies(ws, StudySearch(**kw))]

        assert uids(text="jane doe") == [studies["jane"]]  # any order, ^ as a space
        assert uids(text="smith") == [studies["john"]]
        assert uids(text="pid-2") == [studies["john"]]
        assert uids(text="ACC-100") == [studies["jane"]]
        assert uids(text="PID") == [studies["john"], studies["jane"]]  # newest first
        assert uids(date_from="2020-01-01") == [studies["john"]]
        assert uids(date_to="20191231") == [studies["jane"]]
        assert uids(date_from="2019-03-04", date_to="2019-03-04") == [studies["jane"]]
        assert uids(modality="mr") == [studies["john"]]
        assert uids(text="nobody") == []
        assert uids(text="%") == []  # a LIKE wildcard is matched literally
        with pytest.raises(ValueError, match="From date 'last week' is not a date"):
            list_studies(ws, StudySearch(date_from="last week"))
        queries = list(ws.audit.iter_events(event_type=EventType.QUERY))
        assert queries[-1].details["keys"] == "text"
        assert queries[-1].details["matches"] == 0
        assert all(q.role == "cli" for q in queries)
    finally:
        ws.close()


def test_recent_is_by_last_opening_and_indexed_studies_are_not_recent(
    tmp_path: Path, studies: dict[str, str]
) -> None:
    ws = Workstation.open_for_cli(tmp_path / "ws.db")
    try:
        index_read(ws, build_index([str(tmp_path / "john")]))  # indexed (inspect), not viewed
        _view_all(ws, tmp_path / "jane")
        assert [e.study_uid for e in list_studies(ws)] == [studies["jane"]]
        assert [e.study_uid for e in list_studies(ws, StudySearch(text="smith"))] == [
            studies["john"]
        ]
        _view_all(ws, tmp_path / "john")
        assert [e.study_uid for e in list_studies(ws, recent=1)] == [studies["john"]]
    finally:
        ws.close()


def test_a_study_whose_files_are_gone_says_so(tmp_path: Path, studies: dict[str, str]) -> None:
    ws = Workstation.open_for_cli(tmp_path / "ws.db")
    try:
        _view_all(ws, tmp_path / "jane")
        shutil.rmtree(tmp_path / "jane")
        with pytest.raises(StudyUnavailable, match=f"cannot open study '{studies['jane']}'"):
            study_paths(ws, studies["jane"])
    finally:
        ws.close()


def test_the_last_folder_is_kept_per_user_in_the_encrypted_store(tmp_path: Path) -> None:
    db = tmp_path / "ws.db"
    ws = Workstation.open_for_cli(db)
    assert last_folder(ws) == ""
    remember_folder(ws, "/data/DOE_JANE_CT")
    ws.close()
    assert b"DOE_JANE" not in db.read_bytes()
    ws = Workstation.open_for_cli(db)
    try:
        assert last_folder(ws) == "/data/DOE_JANE_CT"
    finally:
        ws.close()


def test_modality_matches_whole_codes_of_a_multi_modality_study(tmp_path: Path) -> None:
    from core.studies import catalogue
    from core.studies.catalogue import StudyEntry

    ws = Workstation.open_for_cli(tmp_path / "ws.db")
    try:
        with ws.db.transaction() as conn:
            for uid, modalities in (("1.1", ("MR", "SR")), ("1.2", ("CT",)), ("1.3", ("CR",))):
                entry = StudyEntry(study_uid=uid, patient_id="X", modalities=modalities)
                catalogue.upsert(conn, entry, opened=True)
        for wanted, expected in (("SR", ["1.1"]), ("MR", ["1.1"]), ("R", []), ("CT", ["1.2"])):
            found = list_studies(ws, StudySearch(modality=wanted))
            assert [e.study_uid for e in found] == expected, wanted
        with pytest.raises(ValueError, match="modality 'C%' is not a DICOM modality"):
            list_studies(ws, StudySearch(modality="C%"))
    finally:
        ws.close()


def test_a_study_shown_from_its_first_file_is_completed_when_indexing_ends(
    tmp_path: Path, studies: dict[str, str]
) -> None:
    from core.app.access import refresh_studies

    ws = Workstation.open_for_cli(tmp_path / "ws.db")
    try:
        first = build_index([str(tmp_path / "jane" / "00.dcm")])  # the provisional first image
        ((patient, study, series),) = list(first.iter_series())
        series_viewed(ws, patient, study, series)
        (entry,) = list_studies(ws)
        assert (entry.n_instances, len(entry.location)) == (1, 1)
        full = build_index([str(tmp_path / "jane"), str(tmp_path / "john")])
        assert refresh_studies(ws, full) == 1  # john was never shown: not recorded by a refresh
        (entry,) = list_studies(ws)
        assert (entry.n_instances, len(entry.location)) == (3, 3)
        assert list_studies(ws, StudySearch(text="smith")) == []
    finally:
        ws.close()


def test_forget_removes_a_study_from_the_list_audited_and_keeps_its_files(
    tmp_path: Path, studies: dict[str, str]
) -> None:
    from core.app.studies import find_priors, forget_study
    from core.studies.catalogue import StudyNotFound

    ws = Workstation.open_for_cli(tmp_path / "ws.db")
    try:
        prior = make_study(tmp_path / "jane-prior", patient_id="PID-1", issuer="HOSP-A",
                           name="DOE^JANE", date="20150101")  # fmt: skip
        for folder in ("jane-prior", "jane", "john"):
            _view_all(ws, tmp_path / folder)
        assert [p.study_uid for p in find_priors(ws, studies["jane"]).priors] == [prior]

        entry = forget_study(ws, prior)
        assert entry.study_uid == prior
        listed = [e.study_uid for e in list_studies(ws)]
        assert prior not in listed
        assert sorted(listed) == sorted([studies["jane"], studies["john"]])
        assert find_priors(ws, studies["jane"]).priors == []  # no longer a prior here
        assert len(list((tmp_path / "jane-prior").glob("*.dcm"))) == 3  # files untouched
        forgot = [
            e
            for e in ws.audit.iter_events(event_type=EventType.INSTANCES_ACCESSED)
            if e.details.get("action") == "forget"
        ]
        (event,) = forgot
        assert [o["id"] for o in event.objects if o["kind"] == "study"] == [prior]
        assert [o["id"] for o in event.objects if o["kind"] == "patient"] == ["PID-1"]
        with pytest.raises(StudyNotFound, match=f"no study '{prior}'"):
            forget_study(ws, prior)
        # opened again, it is listed again
        _view_all(ws, tmp_path / "jane-prior")
        assert prior in [e.study_uid for e in list_studies(ws)]
    finally:
        ws.close()
