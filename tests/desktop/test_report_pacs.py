"""The signed report and the key images sent from the window to a real Orthanc (the configured
PACS node, STOW-RS): stored there, retrieved back, and the SR's text is what was signed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests

from core.annotations.store import Purpose
from core.app import reports as app
from core.app.workstation import Workstation
from core.config import PacsNode, SecuritySettings, Settings, pin_settings
from core.dicom_out.read import read_kos
from core.dicom_out.report_sr import report_text
from core.reports.model import ReportState
from desktop.report_gui import install_reports
from tests.desktop.workstation.helpers import CR, PASSWORD, add_users
from tests.pacs.orthanc import OrthancServer, orthanc_server, unavailable_reason

TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def orthanc() -> Iterator[OrthancServer]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with orthanc_server() as server:
        yield server


def _retrieve(server: OrthancServer, sop_uid: str) -> pydicom.Dataset:
    """The instance as Orthanc stored it, found by its SOP Instance UID."""
    found = requests.post(f"{server.url}/tools/lookup", data=sop_uid, timeout=30, auth=server.auth)
    found.raise_for_status()
    (hit,) = [h for h in found.json() if h["Type"] == "Instance"]
    blob = requests.get(f"{server.url}/instances/{hit['ID']}/file", timeout=30, auth=server.auth)
    blob.raise_for_status()
    from io import BytesIO

    return pydicom.dcmread(BytesIO(blob.content))


def _image_refs(ds: pydicom.Dataset) -> list[str]:
    """The SOP Instance UIDs of the SR's IMAGE content items, depth first."""
    found: list[str] = []
    for item in ds.get("ContentSequence") or []:
        if item.get("ValueType") == "IMAGE":
            found.append(str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
        found += _image_refs(item)
    return found


def test_signed_report_and_kos_are_stored_on_the_pacs(  # type: ignore[no-untyped-def]
    qtbot, orthanc: OrthancServer, tmp_path: Path
) -> None:
    from desktop.main_window import MainWindow

    if not CR.is_file():
        pytest.skip(f"the sample chest radiograph is not at '{CR}'")
    ws = Workstation.open(tmp_path / "ws.db", SecuritySettings(lock_timeout_min=30))
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    pin_settings(Settings(pacs=[PacsNode(name="orthanc", url=orthanc.dicomweb)]))
    win = MainWindow(workstation=ws, lock_check_ms=60_000)
    try:
        qtbot.addWidget(win)
        win.show()
        qtbot.waitExposed(win)
        gui = install_reports(win)
        assert gui is not None
        panel, keys = gui.panel, gui.keys
        win.open_paths([str(CR)])
        qtbot.waitUntil(
            lambda: "series_loaded" in win.controller.timings and not win.controller.indexing,
            timeout=TIMEOUT_MS,
        )
        assert win.audit_hooks is not None
        win.audit_hooks.flush()
        qtbot.waitUntil(lambda: panel.doc is not None and panel.doc.loaded, timeout=TIMEOUT_MS)
        assert panel.doc is not None
        study_uid = panel.doc.study_uid

        # a key image for the report, then the report signed and sent to the PACS only
        assert keys.toggle_mark(Purpose.FOR_REPORT)
        qtbot.waitUntil(lambda: keys.list.count() == 1, timeout=TIMEOUT_MS)
        panel.findings.setPlainText("Right lower lobe consolidation.")
        panel.impression.setPlainText("Pneumonia.")
        dialog = panel.open_sign_dialog()
        assert dialog is not None
        dialog.password.setText(PASSWORD)
        assert dialog.submit()
        qtbot.waitUntil(lambda: panel.findings.isReadOnly(), timeout=TIMEOUT_MS)
        signed = app.get_report(ws, study_uid)
        assert signed is not None
        assert signed.report.state is ReportState.SIGNED
        assert panel.export(None, to_pacs=True)
        qtbot.waitUntil(lambda: bool(panel.last_export), timeout=TIMEOUT_MS)
        (sent,) = panel.last_export
        assert (sent.kind, sent.destination) == ("SR", "pacs:orthanc")
        back = _retrieve(orthanc, sent.sop_instance_uid)
        assert back.StudyInstanceUID == study_uid
        assert report_text(back) == {
            "Findings": [signed.report.findings],
            "Impressions": [signed.report.impression],
        }
        shown = win.state.current_slice()
        assert shown is not None
        # the key image for the report is referenced from the findings
        assert _image_refs(back) == [shown.instance.sop_instance_uid]

        # the key images as a KOS, to the PACS
        assert keys.export_kos(None, to_pacs=True)
        qtbot.waitUntil(lambda: bool(keys.last_export), timeout=TIMEOUT_MS)
        (kos_sent,) = keys.last_export
        assert kos_sent.destination == "pacs:orthanc"
        kos = read_kos(_retrieve(orthanc, kos_sent.sop_instance_uid))
        assert kos.title == "For Report Attachment"
        assert [r.sop_instance_uid for r in kos.images] == [shown.instance.sop_instance_uid]
        qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)
    finally:
        pin_settings(None)
        assert win.shutdown(20_000)
        ws.close()
