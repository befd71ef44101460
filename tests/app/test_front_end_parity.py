"""The window and the command line record the same audit events for the same action.

One real encrypted profile (DOCTORAI_HOME); the CLI runs in this process through its real entry
point (as the OS account), the window as a signed-in radiologist. Both run the chest model on
the sample CR and both export the image: the events must agree on type and on every participant
(patient, study, series, instance, model), and differ only where the action does (user, role,
the result id, the file written)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

import cli
from core.app.workstation import Workstation
from core.audit.log import StoredEvent
from core.audit.vocabulary import EventType
from core.security.users import Role
from desktop.main_window import MainWindow
from tests.desktop.helpers import open_for_ai

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
PASSWORD = "correct horse battery"
TIMEOUT_MS = 120_000
#: What differs by nature between two runs of the same action.
PER_RUN_KINDS = {"result", "file"}


@pytest.fixture
def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "profile"
    monkeypatch.setenv("DOCTORAI_HOME", str(home))
    ws = Workstation.open()
    ws.users.create_user("admin", PASSWORD, Role.ADMIN, by="test")
    ws.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    ws.close()
    return home


def _participants(event: StoredEvent) -> list[tuple[str, str]]:
    return [(o["kind"], o["id"]) for o in event.objects if o["kind"] not in PER_RUN_KINDS]


def _kinds(event: StoredEvent) -> list[str]:
    return [o["kind"] for o in event.objects]


def _new_events(ws: Workstation, after: int, *types: EventType) -> list[StoredEvent]:
    return [e for e in ws.audit.iter_events() if e.index > after and e.event_type in types]


def test_cli_and_window_record_the_same_model_run_and_export(
    profile: Path, tmp_path: Path, qtbot: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = Workstation.open()
    start = ws.audit.chain_head()[0]
    ws.close()

    assert cli.main(["infer", "--model", "chest-xray-pneumonia", str(CR)]) == 0
    assert cli.main(["render", str(CR), "--out", str(tmp_path / "cli.png")]) == 0
    capsys.readouterr()

    ws = Workstation.open()
    cli_events = _new_events(ws, start, EventType.MODEL_RUN, EventType.EXPORT)
    middle = ws.audit.chain_head()[0]
    ws.session.login("rad", PASSWORD)
    win = MainWindow(workstation=ws, lock_check_ms=10_000)
    qtbot.addWidget(win)
    win.resize(1280, 860)
    win.show()
    try:
        open_for_ai(qtbot, win, CR)
        panel = win.ai
        qtbot.waitUntil(lambda: panel.run_image_button.isEnabled(), timeout=TIMEOUT_MS)
        qtbot.mouseClick(panel.run_image_button, Qt.MouseButton.LeftButton)
        row = panel.queue.rows[-1]
        qtbot.waitUntil(lambda: row.state == "done", timeout=TIMEOUT_MS)
        assert win.audit_hooks is not None
        assert win.audit_hooks.export_view(tmp_path / "gui.png")
        win.audit_hooks.flush()
        assert (tmp_path / "gui.png").is_file()
    finally:
        assert win.shutdown(10_000)
    gui_events = _new_events(ws, middle, EventType.MODEL_RUN, EventType.EXPORT)
    ws.close()

    by_type = {
        side: {e.event_type: e for e in events}
        for side, events in (("cli", cli_events), ("gui", gui_events))
    }
    assert set(by_type["cli"]) == set(by_type["gui"]) == {EventType.MODEL_RUN, EventType.EXPORT}
    for event_type in (EventType.MODEL_RUN, EventType.EXPORT):
        c, g = by_type["cli"][event_type], by_type["gui"][event_type]
        assert _kinds(c) == _kinds(g), event_type
        assert _participants(c) == _participants(g), event_type
        assert (c.role, g.role, g.user) == ("cli", "radiologist", "rad")
    run = by_type["gui"][EventType.MODEL_RUN]
    assert _kinds(run) == ["patient", "study", "series", "instance", "model", "result"]
    assert all(oid for _kind, oid in _participants(run))  # every participant is named
    assert _kinds(by_type["gui"][EventType.EXPORT]) == [
        "patient",
        "study",
        "series",
        "instance",
        "file",
    ]
