"""The window writes a Security Alert for a signed model update that no longer verifies, once,
when its AI panel finds the models at start-up (issue 18 review: the alert was only ever
written by tests). A real encrypted profile, the tabular zoo model's update tampered on disk."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from core.app.workstation import Workstation
from core.audit.vocabulary import EventType, Outcome
from core.security.users import Role
from models.discovery import ZOO_DIR
from tests.desktop.conftest import _no_leaked_workers  # noqa: F401 - fixture

if TYPE_CHECKING:
    from pytestqt.qtbot import QtBot

MODEL = "tabular-breast-cancer"
PASSWORD = "correct horse battery"


@pytest.fixture
def tampered_update(_isolated_profile: Path) -> Path:
    """``<profile>/models/MODEL/1.0.1`` installed as the current signed version, then tampered."""
    folder = _isolated_profile / "models" / MODEL
    update = folder / "1.0.1"
    shutil.copytree(ZOO_DIR / MODEL, update)
    manifest = json.loads((update / "manifest.json").read_text())
    (update / "manifest.json").write_text(json.dumps({**manifest, "version": "1.0.1"}))
    (folder / "current").write_text(json.dumps({"version": "1.0.1", "previous": "1.0.0"}))
    with (update / "model.json").open("ab") as fh:
        fh.write(b" ")
    return update


@pytest.fixture
def ws(tampered_update: Path) -> Iterator[Workstation]:
    workstation = Workstation.open()
    workstation.users.create_user("admin", PASSWORD, Role.ADMIN, by="test")
    workstation.users.create_user("dr-a", PASSWORD, Role.RADIOLOGIST, by="admin")
    workstation.session.login("dr-a", PASSWORD)
    yield workstation
    workstation.close()


def _alerts(ws: Workstation) -> list[Any]:
    """The model-verification alerts (creating accounts writes Security Alerts of its own)."""
    return [
        e
        for e in ws.audit.iter_events(event_type=EventType.SECURITY_ALERT)
        if e.details.get("source") == "model verification"
    ]


def test_the_window_records_one_alert_for_a_refused_update(ws: Workstation, qtbot: QtBot) -> None:
    from desktop.main_window import MainWindow

    win = MainWindow(workstation=ws, lock_check_ms=60_000)
    qtbot.addWidget(win)
    try:
        panel = win.ai
        qtbot.waitUntil(lambda: panel.manager is not None, timeout=60_000)
        qtbot.waitUntil(lambda: len(_alerts(ws)) == 1, timeout=30_000)
        (alert,) = _alerts(ws)
        assert alert.outcome == Outcome.SERIOUS_FAILURE
        assert alert.user == "dr-a"
        assert alert.details["file"] == "model.json"
        assert "signed update 1.0.1 failed verification" in alert.details["message"]
        assert ("model", MODEL) in [(o["kind"], o["id"]) for o in alert.objects]
        # once per start-up: results set again (a profile re-attached) records no second one
        panel.set_results(panel.results)
        qtbot.wait(200)
        assert len(_alerts(ws)) == 1
    finally:
        assert win.shutdown(10_000)
