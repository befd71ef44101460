"""A PACS retrieve is recorded on the real encrypted trail before anything is fetched or shown;
when the trail cannot record it, nothing is retrieved, nothing reaches the viewer, and the user
is told why (issue 15, hole 4). Against the real Orthanc on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
import pytest

from core.app.pacs_audit import pacs_audit
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.pacs.cache import PacsCache
from core.pacs.client import client_for_url
from core.pacs.errors import AuditRefusedError
from core.pacs.retrieve import retrieve_series
from tests.pacs.conftest import CT3_DIR
from tests.pacs.orthanc import OrthancServer

if TYPE_CHECKING:
    from pytestqt.qtbot import QtBot


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    workstation = Workstation.open_for_cli(tmp_path / "ws.db")
    yield workstation
    workstation.close()


def _ct3() -> tuple[str, str]:
    ds = pydicom.dcmread(next(CT3_DIR.glob("*.dcm")), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


def _types(ws: Workstation) -> list[EventType]:
    return [e.event_type for e in ws.audit.iter_events()]


def _damage(ws: Workstation, tmp_path: Path) -> None:
    """The open profile's file is damaged under it: every append now fails."""
    ws.db.engine.dispose()
    for f in tmp_path.glob("ws.db*"):
        f.write_bytes(os.urandom(8192))


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_the_begin_event_is_on_the_trail_before_the_first_instance(
    orthanc: OrthancServer, ws: Workstation, tmp_path: Path
) -> None:
    client = client_for_url(orthanc.dicomweb, pacs_audit(ws), name="orthanc")
    cache = PacsCache(tmp_path / "cache")
    seen: list[list[EventType]] = []
    study, series = _ct3()
    result = retrieve_series(
        client, cache, study, series, on_instance=lambda *_a: seen.append(_types(ws))
    )
    assert len(result.paths) == 3
    # when the viewer got the first instance, the begin event was already durable
    assert EventType.BEGIN_TRANSFERRING in seen[0]
    assert EventType.INSTANCES_TRANSFERRED not in seen[0]
    assert _types(ws)[-2:] == [EventType.BEGIN_TRANSFERRING, EventType.INSTANCES_TRANSFERRED]
    # from the cache: "Accessed" is recorded before the paths are handed over
    seen.clear()
    again = retrieve_series(
        client, cache, study, series, on_instance=lambda *_a: seen.append(_types(ws))
    )
    assert again.from_cache
    assert seen[0][-1] == EventType.INSTANCES_ACCESSED


def test_no_retrieve_when_the_trail_cannot_record_it(
    orthanc: OrthancServer, ws: Workstation, tmp_path: Path
) -> None:
    client = client_for_url(orthanc.dicomweb, pacs_audit(ws), name="orthanc")
    cache = PacsCache(tmp_path / "cache")
    handed: list[Path] = []
    _damage(ws, tmp_path)
    study, series = _ct3()
    with pytest.raises(AuditRefusedError) as caught:
        retrieve_series(client, cache, study, series, on_instance=lambda p, *_: handed.append(p))
    message = str(caught.value)
    assert f"retrieve of series '{series}' from PACS 'orthanc' refused" in message
    assert "the audit trail could not record it" in message
    assert "nothing was retrieved or shown" in message
    assert handed == []
    assert _files(cache.root) == []  # nothing written where the viewer reads


def test_a_cached_series_is_not_handed_over_unrecorded(
    orthanc: OrthancServer, ws: Workstation, tmp_path: Path
) -> None:
    client = client_for_url(orthanc.dicomweb, pacs_audit(ws), name="orthanc")
    cache = PacsCache(tmp_path / "cache")
    study, series = _ct3()
    retrieve_series(client, cache, study, series)
    assert cache.complete_paths(study, series) is not None
    _damage(ws, tmp_path)
    handed: list[Path] = []
    with pytest.raises(AuditRefusedError, match="could not record it"):
        retrieve_series(client, cache, study, series, on_instance=lambda p, *_: handed.append(p))
    assert handed == []


def test_the_window_says_so_and_opens_nothing(
    orthanc: OrthancServer, ws: Workstation, tmp_path: Path, qtbot: QtBot
) -> None:
    """The search panel's retrieve job, refused: the status line says why, the viewer gets
    nothing."""
    from desktop.pacs_dialog import PacsSearchPanel
    from desktop.workers import ErrorSink, JobRunner

    runner = JobRunner(ErrorSink())
    opened: list[list[str]] = []
    client = client_for_url(orthanc.dicomweb, pacs_audit(ws), name="orthanc")
    panel = PacsSearchPanel(
        runner, lambda _n: client, ["orthanc"], opened.append, PacsCache(tmp_path / "cache")
    )
    qtbot.addWidget(panel)
    panel.patient_id.setText("99000")
    panel.search_button.click()
    qtbot.waitUntil(lambda: panel.results.topLevelItemCount() == 1, timeout=10_000)
    item = panel.results.topLevelItem(0)
    assert item is not None
    panel.results.setCurrentItem(item)
    _damage(ws, tmp_path)
    panel.retrieve_button.click()
    qtbot.waitUntil(lambda: panel.retrieve is not None and panel.retrieve.done, timeout=30_000)
    assert "refused: the audit trail could not record it" in panel.status.text()
    assert opened == []
    assert _files(tmp_path / "cache") == []
    runner.shutdown(5_000)
