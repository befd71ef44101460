"""The study list in the window, on a real SQLCipher profile: a study opened is listed, the
window reopened on the same profile lists it again and opens it by double-click; the priors of
the study on screen are listed and open; file dialogs start where the last one ended."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.config import PacsNode, SecuritySettings, Settings, pin_settings
from tests.desktop.workstation.helpers import PASSWORD, add_users
from tests.pacs.orthanc import OrthancServer, orthanc_server, unavailable_reason
from tests.studies.helpers import make_study

TIMEOUT_MS = 60_000


def _open_and_wait(qtbot, win, folder: Path) -> None:  # type: ignore[no-untyped-def]
    win.open_paths([str(folder)])
    qtbot.waitUntil(
        lambda: "series_loaded" in win.controller.timings and not win.controller.indexing,
        timeout=TIMEOUT_MS,
    )


def _study_on_screen(win) -> str:  # type: ignore[no-untyped-def]
    ctx = win.state.context()
    return ctx[1].study_instance_uid if ctx is not None else ""


def _listed(panel) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        panel.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(panel.table.rowCount())
    ]


def test_a_study_opened_is_listed_again_after_a_restart_and_opens_by_double_click(
    qtbot, open_window, tmp_path: Path
) -> None:
    current = make_study(
        tmp_path / "now", patient_id="P7", issuer="HOSP-A", name="DOE^JANE", date="20240102",
        accession="ACC-1",
    )  # fmt: skip
    prior = make_study(
        tmp_path / "prior", patient_id="P7", issuer="HOSP-A", name="DOE^JANE", date="20220610",
        description="CT CHEST PRIOR",
    )  # fmt: skip
    make_study(tmp_path / "namesake", patient_id="P8", issuer="HOSP-A", name="DOE^JANE")
    db = tmp_path / "ws.db"
    security = SecuritySettings(lock_timeout_min=30)
    ws = Workstation.open(db, security)
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    win = open_window(ws)
    panel = win.study_list
    assert panel is not None
    for folder in ("prior", "namesake", "now"):
        _open_and_wait(qtbot, win, tmp_path / folder)
        win.audit_hooks.flush()
    qtbot.waitUntil(lambda: _listed(panel)[:1] == [current], timeout=TIMEOUT_MS)
    # the priors of the study on screen: the same Patient ID and issuer, not the namesake
    qtbot.waitUntil(lambda: panel.priors_table.rowCount() == 1, timeout=TIMEOUT_MS)
    assert panel.priors_table.item(0, 0).data(Qt.ItemDataRole.UserRole) == prior
    assert panel.priors_table.item(0, 2).text() == "CT CHEST PRIOR"
    assert "1 other study of this patient" in panel.priors_label.text()
    # hung by the protocol with the prior (indexed into the open studies, not switched to)
    assert panel.hang_button.isEnabled()
    qtbot.mouseClick(panel.hang_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: win.grid.hanging is not None, timeout=TIMEOUT_MS)
    hung = [s.study_instance_uid for s in win.grid.hanging.studies]
    assert hung == [current, prior]
    assert "with 1 prior(s)" in panel.priors_label.text()
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)
    win.state.hide_phi = True  # names, IDs and dates blanked as in the study browser
    assert panel.table.item(0, 0).text() == "Patient 1"
    assert panel.table.item(0, 1).text() == ""
    assert panel.priors_table.item(0, 0).text() == ""
    win.state.hide_phi = False
    assert win.shutdown(10_000)
    ws.close()

    ws = Workstation.open(db, security)  # a restart: the same encrypted profile
    try:
        ws.session.login("rad", PASSWORD)
        win = open_window(ws)
        panel = win.study_list
        panel.dock.show()
        panel.dock.raise_()
        qtbot.waitUntil(lambda: len(_listed(panel)) == 3, timeout=TIMEOUT_MS)
        assert _listed(panel)[0] == current
        assert panel.table.item(0, 0).text() == "DOE JANE"
        assert panel.table.item(0, 2).text() == "ACC-1"
        panel.grab().save(str(tmp_path / "study-list.png"))  # looked at during development
        assert win.state.series is None  # nothing open yet
        row = _listed(panel).index(prior)
        rect = panel.table.visualItemRect(panel.table.item(row, 0))
        # as a user double-clicks: press, release, then the double click (Qt 6 needs the press)
        qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.waitUntil(lambda: _study_on_screen(win) == prior, timeout=TIMEOUT_MS)
        qtbot.waitUntil(lambda: not win.controller.indexing, timeout=TIMEOUT_MS)
        assert win.state.slice_count == 3
        # the prior's own priors: the current study, openable from the priors list
        qtbot.waitUntil(lambda: panel.priors_table.rowCount() == 1, timeout=TIMEOUT_MS)
        panel.priors_table.selectRow(0)
        assert panel.open_prior_button.isEnabled()
        assert not panel.retrieve_prior_button.isEnabled()  # no PACS holds it
        qtbot.mouseClick(panel.open_prior_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: _study_on_screen(win) == current, timeout=TIMEOUT_MS)
        qtbot.waitUntil(lambda: not win.controller.indexing, timeout=TIMEOUT_MS)

        panel.search.setText("acc-1")
        qtbot.waitUntil(lambda: _listed(panel) == [current], timeout=TIMEOUT_MS)
        panel.search.setText("doe jane")
        qtbot.waitUntil(lambda: len(_listed(panel)) == 3, timeout=TIMEOUT_MS)
        win.audit_hooks.flush()
        lists = [e.details for e in ws.audit.iter_events(event_type=EventType.QUERY, user="rad")]
        assert {"action": "study-list", "source": "local", "matches": 1, "keys": "text"} in lists
        assert any(d.get("action") == "priors" for d in lists)
    finally:
        assert win.shutdown(10_000)
        ws.close()


def test_file_dialogs_start_where_the_last_one_ended(
    qtbot, ws: Workstation, open_window, tmp_path: Path
) -> None:
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    win = open_window(ws)
    win._dialog_ended(str(tmp_path))
    assert win.dialog_folder == str(tmp_path)
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)
    assert win.shutdown(10_000)
    win2 = open_window(ws)
    qtbot.waitUntil(lambda: win2.dialog_folder == str(tmp_path), timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def orthanc() -> Iterator[OrthancServer]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with orthanc_server() as server:
        yield server


def test_a_prior_on_the_pacs_is_listed_retrieved_in_the_background_and_opened(
    qtbot, ws: Workstation, open_window, tmp_path: Path, orthanc: OrthancServer
) -> None:
    current = make_study(tmp_path / "now", patient_id="R5", issuer="HOSP-A", date="20240505")
    prior = make_study(
        tmp_path / "pacs-prior", patient_id="R5", issuer="HOSP-A", date="20210909",
        description="CT ABDOMEN",
    )  # fmt: skip
    other = make_study(tmp_path / "wrong", patient_id="R5", issuer="HOSP-Z", date="20220202")
    for folder in ("pacs-prior", "wrong"):
        orthanc.upload(sorted((tmp_path / folder).glob("*.dcm")))
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    pin_settings(Settings(pacs=[PacsNode(name="orthanc", url=orthanc.dicomweb)]))
    try:
        win = open_window(ws)
        panel = win.study_list
        _open_and_wait(qtbot, win, tmp_path / "now")
        assert _study_on_screen(win) == current
        qtbot.waitUntil(lambda: panel.priors_table.rowCount() == 1, timeout=TIMEOUT_MS)
        assert panel.priors_table.item(0, 0).data(Qt.ItemDataRole.UserRole) == prior
        assert panel.priors_table.item(0, 4).text() == "pacs:orthanc"
        assert other not in [p.study_uid for p in panel.priors]  # another issuer
        panel.priors_table.selectRow(0)
        assert panel.retrieve_prior_button.isEnabled()
        assert not panel.open_prior_button.isEnabled()  # not here yet
        qtbot.mouseClick(panel.retrieve_prior_button, Qt.MouseButton.LeftButton)
        assert _study_on_screen(win) == current  # retrieved in the background: the view stays
        qtbot.waitUntil(
            lambda: (
                panel.priors_table.rowCount() == 1
                and panel.priors_table.item(0, 4).text() == "here + orthanc"
            ),
            timeout=TIMEOUT_MS,
        )
        assert _study_on_screen(win) == current
        qtbot.waitUntil(lambda: prior in _listed(panel), timeout=TIMEOUT_MS)
        row = _listed(panel).index(prior)
        assert panel.table.item(row, 6).text() == "pacs:orthanc"
        panel.priors_table.selectRow(0)
        qtbot.mouseClick(panel.open_prior_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: _study_on_screen(win) == prior, timeout=TIMEOUT_MS)
        qtbot.waitUntil(lambda: not win.controller.indexing, timeout=TIMEOUT_MS)
        assert win.state.slice_count == 3
        panel.grab().save(str(tmp_path / "priors.png"))
        win.audit_hooks.flush()
        types = [e.event_type for e in ws.audit.iter_events(user="rad")]
        assert EventType.BEGIN_TRANSFERRING in types
        assert EventType.INSTANCES_TRANSFERRED in types
    finally:
        pin_settings(None)
