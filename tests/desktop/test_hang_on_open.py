"""Whole window, real profile: a study opened is hung by its protocol at once, with the prior
from the local study database in the viewport the protocol gives it, without any key press;
a namesake (same name, another Patient ID) is never taken for a prior."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from core.app.access import index_read
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.config import SecuritySettings
from core.imaging.index import build_index
from core.imaging.model import Study
from core.viewer.hanging import Hanging, acquired_plane
from core.viewer.state import ViewerState
from desktop.main_window import MainWindow
from tests.desktop.workstation.helpers import CR, PASSWORD, add_users
from tests.pacs.orthanc import OrthancServer, orthanc_server, unavailable_reason
from tests.studies.helpers import make_study

TIMEOUT_MS = 120_000


def copy_as_study(
    files: list[Path],
    folder: Path,
    date: str,
    patient_id: str | None = None,
    modality: str | None = None,
) -> tuple[str, str]:
    """The files as another study of the same patient (or of ``patient_id``): new study,
    series and instance UIDs, another study date. Returns (study UID, series UID)."""
    folder.mkdir(parents=True)
    study_uid, series_uid = generate_uid(), generate_uid()
    for n, src in enumerate(files):
        ds = pydicom.dcmread(src)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyDate = date
        if patient_id is not None:
            ds.PatientID = patient_id
        if modality is not None:
            ds.Modality = modality
        ds.save_as(folder / f"{n:04d}.dcm")
    return study_uid, series_uid


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    w = Workstation.open(tmp_path / "ws.db", SecuritySettings(lock_timeout_min=30))
    add_users(w)
    w.session.login("rad", PASSWORD)
    yield w
    w.close()


@pytest.fixture
def window(qtbot, ws: Workstation) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QApplication

    from desktop.theme import apply_dark_theme

    apply_dark_theme(QApplication.instance())  # type: ignore[arg-type]
    win = MainWindow(workstation=ws, lock_check_ms=60_000)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    yield win
    assert win.shutdown(10_000)


def index_as_prior(ws: Workstation, folder: Path) -> None:
    """The prior is in the local study database (indexed earlier on this workstation)."""
    index_read(ws, build_index([str(folder)]), action="test-setup")


def hung(win: MainWindow) -> Hanging:
    assert win.auto_hang.hanging is not None, "nothing was hung"
    return win.auto_hang.hanging


def study_of(state: ViewerState) -> Study:
    context = state.context()
    assert context is not None, "the viewport shows nothing"
    return context[1]


def wait_hung_and_loaded(qtbot, win: MainWindow) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: win.auto_hang.hanging is not None, timeout=TIMEOUT_MS)

    def loaded() -> bool:
        cells = [c.state for c in win.grid.model]
        return all(s.series is None or s.settled_count == s.slice_count for s in cells)

    qtbot.waitUntil(lambda: loaded() and not win.auto_hang.jobs, timeout=TIMEOUT_MS)


def test_a_ct_opens_hung_with_its_prior_in_four_viewports(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, ws: Workstation, ct_dir: Path, tmp_path: Path
) -> None:
    prior_study, prior_series = copy_as_study(
        sorted(ct_dir.glob("*.dcm")), tmp_path / "prior", "20100101"
    )
    index_as_prior(ws, tmp_path / "prior")
    window.open_paths([str(ct_dir)])  # File > Open folder's path; no key is pressed after it
    wait_hung_and_loaded(qtbot, window)

    grid, model = window.grid, window.grid.model
    assert hung(window).protocol.startswith("CT with prior")
    assert (model.rows, model.cols) == (2, 2)
    current = study_of(model.cells[0].state)
    assert current.study_instance_uid != prior_study
    ct_series = max(current.series.values(), key=lambda s: s.frame_count).series_instance_uid
    assert [c.series_uid for c in model] == [ct_series, ct_series, ct_series, prior_series]
    assert [c.orientation for c in model] == ["axial", "coronal", "sagittal", "axial"]
    # the CT is acquired axially: cells 1 and 2 draw reformats, 0 and 3 the acquired slices
    assert acquired_plane(current.series[ct_series]) == "axial"
    assert [grid.reformat_of(i) for i in range(4)] == [None, "coronal", "sagittal", None]
    assert sorted(grid.mpr) == [1, 2]
    qtbot.waitUntil(lambda: all(m.view is not None for m in grid.mpr.values()), timeout=TIMEOUT_MS)
    # every viewport has its images; the prior's cell shows the prior study's own frames
    for cell in model:
        assert cell.state.loaded_count == cell.state.slice_count > 100
    prior_state = model.cells[3].state
    assert study_of(prior_state).study_date == "20100101"
    assert prior_state.frames[0] is not model.cells[0].state.frames[0]
    assert "with 1 prior(s)" in window.auto_hang.message
    # the slider follows the active viewport: off over a reformat, the prior's own slices
    model.set_active(1)
    assert not window.slider.isEnabled()
    model.set_active(3)
    assert window.slider.isEnabled()
    window.slider.setValue(5)
    assert prior_state.viewport.slice_index == 5
    assert model.cells[0].state.viewport.slice_index != 5


def test_a_radiograph_opens_side_by_side_with_its_prior(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, ws: Workstation, tmp_path: Path
) -> None:
    prior_study, prior_series = copy_as_study([CR], tmp_path / "prior", "20000101")
    index_as_prior(ws, tmp_path / "prior")
    window.open_paths([str(CR)])
    wait_hung_and_loaded(qtbot, window)

    model = window.grid.model
    assert hung(window).protocol == "Radiograph with prior: side by side"
    assert (model.rows, model.cols) == (1, 2)
    current, prior = study_of(model.cells[0].state), study_of(model.cells[1].state)
    assert current.study_instance_uid != prior_study
    assert (prior.study_instance_uid, model.cells[1].series_uid) == (prior_study, prior_series)
    assert [c.label for c in model] == ["Current", "Prior"]
    assert all(c.state.loaded_count == 1 for c in model)


def test_only_the_newest_prior_of_the_modality_is_read_and_hung(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, ws: Workstation, tmp_path: Path
) -> None:
    older, _ = copy_as_study([CR], tmp_path / "older", "20000101")
    newer, _ = copy_as_study([CR], tmp_path / "newer", "20020101")
    other, _ = copy_as_study([CR], tmp_path / "other", "20030101", modality="OT")
    for folder in ("older", "newer", "other"):
        index_as_prior(ws, tmp_path / folder)
    window.open_paths([str(CR)])
    wait_hung_and_loaded(qtbot, window)

    hanging = hung(window)
    assert [s.study_instance_uid for s in hanging.studies][1:] == [newer]
    assert study_of(window.grid.model.cells[1].state).study_instance_uid == newer
    opened = {st.study_instance_uid for p in window.state.index.patients.values()
              for st in p.studies.values()}  # fmt: skip
    assert newer in opened
    assert older not in opened  # the protocol shows one prior: the older one is not read
    assert other not in opened  # the newest study is of another modality


def test_a_namesake_of_another_patient_is_not_taken_as_a_prior(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, ws: Workstation, tmp_path: Path
) -> None:
    # same name as the CR's patient, another Patient ID: another person
    namesake, _ = copy_as_study([CR], tmp_path / "namesake", "20000101", patient_id="OTHER-1")
    index_as_prior(ws, tmp_path / "namesake")
    assert (
        pydicom.dcmread(next((tmp_path / "namesake").glob("*.dcm"))).PatientName
        == pydicom.dcmread(CR).PatientName
    )
    window.open_paths([str(CR)])
    wait_hung_and_loaded(qtbot, window)

    hanging = hung(window)
    assert [s.study_instance_uid for s in hanging.studies] == [
        study_of(window.state).study_instance_uid
    ]
    assert hanging.protocol == "Radiograph"  # the protocol without a prior
    model = window.grid.model
    assert len(model) == 1
    assert all(study_of(c.state).study_instance_uid != namesake for c in model if c.series_uid)


@pytest.fixture(scope="module")
def orthanc() -> Iterator[OrthancServer]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with orthanc_server() as server:
        yield server


def test_a_prior_only_on_the_pacs_is_retrieved_in_the_background_and_hung(  # type: ignore[no-untyped-def]
    qtbot, ws: Workstation, tmp_path: Path, orthanc: OrthancServer
) -> None:
    from core.config import PacsNode, Settings, pin_settings

    current = make_study(tmp_path / "now", patient_id="H1", issuer="HOSP", date="20240101")
    prior = make_study(tmp_path / "prior", patient_id="H1", issuer="HOSP", date="20200101")
    orthanc.upload(sorted((tmp_path / "prior").glob("*.dcm")))
    pin_settings(Settings(pacs=[PacsNode(name="orthanc", url=orthanc.dicomweb)]))
    win = MainWindow(workstation=ws, lock_check_ms=60_000)
    qtbot.addWidget(win)
    try:
        win.show()
        win.open_paths([str(tmp_path / "now")])
        # hung at once without a prior, then again when the prior has arrived from the PACS
        qtbot.waitUntil(lambda: win.auto_hang.hanging is not None, timeout=TIMEOUT_MS)
        assert [s.study_instance_uid for s in hung(win).studies] == [current]
        qtbot.waitUntil(lambda: len(hung(win).studies) == 2, timeout=TIMEOUT_MS)
        assert [s.study_instance_uid for s in hung(win).studies] == [current, prior]
        assert hung(win).protocol.startswith("CT with prior")
        model = win.grid.model
        assert study_of(model.cells[3].state).study_instance_uid == prior
        assert study_of(win.state).study_instance_uid == current  # the view stayed
        qtbot.waitUntil(lambda: not win.auto_hang.jobs, timeout=TIMEOUT_MS)
        transfers = [e.event_type for e in ws.audit.iter_events(user="rad")]
        assert EventType.INSTANCES_TRANSFERRED in transfers
    finally:
        assert win.shutdown(10_000)
        pin_settings(None)


def test_hang_on_open_is_off_when_it_says_so_and_esc_stops_every_viewport(  # type: ignore[no-untyped-def]
    qtbot, ws: Workstation, tmp_path: Path, ct_dir: Path
) -> None:
    import os

    Path(os.environ["DOCTORAI_MACHINE_CONFIG"]).write_text("[viewer]\nhang_on_open = false\n")
    copy_as_study([CR], tmp_path / "prior", "20000101")
    index_as_prior(ws, tmp_path / "prior")
    win = MainWindow(workstation=ws, lock_check_ms=60_000)
    qtbot.addWidget(win)
    try:
        win.show()
        assert not win.auto_hang.enabled
        win.open_paths([str(CR)])
        qtbot.waitUntil(lambda: win.state.loaded_count == 1, timeout=TIMEOUT_MS)
        qtbot.waitUntil(lambda: not win.controller.indexing, timeout=TIMEOUT_MS)
        qtbot.wait(200)
        assert win.auto_hang.hanging is None
        assert len(win.grid.model) == 1
        # Esc stops the loads of every viewport, not only the first one's
        win.open_paths([str(ct_dir)])
        qtbot.waitUntil(lambda: not win.controller.indexing, timeout=TIMEOUT_MS)
        series = {s.modality: s for _p, _st, s in win.state.index.iter_series()}
        model = win.grid.model
        win.grid.open_series(series["CR"].series_instance_uid)  # viewport 1: the radiograph
        model.set_preset("1x2")
        model.set_active(1)
        win.grid.open_series(series["CT"].series_instance_uid)  # viewport 2 loads the CT
        job = win.grid.controllers[1].series_load
        assert job is not None
        assert not job.done
        win.cancel_loading()
        assert job.cancelled
        qtbot.waitUntil(lambda: job.done, timeout=TIMEOUT_MS)
        assert model.cells[1].state.loaded_count < 134
    finally:
        assert win.shutdown(10_000)
