"""``doctorai studies list|priors`` over the real profile (the per-test DOCTORAI_HOME)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cli
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from tests.studies.helpers import make_study


def test_studies_list_and_priors_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = make_study(
        tmp_path / "now", patient_id="C1", issuer="H", name="DOE^JANE", date="20240101",
        accession="A-9",
    )  # fmt: skip
    prior = make_study(tmp_path / "old", patient_id="C1", issuer="H", date="20200101")
    make_study(tmp_path / "namesake", patient_id="C2", issuer="H", name="DOE^JANE")
    folders = [str(tmp_path / f) for f in ("now", "old", "namesake")]
    assert cli.main(["inspect", *folders]) == 0  # indexing records every study found
    capsys.readouterr()

    assert cli.main(["studies", "list", "--search", "a-9"]) == 0
    out, err = capsys.readouterr()
    assert current in out
    assert "2024-01-01  C1" in out
    assert "DOE JANE" in out
    assert prior not in out
    assert "1 study matching" in err

    assert cli.main(["studies", "list", "--search", "doe jane", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["patient_id"] for r in rows) == ["C1", "C1", "C2"]  # all three named so

    assert cli.main(["studies", "priors", current, "--local", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["study_uid"], row["study_date"], row["source"]) == (prior, "20200101", "local")

    assert cli.main(["studies", "priors", "1.2.3.4", "--local"]) == 1
    assert "no study '1.2.3.4' in the local study database" in capsys.readouterr().err
    assert cli.main(["studies", "list", "--from", "yesterday"]) == 1
    assert "From date 'yesterday' is not a date" in capsys.readouterr().err

    ws = Workstation.open()
    try:
        queries = list(ws.audit.iter_events(event_type=EventType.QUERY))
    finally:
        ws.close()
    assert [q.details["action"] for q in queries] == ["study-list", "study-list", "priors"]
    assert all(q.role == "cli" for q in queries)
