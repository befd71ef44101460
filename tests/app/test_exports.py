"""An export is audited before the file exists: no event, no file; a failed write is recorded
as a failed export. On a real encrypted profile."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.app.exports import export_file
from core.app.workstation import Workstation
from core.audit.events import Participants
from core.audit.vocabulary import EventType, Outcome
from core.store.errors import TrailUnavailableError


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    workstation = Workstation.open_for_cli(tmp_path / "ws.db")
    yield workstation
    workstation.close()


def _exports(ws: Workstation) -> list[tuple[int, str]]:
    return [
        (e.outcome, next(o["id"] for o in e.objects if o["kind"] == "file"))
        for e in ws.audit.iter_events(event_type=EventType.EXPORT)
    ]


def test_the_event_comes_first_and_a_failed_write_is_recorded(
    ws: Workstation, tmp_path: Path
) -> None:
    out = tmp_path / "a.png"
    seen: list[int] = []

    def write(path: Path) -> None:  # the event is durable before the file is made
        seen.append(len(_exports(ws)))
        path.write_bytes(b"x")

    export_file(ws, Participants().patient("P1"), out, write, command="test")
    assert seen == [1]
    assert out.read_bytes() == b"x"

    def fail(_path: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        export_file(ws, Participants().patient("P1"), tmp_path / "b.png", fail)
    assert _exports(ws) == [
        (Outcome.SUCCESS, str(out)),
        (Outcome.SUCCESS, str(tmp_path / "b.png")),
        (Outcome.MINOR_FAILURE, str(tmp_path / "b.png")),
    ]


def test_no_file_when_the_event_cannot_be_recorded(ws: Workstation, tmp_path: Path) -> None:
    out = tmp_path / "c.png"
    ws.db.engine.dispose()  # the open profile's file is damaged under it
    for f in (tmp_path).glob("ws.db*"):
        f.write_bytes(os.urandom(8192))
    with pytest.raises(TrailUnavailableError, match="was not written"):
        export_file(ws, Participants(), out, lambda p: p.write_bytes(b"x"))
    assert not out.exists()
