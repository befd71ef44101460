"""Broken files in the shared data are listed with their reason, and the rest loads."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

BROKEN = ("emri_small_jpeg_2k_lossless_too_short.dcm", "GH177")


def test_broken_files_listed_rest_loads(qtbot, window, dicom_data: Path) -> None:
    win, st = window, window.state
    # open by drag-and-drop, as a user would
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dicom_data))])
    enter = QDragEnterEvent(
        QPoint(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(win, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(win, drop)
    # a provisional first image may show before indexing ends: wait for the index itself
    qtbot.waitUntil(
        lambda: "indexed" in win.controller.timings and st.series is not None, timeout=60_000
    )
    entries = win.errors.entries()
    for name in BROKEN:
        assert any(name in path for path, _reason in entries), (name, entries)
    assert all(reason for _path, reason in entries)
    assert win.errors_dock.isVisible()
    assert not win.errors_button.isHidden()
    n_series = sum(1 for _ in st.index.iter_series())
    assert n_series >= 10  # CT, MR, CR, US, the transfer-syntax matrix, ...
    assert win.browser.topLevelItemCount() == len(st.index.patients)
    # the biggest series (the 134-slice CT) opens and loads despite the broken files
    assert st.slice_count == 134
    qtbot.waitUntil(lambda: "series_loaded" in win.controller.timings, timeout=60_000)
    assert st.loaded_count == 134


def test_per_slice_decode_error_is_shown(qtbot, window, dicom_data: Path) -> None:
    truncated = next(dicom_data.rglob("MR_truncated.dcm"))
    win = window
    win.open_paths([truncated])
    qtbot.waitUntil(
        lambda: any("MR_truncated" in p or "MR_truncated" in r for p, r in win.errors.entries()),
        timeout=30_000,
    )
    assert win.errors_dock.isVisible()


def test_undecodable_slice_is_shown_as_such_and_the_load_ends(
    qtbot, window, ct_dir: Path, tmp_path: Path
) -> None:
    """A slice whose pixels cannot be decoded must never show a neighbour's image."""
    import shutil

    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    from core.viewer.overlay import corner_text

    files = sorted(ct_dir.glob("*.dcm"))[40:51]
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    bad = tmp_path / files[5].name
    ds = pydicom.dcmread(bad)  # junk JPEG: the header indexes, the pixels cannot decode
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0" + b"\x00" * 200])
    ds["PixelData"].VR = "OB"
    ds.save_as(bad, enforce_file_format=True)
    win, st = window, window.state
    win.open_paths([tmp_path])
    qtbot.waitUntil(lambda: st.slice_count == 11 and not win.controller.indexing, timeout=60_000)
    qtbot.waitUntil(lambda: st.settled_count == 11, timeout=60_000)
    assert st.loaded_count == 10
    (index,) = st.failed
    assert st.slices[index].instance.path == str(bad)
    assert st.failed[index].startswith("the compressed pixel data is damaged or in a form no ")
    assert any(bad.name in path for path, _reason in win.errors.entries())
    qtbot.waitUntil(lambda: win.progress.isHidden(), timeout=5_000)  # loading has ended
    st.set_slice(index)
    assert win.viewport.shown_frame() == (None, False)  # no neighbour's pixels in its place
    assert "1 of 11 images could not be decoded" in corner_text(st).bottom_left
    st.set_slice(index + 1 if index + 1 < 11 else index - 1)
    frame, own = win.viewport.shown_frame()
    assert own
    assert frame is not None
