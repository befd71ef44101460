"""DICOM SEG export from the window (offscreen): the phantom-trained segmentation model runs on
the shared real MR series through the AI panel, Tools > Save AI segmentation as DICOM SEG…
writes a SEG that pydicom and highdicom read back (referenced series, mask pixel count), the
saved mask is drawn by the SEG overlay, a folder that cannot be written gives a message naming
it; with a profile the save is an audited Export and an accepted result goes to a real Orthanc.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.app.results import StoredResults
from core.app.workstation import Workstation
from core.audit.events import SYSTEM_USER
from core.audit.vocabulary import EventType
from core.config import PacsNode, Settings
from core.pacs.audit import null_sink
from core.pacs.client import PacsClient
from core.security.users import Role
from desktop import seg_export
from desktop.seg_overlay import install as install_seg_overlay
from tests.desktop.helpers import AI_TIMEOUT_MS, open_for_ai
from tests.desktop.test_key_images import dciodvfy_errors
from tests.pacs.orthanc import OrthancServer, orthanc_server, unavailable_reason

MR_PARTS = ("plotly__dash-vtk", "demos", "data", "mri_brain")
MODEL = "brain-lesion-seg-mri"
PASSWORD = "correct horse battery"


@pytest.fixture
def mr_dir(dicom_data: Path) -> Path:
    folder = dicom_data.joinpath(*MR_PARTS)
    if not folder.is_dir():
        pytest.skip(f"the shared MR series is not at '{folder}'")
    return folder


def _segment_series(qtbot: Any, win: Any, folder: Path) -> Any:
    """Open the MR series, run the segmentation model on all of it; the finished queue row."""
    open_for_ai(qtbot, win, folder)
    assert win.state.series.modality == "MR"
    win.ai.select_model(MODEL)
    row = win.ai.run_series()
    assert row is not None
    qtbot.waitUntil(lambda: row.finished, timeout=AI_TIMEOUT_MS)
    assert row.state == "done", row.message
    assert row.result.masks is not None
    return row


def _show_most_masked_slice(win: Any, masks: np.ndarray) -> int:
    counts = (masks == 1).reshape(len(masks), -1).sum(axis=1)
    k = int(np.argmax(counts))
    win.state.viewport.slice_index = k
    return k


def _save(qtbot: Any, export: seg_export.SegExport, folder: Path) -> str:
    """Save into ``folder`` and wait until the job is over; the message said."""
    with qtbot.waitSignal(export.finished, timeout=60_000):
        job = export.save_to(folder)
    if job is not None:
        qtbot.waitUntil(lambda: job.done, timeout=10_000)
    return export.message


def test_save_seg_from_the_window_reads_back(qtbot, window, mr_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import highdicom as hd
    import pydicom

    win = window
    install_seg_overlay(win)
    export = seg_export.find(win)
    assert export is not None
    tools = win.menus.tools
    assert export.save_action in tools.actions()
    assert export.send_action in tools.actions()
    export.refresh()
    assert not export.save_action.isEnabled()
    assert "run a segmentation model" in export.save_action.toolTip()

    row = _segment_series(qtbot, win, mr_dir)
    result = row.result
    masks = result.masks
    n = win.state.slice_count
    assert masks.shape == (n, *win.state.current_frame().shape)
    k = _show_most_masked_slice(win, masks)
    export.refresh()
    assert export.save_action.isEnabled(), export.save_action.toolTip()

    with qtbot.waitSignal(export.finished, timeout=60_000):
        job = export.save_to(tmp_path)
    text = export.message
    saved = export.last
    assert saved is not None, text
    assert saved.path.parent == tmp_path
    assert saved.path.is_file()
    assert f"DICOM SEG saved to '{saved.path}'" in text
    assert win.statusBar().currentMessage() == text
    qtbot.waitUntil(lambda: job.done, timeout=10_000)

    ds = pydicom.dcmread(saved.path)
    assert ds.Modality == "SEG"
    assert dciodvfy_errors(saved.path) == set()  # the standard's own checker finds no error
    series_uid = win.state.series.series_instance_uid
    assert [s.SeriesInstanceUID for s in ds.ReferencedSeriesSequence] == [series_uid]
    referenced = {
        i.ReferencedSOPInstanceUID
        for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced == {ref.instance.sop_instance_uid for ref in win.state.slices}
    assert ds.StudyInstanceUID == win.state.context()[1].study_instance_uid
    seg = hd.seg.segread(saved.path)
    volume = seg.get_pixels_by_source_instance(
        [r.sop_instance_uid for r in result.provenance.inputs], combine_segments=True
    )
    assert volume.shape == masks.shape
    assert int((volume > 0).sum()) == int((masks == 1).sum()) == saved.pixels
    np.testing.assert_array_equal(volume > 0, masks == 1)
    versions = [e.SoftwareVersions for e in seg.ContributingEquipmentSequence]
    assert result.provenance.model_version in versions  # the model, as IHE AI Results asks

    # the saved mask is drawn over its slice by the SEG overlay
    layer = win.seg_panel.layer_of(win.viewport)
    assert any(o.sop_instance_uid == saved.sop_instance_uid for o in layer.overlays)
    assert win.seg_panel.summary.text().startswith("1 segmentation(s) in the open studies")
    if (masks[k] == 1).any():
        win.viewport.update()
        qtbot.waitUntil(lambda: layer.painted_masks >= 1, timeout=5_000)


def test_unwritable_folder_gives_a_message(qtbot, window, mr_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    win = window
    export = seg_export.find(win)
    _segment_series(qtbot, win, mr_dir)
    missing = tmp_path / "no" / "such" / "folder"
    text = _save(qtbot, export, missing)
    assert export.last is None
    assert text.startswith(f"Could not save the DICOM SEG into '{missing}'")
    assert "does not exist" in text
    assert win.statusBar().currentMessage() == text
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    text = _save(qtbot, export, blocker)
    assert "Could not save the DICOM SEG" in text
    assert str(blocker) in text
    assert not list(tmp_path.glob("**/*.dcm"))
    # the window goes on: a good folder still works
    _save(qtbot, export, tmp_path)
    assert export.last is not None, export.message


def test_classification_result_has_nothing_to_save(qtbot, window, mr_dir: Path) -> None:  # type: ignore[no-untyped-def]
    win = window
    export = seg_export.find(win)
    open_for_ai(qtbot, win, mr_dir)
    win.ai.select_model("brain-tumour-mri")
    row = win.ai.run_current_image()
    qtbot.waitUntil(lambda: row.finished, timeout=AI_TIMEOUT_MS)
    assert export.save_to(Path("/tmp")) is None
    assert "gives no segmentation mask" in export.message


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    workstation = Workstation.open(tmp_path / "ws.db")
    workstation.users.create_user("admin", PASSWORD, Role.ADMIN, by=SYSTEM_USER)
    workstation.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    workstation.session.login("rad", PASSWORD)
    yield workstation
    workstation.close()


@pytest.fixture(scope="module")
def orthanc() -> Iterator[OrthancServer]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with orthanc_server() as server:
        yield server


def test_profile_save_is_audited_and_accepted_result_goes_to_pacs(  # type: ignore[no-untyped-def]
    qtbot, window, ws: Workstation, orthanc: OrthancServer, mr_dir: Path, tmp_path: Path
) -> None:
    from desktop.pacs_panel import install_pacs

    win = window
    win.workstation = ws  # what a signed-in window carries; the save is audited through it
    orthanc.upload(sorted(mr_dir.glob("*.dcm")))
    install_pacs(win, ws, Settings(pacs=[PacsNode(name="orthanc", url=orthanc.dicomweb)]))
    win.ai.set_results(StoredResults(ws))
    export = seg_export.find(win)
    row = _segment_series(qtbot, win, mr_dir)
    _show_most_masked_slice(win, row.result.masks)

    _save(qtbot, export, tmp_path)
    saved = export.last
    assert saved is not None, export.message
    exports = list(ws.audit.iter_events(event_type=EventType.EXPORT))
    assert [(e.user, e.outcome, e.details["action"]) for e in exports] == [("rad", 0, "export-seg")]
    ids = {(o["kind"], o["id"]) for o in exports[0].objects}
    assert ("series", win.state.series.series_instance_uid) in ids
    assert ("file", str(saved.path.resolve())) in ids
    assert ("result", row.result.result_id) in ids

    assert "accept it first" in export.why_not(pacs=True)
    assert export.send_to_pacs() is None
    with qtbot.waitSignal(win.ai.decided, timeout=30_000):
        assert win.ai.decide("accepted")
    with qtbot.waitSignal(export.finished, timeout=60_000):
        job = export.send_to_pacs()
        assert job is not None, export.message
    assert export.message.startswith("DICOM SEG stored on PACS 'orthanc' (1 object(s))")
    study = win.state.context()[1].study_instance_uid
    client = PacsClient(PacsNode(name="orthanc", url=orthanc.dicomweb), null_sink)
    try:
        segs = [s for s in client.search_series(study) if s.modality == "SEG"]
    finally:
        client.close()
    assert len(segs) == 1
    sent = list(ws.audit.iter_events(event_type=EventType.EXPORT))[-1]
    assert (sent.outcome, sent.details["node"]) == (0, "orthanc")
