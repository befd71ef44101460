"""The window's one error sink: a background job that fails with nobody handling it is shown
and audited (a failed Application Activity naming the job and the error)."""

from __future__ import annotations

from core.app.workstation import Workstation
from core.audit.vocabulary import EventType, Outcome
from tests.desktop.workstation.helpers import PASSWORD, add_users


def _broken(_ctx: object) -> None:
    raise OSError(5, "Input/output error")


def test_a_failed_job_is_shown_and_audited(qtbot, ws: Workstation, open_window) -> None:  # type: ignore[no-untyped-def]
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    win = open_window(ws)
    job = win.runner.start("reading the study list", _broken)
    qtbot.waitUntil(lambda: job.done, timeout=10_000)
    assert "reading the study list failed" in win.statusBar().currentMessage()
    win.audit_hooks.flush()
    failed = [
        e
        for e in ws.audit.iter_events(event_type=EventType.APPLICATION_ACTIVITY)
        if e.details.get("action") == "job-failed"
    ]
    assert len(failed) == 1
    assert failed[0].outcome == Outcome.MINOR_FAILURE
    assert (failed[0].user, failed[0].details["job"]) == ("rad", "reading the study list")
    assert "Input/output error" in failed[0].details["error"]
