"""The application's log files: written, rotated, private (0600 in a 0700 folder), and free of
patient-identifying data after a real session on the shared data (CLI inspect, render, infer as
separate processes; the window opening a study), checked by grepping every log file for every
identifying value of the files used."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
import pytest

from core.logs import LOG_FILE, note_identifiers, scrub, setup_logging, stop_logging
from tests.conftest import REPO
from tests.desktop.conftest import _no_leaked_workers, window  # noqa: F401 - fixtures

if TYPE_CHECKING:
    from pytestqt.qtbot import QtBot

    from desktop.main_window import MainWindow

IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "OtherPatientIDs")
CT_STACK = ("pyvista__vtk-data", "Data", "DICOM_Stack")
CT3 = ("QIICR__dcmqi", "data", "segmentations", "ct-3slice")
CR = ("pydicom__pydicom-data", "data_store", "data", "RG1_J2KI.dcm")


@pytest.fixture
def log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "logs"
    monkeypatch.setenv("DOCTORAI_LOG_DIR", str(folder))
    yield folder
    stop_logging()


def _identifying(files: list[Path]) -> set[str]:
    """Every identifying value of ``files`` (and each part of a name), 3 characters or more."""
    values: set[str] = set()
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        for keyword in IDENTIFYING:
            element = ds.get(keyword)
            if element is None:
                continue
            raw = element if isinstance(element, pydicom.multival.MultiValue) else [element]
            for v in raw:
                text = str(v).strip()
                for part in {text, text.replace("^", " ").strip(), *text.split("^")}:
                    if len(part.strip()) >= 3:
                        values.add(part.strip())
    return values


def _logs(folder: Path) -> str:
    files = sorted(folder.glob(f"{LOG_FILE}*"))
    assert files, f"no log file in {folder}"
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


def _doctorai(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desktop.launcher", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env=os.environ.copy(),
    )


def test_a_session_on_the_shared_data_leaves_no_patient_data_in_the_logs(
    dicom_data: Path,
    log_dir: Path,
    tmp_path: Path,
    qtbot: QtBot,
    window: MainWindow,  # noqa: F811
) -> None:
    ct = sorted(dicom_data.joinpath(*CT_STACK).glob("*.dcm"))[:12]
    ct3 = sorted(dicom_data.joinpath(*CT3).glob("*.dcm"))
    cr = dicom_data.joinpath(*CR)
    if not ct or not ct3 or not cr.exists():
        pytest.skip("shared DICOM examples not found")
    # a folder named after the patient, as PACS exports and CDs often are, with a broken copy
    name = str(pydicom.dcmread(ct3[0], stop_before_pixels=True).PatientName)
    named = tmp_path / name.replace("^", " ") / "IMG0001.dcm"
    named.parent.mkdir(parents=True)
    named.write_bytes(ct3[0].read_bytes()[:2000])
    # the CLI, each command its own process, logging from its entry point
    ct_dir = tmp_path / "ct"
    ct_dir.mkdir()
    for f in ct:
        shutil.copy(f, ct_dir / f.name)
    proc = _doctorai("inspect", str(ct_dir), *map(str, ct3), str(named))
    assert proc.returncode == 0, proc.stderr
    proc = _doctorai("render", str(ct3[0]), "--out", str(tmp_path / "r.png"))
    assert proc.returncode == 0, proc.stderr
    proc = _doctorai("render", str(named), "--out", str(tmp_path / "bad.png"))
    assert proc.returncode != 0
    proc = _doctorai(
        "infer", "--model", "chest-xray-pneumonia", str(cr), "--device", "cpu", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    # the window, in this process, logging as the application sets it up
    path = setup_logging()
    window.open_paths([str(p) for p in ct3] + [str(named)])
    qtbot.waitUntil(lambda: window.state.loaded_count == len(ct3), timeout=30_000)
    # our own code's log calls with what a careless one would write (the net under them)
    log = logging.getLogger("tests.security.logs")
    log.warning("cannot read '%s'", named)
    try:
        _fail(f"patient '{name}' in {named.parent}")
    except ValueError:
        log.exception("a failure naming the patient")
    for handler in logging.getLogger().handlers:
        handler.flush()

    text = _logs(log_dir)
    assert path.parent == log_dir
    assert "indexed" in text  # the session did write (so the test could fail)
    assert "a failure naming the patient" in text
    assert "<file #" in text
    values = _identifying([*ct, *ct3, cr])
    assert values  # the files do carry names and IDs
    leaked = {v for v in values if v.lower() in text.lower()}
    assert not leaked, f"patient-identifying values in the log files: {sorted(leaked)}"
    assert str(tmp_path) not in text


def _fail(message: str) -> None:
    raise ValueError(message)


def test_log_files_are_private_and_rotate(log_dir: Path) -> None:
    from core.config import LogSettings

    path = setup_logging(LogSettings(max_bytes=64 * 1024, backups=2))
    assert path == log_dir / LOG_FILE
    log = logging.getLogger("tests.security.rotate")
    for i in range(3000):
        log.info("line %d %s", i, "x" * 60)
    files = sorted(log_dir.glob(f"{LOG_FILE}*"))
    assert [f.name for f in files] == [LOG_FILE, f"{LOG_FILE}.1", f"{LOG_FILE}.2"]
    assert log_dir.stat().st_mode & 0o777 == 0o700
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o600
        assert f.stat().st_size <= 64 * 1024 + 200
    first = files[0].read_text().splitlines()[0]
    assert " INFO " in first
    assert " tests.security.rotate: " in first  # time, level, logger, message


def test_scrub_hides_paths_and_noted_values_but_not_code_paths() -> None:
    note_identifiers(["Roe^Jane^Q", "PID-778899"])
    out = scrub(
        "cannot read /data/Roe Jane/IM1.dcm for jane roe (PID-778899) at C:\\Scans\\Roe\\1.dcm"
    )
    assert "Roe" not in out
    assert "Jane" not in out.replace("<", "")
    assert "778899" not in out
    assert "/data" not in out
    assert "Scans" not in out
    code = str(REPO / "core" / "logs.py")
    assert scrub(f'File "{code}", line 3') == f'File "{code}", line 3'
    assert scrub("GET https://pacs:8443/dicom-web/studies") == (
        "GET https://pacs:8443/dicom-web/studies"
    )


def test_a_noted_value_is_redacted_as_a_whole_not_inside_other_words() -> None:
    """A patient called "Pat" or "Ann" (another test's profile noted one) once turned every
    "patient" and "annotation" in the log into "<redacted>ient", "<redacted>otation"."""
    note_identifiers(["Pat^Ann", "JANCT999"])
    out = scrub("a failure naming the patient in an annotation: Pat, ANN; id JANCT999_ct.")
    assert out == (
        "a failure naming the patient in an annotation: <redacted>, <redacted>; id <redacted>_ct."
    )


def test_help_open_log_folder_opens_the_log_dir(
    log_dir: Path,
    qtbot: QtBot,
    window: MainWindow,  # noqa: F811
) -> None:
    from PySide6.QtCore import QObject, QUrl, Slot
    from PySide6.QtGui import QDesktopServices

    class Opened(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.urls: list[QUrl] = []

        @Slot(QUrl)
        def handle(self, url: QUrl) -> None:
            self.urls.append(url)

    opened = Opened()
    QDesktopServices.setUrlHandler("file", opened, "handle")
    try:
        assert window.menus is not None
        assert window.menus.help is not None
        action = next(a for a in window.menus.help.actions() if a.text() == "Open log folder")
        action.trigger()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert [u.toLocalFile() for u in opened.urls] == [str(log_dir)]
