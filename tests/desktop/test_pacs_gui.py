"""PACS in the workstation window against a real Orthanc on 127.0.0.1 and a real encrypted
workstation database: File > Search PACS… finds, retrieves and opens a study (audited as the
signed-in user), and an accepted AI result is exported to the PACS as DICOM that references its
source image (audited as Export; a dead server is explained in plain words)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.app.results import StoredResults
from core.app.workstation import Workstation
from core.audit.events import SYSTEM_USER
from core.audit.vocabulary import EventType
from core.config import PacsNode, Settings
from core.pacs.audit import null_sink
from core.pacs.cache import PacsCache
from core.pacs.client import PacsClient
from core.security.users import Role
from desktop.pacs_panel import install_pacs
from tests.desktop.helpers import open_for_ai
from tests.pacs.conftest import CT3_DIR
from tests.pacs.orthanc import OrthancServer, orthanc_server, unavailable_reason

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
PASSWORD = "correct horse battery"
CT3_PATIENT = "99000"


@pytest.fixture(scope="module")
def orthanc() -> Iterator[OrthancServer]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    if not CT3_DIR.is_dir():
        pytest.skip(f"shared DICOM data not found at '{CT3_DIR}'")
    with orthanc_server() as server:
        server.upload([*sorted(CT3_DIR.glob("*.dcm")), CR])
        yield server


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    workstation = Workstation.open(tmp_path / "ws.db")
    workstation.users.create_user("admin", PASSWORD, Role.ADMIN, by=SYSTEM_USER)
    workstation.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    workstation.session.login("rad", PASSWORD)
    yield workstation
    workstation.close()


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/dicom-web"


def _events(ws: Workstation, event_type: EventType):  # type: ignore[no-untyped-def]
    return list(ws.audit.iter_events(event_type=event_type))


def test_file_menu_search_retrieve_open_is_audited(
    qtbot,
    window,
    ws: Workstation,  # type: ignore[no-untyped-def]
    orthanc: OrthancServer,
) -> None:
    settings = Settings(pacs=[PacsNode(name="orthanc", url=orthanc.dicomweb)], pacs_cache_gb=0.5)
    gui = install_pacs(window, ws, settings)
    assert gui.cache.max_bytes == 512 * 1024**2  # the settings' limit
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    assert gui.action in file_menu.actions()
    assert gui.action.text() == "Search PACS…"
    gui.action.trigger()
    assert gui.dialog.isVisible()
    panel = gui.dialog.panel
    panel.patient_id.setText(CT3_PATIENT)
    panel.search_button.click()
    qtbot.waitUntil(lambda: panel.results.topLevelItemCount() == 1, timeout=15_000)
    panel.results.setCurrentItem(panel.results.topLevelItem(0))
    painted: list[int] = []
    window.viewport.painted.connect(painted.append)
    panel.retrieve_button.click()
    qtbot.waitUntil(lambda: panel.retrieve is not None and panel.retrieve.done, timeout=30_000)
    qtbot.waitUntil(
        lambda: window.state.slice_count == 3 and window.state.loaded_count == 3, timeout=30_000
    )
    assert painted  # a slice is on screen
    assert panel.opened_first
    assert "Retrieved 3 instance(s)" in panel.status.text()
    series = window.state.series
    cached = gui.cache.complete_paths(
        window.state.context()[1].study_instance_uid, series.series_instance_uid
    )
    assert cached is not None
    assert len(cached) == 3
    assert all(str(p).startswith(str(gui.cache.root)) for p in cached)
    queries = _events(ws, EventType.QUERY)
    assert len(queries) == 2  # the study search and the series list of the retrieve
    assert {(e.user, e.role) for e in queries} == {("rad", "radiologist")}
    assert all(e.details["node"] == "orthanc" for e in queries)
    transferred = _events(ws, EventType.from_name("DICOM Instances Transferred"))
    assert [(e.user, e.outcome, e.details["instances"]) for e in transferred] == [("rad", 0, "3")]
    assert {"kind": "series", "id": series.series_instance_uid, "name": ""} in transferred[
        0
    ].objects


def test_export_of_accepted_result_lands_in_orthanc(
    qtbot,
    window,
    ws: Workstation,  # type: ignore[no-untyped-def]
    orthanc: OrthancServer,
) -> None:
    import pydicom

    nodes = [PacsNode(name="down", url=_dead_url()), PacsNode(name="orthanc", url=orthanc.dicomweb)]
    gui = install_pacs(window, ws, Settings(pacs=nodes))
    export = gui.export
    assert export is not None
    window.ai.set_results(StoredResults(ws))
    open_for_ai(qtbot, window, CR)
    assert not export.button.isEnabled()
    window.ai.run_image_button.click()
    row = window.ai.queue.rows[-1]
    qtbot.waitUntil(lambda: row.state == "done", timeout=120_000)
    assert not export.button.isEnabled()  # not yet accepted
    assert "accept it first" in export.button.toolTip()
    with qtbot.waitSignal(window.ai.decided, timeout=30_000):  # recorded by a job
        assert window.ai.decide("accepted")
    assert export.button.isEnabled()
    result = window.ai.current_result()[0]
    source = pydicom.dcmread(CR, stop_before_pixels=True)

    export.node.setCurrentText("down")
    job = export.export()
    assert job is not None
    qtbot.waitUntil(lambda: job.done, timeout=30_000)
    assert "Export to PACS 'down' failed" in export.status.text()
    assert "server not reachable" in export.status.text()
    failed = _events(ws, EventType.EXPORT)
    assert [(e.user, e.outcome, e.details["node"]) for e in failed] == [("rad", 8, "down")]

    export.node.setCurrentText("orthanc")
    export.button.click()
    qtbot.waitUntil(lambda: export.job is not None and export.job.done, timeout=60_000)
    outcome = export.last
    assert outcome is not None, export.status.text()
    assert outcome.kinds[0] == "SR"
    assert outcome.study_uid == source.StudyInstanceUID
    assert export.status.text().startswith("Exported to 'orthanc': SR")
    exported = _events(ws, EventType.EXPORT)[-1]
    assert (exported.user, exported.outcome, exported.details["result_id"]) == (
        "rad",
        0,
        result.result_id,
    )

    client = PacsClient(nodes[1], null_sink)
    try:
        sr_series = [
            s for s in client.search_series(str(source.StudyInstanceUID)) if s.modality == "SR"
        ]
        assert len(sr_series) == 1
        sop = outcome.stored[0]
        sr = client.retrieve_instance(str(source.StudyInstanceUID), sr_series[0].series_uid, sop)
    finally:
        client.close()
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    refs = [
        i.ReferencedSOPInstanceUID
        for s in evidence.ReferencedSeriesSequence
        for i in s.ReferencedSOPSequence
    ]
    assert refs == [source.SOPInstanceUID]
    ai = [e for e in sr.ContributingEquipmentSequence if e.Manufacturer == "DoctorAI"]
    assert [e.SoftwareVersions for e in ai] == [result.provenance.model_version]  # IHE AIR
    decision = result.decisions[window.ai.current_result()[1]]
    assert decision in str(sr.ContentSequence)


def test_without_nodes_both_say_what_to_configure(qtbot, window, ws: Workstation) -> None:  # type: ignore[no-untyped-def]
    gui = install_pacs(window, ws, Settings())
    assert "No PACS configured" in gui.dialog.panel.status.text()
    assert gui.dialog.panel.run_search() is None
    assert gui.export is not None
    assert not gui.export.button.isEnabled()
    assert "No PACS configured" in gui.export.button.toolTip()
    assert gui.cache.root == PacsCache().root  # the profile's cache
