"""The report's "insert accepted AI findings" lines (core.app.reports.accepted_findings) on a
real encrypted profile: only results whose latest verdict is accepted, one line per decided
label, a series result saying on how many of its images, with the highest score."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.app import reports as app
from core.app.results import StoredResults
from core.app.workstation import Workstation
from core.security.users import PermissionDenied
from tests.desktop.workstation.helpers import PASSWORD, add_users

STUDY = "1.2.840.99.17"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    w = Workstation.open(tmp_path / "ws.db")
    add_users(w)
    w.session.login("rad", PASSWORD)
    yield w
    w.close()


def _result(decisions: list[str], pneumonia: list[float], study: str = STUDY) -> dict[str, Any]:
    """A stored result's payload as InferenceResult.to_json writes it (one image each)."""
    return {
        "result_id": str(uuid.uuid4()),
        "model": {"id": "chest-xray-pneumonia", "version": "1.0.0"},
        "labels": ["normal", "pneumonia"],
        "decisions": decisions,
        "scores": [{"normal": 1 - p, "pneumonia": p} for p in pneumonia],
        "provenance": {
            "created_at": "2026-12-06T10:00:00+00:00",
            "device": "cpu",
            "timings_ms": {"inference": 12.0},
            "inputs": [
                {
                    "sop_instance_uid": f"1.2.3.{i}",
                    "frame": 0,
                    "study_instance_uid": study,
                    "series_instance_uid": "1.2.4",
                    "patient_id": "PID-17",
                }
                for i in range(len(decisions))
            ],
        },
    }


def test_only_accepted_results_become_lines(ws: Workstation) -> None:
    results = StoredResults(ws)
    series = _result(["pneumonia", "normal", "pneumonia"], [0.91, 0.2, 0.74])
    rejected = _result(["pneumonia"], [0.6])
    changed_mind = _result(["normal"], [0.3])
    undecided = _result(["pneumonia"], [0.8])
    other_study = _result(["pneumonia"], [0.99], study="1.2.840.99.18")
    for r in (series, rejected, changed_mind, undecided, other_study):
        results.record(r)
    results.decide(series["result_id"], "accepted")
    results.decide(series["result_id"], "comment", "seen")  # a comment keeps the verdict
    results.decide(rejected["result_id"], "rejected")
    results.decide(changed_mind["result_id"], "accepted")
    results.decide(changed_mind["result_id"], "rejected")
    results.decide(other_study["result_id"], "accepted")

    lines = [f.text for f in app.accepted_findings(ws, STUDY)]
    assert lines == [
        "AI (chest-xray-pneumonia 1.0.0, accepted): pneumonia on 2 of 3 images (score 0.91)",
        "AI (chest-xray-pneumonia 1.0.0, accepted): normal on 1 of 3 images (score 0.80)",
    ]


def test_reading_them_needs_the_view_permission(ws: Workstation) -> None:
    ws.session.logout()
    with pytest.raises(PermissionDenied):
        app.accepted_findings(ws, STUDY)
