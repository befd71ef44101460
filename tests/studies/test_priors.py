"""Priors: the same patient's other studies by Patient ID and issuer, never by name; from the
local study database (real SQLCipher profile) and from a real Orthanc over QIDO-RS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.app.access import series_viewed
from core.app.pacs_audit import pacs_audit
from core.app.studies import find_priors
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.imaging.index import build_index
from core.pacs.client import client_for_url
from core.studies.priors import NoPatientKey, PatientKey
from tests.pacs.orthanc import OrthancServer, orthanc_server, unavailable_reason
from tests.studies.helpers import make_study


def _view(ws: Workstation, folder: Path) -> None:
    for patient, study, series in build_index([str(folder)]).iter_series():
        series_viewed(ws, patient, study, series)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    w = Workstation.open_for_cli(tmp_path / "ws.db")
    yield w
    w.close()


def test_a_prior_is_found_by_id_and_issuer_never_by_name(ws: Workstation, tmp_path: Path) -> None:
    current = make_study(tmp_path / "now", patient_id="P7", issuer="HOSP-A", date="20240102")
    prior = make_study(tmp_path / "prior", patient_id="P7", issuer="HOSP-A", date="20220610")
    older = make_study(tmp_path / "older", patient_id="P7", issuer="HOSP-A", date="20180101")
    # the same name, another patient ID: a namesake, not a prior
    make_study(tmp_path / "namesake", patient_id="P8", issuer="HOSP-A", date="20230101")
    # the same ID from another hospital: another person
    make_study(tmp_path / "other-issuer", patient_id="P7", issuer="HOSP-B", date="20230202")
    # the same ID with no issuer at all: cannot be told to be the same person
    make_study(tmp_path / "no-issuer", patient_id="P7", issuer=None, date="20230303")
    for folder in ("now", "prior", "older", "namesake", "other-issuer", "no-issuer"):
        _view(ws, tmp_path / folder)

    found = find_priors(ws, current)
    assert found.key == PatientKey("P7", "HOSP-A")
    assert [p.study_uid for p in found.priors] == [prior, older]  # newest first, not itself
    assert [p.study_date for p in found.priors] == ["20220610", "20180101"]
    assert all(p.source == "local" and p.local is not None for p in found.priors)
    assert found.problems == []
    query = list(ws.audit.iter_events(event_type=EventType.QUERY))[-1]
    assert query.details == {
        "action": "priors", "source": "local", "matches": 2, "issuer": True,
    }  # fmt: skip
    assert [o["id"] for o in query.objects if o["kind"] == "study"] == [current, prior, older]


def test_an_absent_issuer_matches_only_an_absent_issuer(ws: Workstation, tmp_path: Path) -> None:
    current = make_study(tmp_path / "a", patient_id="Q1", issuer=None, date="20240101")
    prior = make_study(tmp_path / "b", patient_id="Q1", issuer="", date="20200101")  # empty
    make_study(tmp_path / "c", patient_id="Q1", issuer="HOSP-A", date="20210101")
    for folder in "abc":
        _view(ws, tmp_path / folder)
    assert [p.study_uid for p in find_priors(ws, current).priors] == [prior]


def test_a_study_without_patient_id_has_no_priors(ws: Workstation, tmp_path: Path) -> None:
    current = make_study(tmp_path / "a", patient_id="", name="DOE^JANE")
    make_study(tmp_path / "b", patient_id="", name="DOE^JANE")
    for folder in "ab":
        _view(ws, tmp_path / folder)
    with pytest.raises(NoPatientKey, match="never by name"):
        find_priors(ws, current)


@pytest.fixture(scope="module")
def orthanc() -> Iterator[OrthancServer]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with orthanc_server() as server:
        yield server


def test_priors_from_orthanc_over_qido(
    ws: Workstation, tmp_path: Path, orthanc: OrthancServer
) -> None:
    current = make_study(tmp_path / "now", patient_id="R5", issuer="HOSP-A", date="20240505")
    on_pacs = make_study(
        tmp_path / "pacs-prior", patient_id="R5", issuer="HOSP-A", date="20210909",
        description="CT ABDOMEN",
    )  # fmt: skip
    both = make_study(tmp_path / "both", patient_id="R5", issuer="HOSP-A", date="20190101")
    wrong_issuer = make_study(tmp_path / "wrong", patient_id="R5", issuer="HOSP-Z", date="20220202")
    namesake = make_study(tmp_path / "namesake", patient_id="R6", issuer="HOSP-A", date="20230303")
    for folder in ("pacs-prior", "both", "wrong", "namesake", "now"):
        orthanc.upload(sorted((tmp_path / folder).glob("*.dcm")))
    _view(ws, tmp_path / "now")
    _view(ws, tmp_path / "both")  # the 2019 study is here and on the PACS

    client = client_for_url(orthanc.dicomweb, pacs_audit(ws), name="orthanc")
    found = find_priors(ws, current, [client])
    assert found.problems == []
    uids = [p.study_uid for p in found.priors]
    assert uids == [on_pacs, both]
    assert wrong_issuer not in uids
    assert namesake not in uids
    assert current not in uids
    remote, local = found.priors
    assert (remote.source, remote.nodes, remote.local) == ("pacs:orthanc", ("orthanc",), None)
    assert (remote.study_date, remote.description, remote.n_instances) == (
        "20210909", "CT ABDOMEN", 3,
    )  # fmt: skip
    assert remote.retrievable
    assert (local.source, local.nodes) == ("local", ("orthanc",))  # here, and on the PACS too
    queries = [e.details for e in ws.audit.iter_events(event_type=EventType.QUERY)]
    assert queries[-1]["node"] == "orthanc"
    assert queries[-1]["keys"] == "PatientID"


def test_a_pacs_that_is_down_is_named_and_the_local_priors_still_come(
    ws: Workstation, tmp_path: Path
) -> None:
    current = make_study(tmp_path / "a", patient_id="S1", date="20240101")
    prior = make_study(tmp_path / "b", patient_id="S1", date="20200101")
    for folder in "ab":
        _view(ws, tmp_path / folder)
    client = client_for_url("http://127.0.0.1:9/dicom-web", pacs_audit(ws), name="down")
    found = find_priors(ws, current, [client])
    assert [p.study_uid for p in found.priors] == [prior]
    (problem,) = found.problems
    assert "PACS 'down'" in problem
    assert "not reachable" in problem


def test_one_unusable_node_is_named_and_the_others_are_still_asked(
    ws: Workstation, tmp_path: Path, orthanc: OrthancServer
) -> None:
    from core.app.studies import pacs_searchers
    from core.config import PacsNode, Settings

    current = make_study(tmp_path / "a", patient_id="T1", issuer="H", date="20240101")
    prior = make_study(tmp_path / "b", patient_id="T1", issuer="H", date="20200101")
    orthanc.upload(sorted((tmp_path / "b").glob("*.dcm")))
    _view(ws, tmp_path / "a")
    settings = Settings(
        pacs=[
            PacsNode(name="locked", url="http://127.0.0.1:9/dicom-web", auth="basic", username="u"),
            PacsNode(name="orthanc", url=orthanc.dicomweb),
        ]
    )
    clients, problems = pacs_searchers(ws, settings)
    assert [c.node.name for c in clients] == ["orthanc"]
    (problem,) = problems
    assert "no password for PACS node 'locked'" in problem
    found = find_priors(ws, current, clients)
    assert [(p.study_uid, p.source) for p in found.priors] == [(prior, "pacs:orthanc")]


def _pacs_queries(ws: Workstation) -> int:
    return sum(
        1
        for e in ws.audit.iter_events(event_type=EventType.QUERY)
        if e.details.get("node") == "orthanc"
    )


def test_pacs_answers_are_reused_per_patient_until_refreshed_or_stale(
    ws: Workstation, tmp_path: Path, orthanc: OrthancServer
) -> None:
    from core.studies.priors import RemotePriorsCache

    current = make_study(tmp_path / "now", patient_id="C9", issuer="H", date="20240101")
    first = make_study(tmp_path / "first", patient_id="C9", issuer="H", date="20200101")
    other = make_study(tmp_path / "other", patient_id="C9", issuer="H", date="20220101")
    orthanc.upload(sorted((tmp_path / "first").glob("*.dcm")))
    _view(ws, tmp_path / "now")
    _view(ws, tmp_path / "other")  # switching between two studies of the patient
    clock = [0.0]
    cache = RemotePriorsCache(ttl_s=60, clock=lambda: clock[0])
    client = client_for_url(orthanc.dicomweb, pacs_audit(ws), name="orthanc")
    before = _pacs_queries(ws)

    found = find_priors(ws, current, [client], cache=cache)
    assert [p.study_uid for p in found.priors] == [other, first]
    # the other study on screen: the same patient, the PACS is not asked again
    again = find_priors(ws, other, [client], cache=cache)
    assert [p.study_uid for p in again.priors] == [current, first]
    assert _pacs_queries(ws) - before == cache.queries == 1
    # a study that reached the PACS since is not seen while the answer is fresh...
    late = make_study(tmp_path / "late", patient_id="C9", issuer="H", date="20230101")
    orthanc.upload(sorted((tmp_path / "late").glob("*.dcm")))
    clock[0] = 59.0
    assert late not in [p.study_uid for p in find_priors(ws, current, [client], cache=cache).priors]
    # ...the refresh action forgets the patient's answers: asked again, seen
    assert cache.forget(PatientKey("C9", "H")) == 1
    assert late in [p.study_uid for p in find_priors(ws, current, [client], cache=cache).priors]
    assert _pacs_queries(ws) - before == 2
    # and an answer older than the configured time is not used
    clock[0] = 59.0 + 60.0
    find_priors(ws, current, [client], cache=cache)
    assert _pacs_queries(ws) - before == cache.queries == 3
    # another patient is never answered from this one's entry
    make_study(tmp_path / "x", patient_id="C10", issuer="H", date="20240101")
    _view(ws, tmp_path / "x")
    x_key = PatientKey("C10", "H")
    assert find_priors(ws, _uid_of(tmp_path / "x"), [client], x_key, cache=cache).priors == []
    assert cache.queries == 4


def _uid_of(folder: Path) -> str:
    (study_uid,) = {
        st.study_instance_uid for _p, st, _s in build_index([str(folder)]).iter_series()
    }
    return study_uid


def test_two_jobs_asking_at_once_make_one_query(
    ws: Workstation, tmp_path: Path, orthanc: OrthancServer
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from core.studies.priors import RemotePriorsCache

    current = make_study(tmp_path / "now", patient_id="D1", date="20240101")
    prior = make_study(tmp_path / "p", patient_id="D1", date="20200101")
    orthanc.upload(sorted((tmp_path / "p").glob("*.dcm")))
    _view(ws, tmp_path / "now")
    cache = RemotePriorsCache(ttl_s=600)
    client = client_for_url(orthanc.dicomweb, pacs_audit(ws), name="orthanc")
    key = PatientKey("D1")
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _i: cache.priors(client, key, current), range(4)))
    assert [[p.study_uid for p in a] for a in answers] == [[prior]] * 4
    assert cache.queries == 1


def test_a_node_that_fails_is_not_remembered(ws: Workstation, tmp_path: Path) -> None:
    from core.pacs.errors import PacsError
    from core.studies.priors import RemotePriorsCache

    cache = RemotePriorsCache(ttl_s=600)
    client = client_for_url("http://127.0.0.1:9/dicom-web", pacs_audit(ws), name="down")
    for _ in range(2):  # each ask reaches the node again and fails again
        with pytest.raises(PacsError, match="PACS 'down'"):
            cache.priors(client, PatientKey("E1"), "1.2.3")
    assert cache.queries == 0
    with pytest.raises(ValueError, match="priors cache time must be >= 0"):
        RemotePriorsCache(ttl_s=-1)
