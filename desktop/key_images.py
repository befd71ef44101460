"""Key images: mark / unmark the image on screen (K: of interest, Shift+K: for the report), the
study's list (double-click shows the image), exports as a Key Object Selection document and of
the annotations as GSPS + TID 1500, and the key images that KOS documents from other systems
among the open files select (issue 17).

Marks and exports are the use cases' (core.app.annotations, core.app.reports.export_objects),
run as jobs; the panel keeps the list it was last given and the study it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.annotations.model import AcquiredImage
from core.annotations.store import KeyImage, Purpose
from core.app import annotations as notes
from core.app.reports import export_objects
from desktop.report_sources import (
    KOS_CLASS,
    failure,
    frame_label,
    locate,
    pacs_client,
    read_sources,
    say,
)
from desktop.workers import JobContext, JobRunner

if TYPE_CHECKING:
    import numpy.typing as npt
    import pydicom

    from core.app.workstation import Workstation
    from core.imaging.model import Frame, StudyIndex
    from core.reports.items import ImageRef
    from core.reports.store import Exported
    from desktop.viewport_grid import ViewportGrid

THUMB_PX = 64
PixelValues = Callable[[str, int], "npt.NDArray[Any] | None"]


@dataclass(frozen=True)
class Selected:
    """An image a KOS from another system selects, as the list shows it."""

    kos_title: str
    sop_instance_uid: str
    frame: int  # 0-based, as the viewer counts
    label: str


def thumbnail(frame: Frame, size: int = THUMB_PX) -> QIcon:
    """A small picture of a decoded frame in its default window: every n-th pixel, so a
    2,000-pixel radiograph costs a few thousand values, not a resampling."""
    values = frame.values
    step = max(1, max(values.shape[0], values.shape[1]) // size)
    small = values[::step, ::step]
    if frame.is_color:
        rgb = np.ascontiguousarray(small[..., :3].astype(np.uint8))
    else:
        center, width = frame.default_window()
        grey = np.clip((small.astype(np.float32) - (center - width / 2)) / width, 0.0, 1.0)
        if frame.invert:
            grey = 1.0 - grey
        rgb = np.ascontiguousarray(np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2))
    h, w = rgb.shape[:2]
    image = QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888)
    return QIcon(QPixmap.fromImage(image.copy()))


# --- jobs ----------------------------------------------------------------------------------
#: What an export job gives back: what went where, and what was left out and why.
Exports = tuple[list["Exported"], list[str]]


def _observer(ws: Workstation) -> str:
    return ws.actor.user


def export_kos_job(
    _ctx: JobContext,
    ws: Workstation,
    study_uid: str,
    keys: list[KeyImage],
    paths: list[str],
    out_dir: Path | None,
    to_pacs: bool,
) -> Exports:
    """One KOS per purpose ("Of Interest", "For Report Attachment") of the study's key images;
    the key images left out (not among the open images) are said."""
    from core.dicom_out.from_annotations import key_images_by_title
    from core.dicom_out.kos import build_kos

    client = pacs_client(ws, to_pacs, "the key images")
    sources = read_sources(paths)
    by_title, skipped = key_images_by_title(keys, sources)
    if not by_title:
        why = "; ".join(s.reason for s in skipped) or "the study has no key images"
        raise ValueError(f"no key object selection to export: {why}")
    objects: list[tuple[str, pydicom.Dataset]] = [
        ("KOS", build_kos(refs, sources, observer=_observer(ws), title=title))
        for title, refs in by_title.items()
    ]
    done = export_objects(ws, study_uid, objects, out_dir=out_dir, client=client)
    return done, [s.reason for s in skipped]


def export_annotations_job(
    _ctx: JobContext,
    ws: Workstation,
    study_uid: str,
    paths: dict[str, str],
    windows: dict[str, tuple[float, float]],
    pixel_values: PixelValues,
    units: dict[str, str],
    out_dir: Path | None,
    to_pacs: bool,
) -> Exports:
    """Per series: a GSPS of its annotations (with the window it is read with) and, when any
    carries a value, a TID 1500 measurement report. ``paths``: SOP UID -> file of each open
    image; ``windows`` and ``units``: per series UID. The annotations with no DICOM form here
    (on a reformatted plane, or refused by the adapter) are given back with the reason, for
    the done message to say, as the README promises."""
    from core.dicom_out.common import ExportError
    from core.dicom_out.from_annotations import marks_from_annotations
    from core.dicom_out.gsps import Window, build_gsps
    from core.dicom_out.measurements import build_measurement_report

    client = pacs_client(ws, to_pacs, "the annotations")
    by_series: dict[str, list[Any]] = {}
    left_out: list[str] = []
    for a in notes.list_annotations(ws, study_uid):
        if not isinstance(a.image, AcquiredImage):
            left_out.append(f"{a.kind} on a reformatted plane (not an acquired image)")
        elif a.image.sop_instance_uid in paths:
            by_series.setdefault(a.series_uid, []).append(a)
    if not by_series:
        why = f" ({'; '.join(left_out)})" if left_out else ""
        raise ValueError(f"the study has no annotations on its open images to export{why}")
    objects: list[tuple[str, pydicom.Dataset]] = []
    for series_uid, found in by_series.items():
        sources = read_sources([paths[a.sop_instance_uid] for a in found])
        marks, skipped = marks_from_annotations(
            found, sources, pixel_values, units.get(series_uid, "")
        )
        left_out += [s.reason for s in skipped]
        if not marks:
            continue
        center_width = windows.get(series_uid)
        window = Window(*center_width) if center_width else None
        objects.append(("GSPS", build_gsps(marks, sources, creator=_observer(ws), window=window)))
        try:
            report = build_measurement_report(marks, sources, observer=_observer(ws))
        except ExportError:  # no mark carries a value (arrows, text): the GSPS holds them
            continue
        objects.append(("TID1500", report))
    if not objects:
        why = f": {'; '.join(left_out)}" if left_out else ""
        raise ValueError(f"none of the study's annotations has a DICOM form to export{why}")
    done = export_objects(ws, study_uid, objects, out_dir=out_dir, client=client)
    return done, left_out


def read_kos_job(_ctx: JobContext, paths: list[str]) -> list[tuple[str, list[ImageRef]]]:
    """(title, selected images) of each KOS file; one that cannot be read is listed empty."""
    from core.dicom_out.read import ReadError, read_kos
    from core.imaging.sources import read_dataset

    found: list[tuple[str, list[ImageRef]]] = []
    for path in paths:
        try:
            sel = read_kos(read_dataset(path))
        except (ValueError, ReadError) as exc:
            found.append((f"unreadable KOS: {exc}", []))
            continue
        found.append((sel.title, list(sel.images)))
    return found


class KeyImagesPanel(QWidget):
    """The study's key images and those other systems' KOS documents select."""

    changed = Signal()

    def __init__(
        self,
        ws: Workstation,
        grid: ViewportGrid,
        runner: JobRunner,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("keyImagesPanel")
        self.setWindowTitle("Key images")
        self.ws, self.grid, self.runner = ws, grid, runner
        self.study_uid = ""
        self.keys: list[KeyImage] = []
        self.selected: list[Selected] = []
        self.last_export: list[Exported] = []
        self.last_left_out: list[str] = []  # what the last export could not include, and why
        self.list = QListWidget()
        self.list.setObjectName("keyImageList")
        self.list.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.list.itemDoubleClicked.connect(self._show_item)
        self.others = QListWidget()
        self.others.setObjectName("kosSelections")
        self.others.itemDoubleClicked.connect(self._show_item)
        self.unmark_button = QPushButton("Unmark")
        self.unmark_button.clicked.connect(self.unmark_selected)
        self.kos_button = QPushButton("Export key images (KOS)…")
        self.kos_button.clicked.connect(self.export_kos_dialog)
        self.gsps_button = QPushButton("Export annotations (GSPS + TID 1500)…")
        self.gsps_button.clicked.connect(self.export_annotations_dialog)
        self.to_pacs = QCheckBox("Also send to PACS")
        self.status = QLabel("")
        self.status.setObjectName("keyImagesStatus")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.unmark_button)
        row.addWidget(self.to_pacs)
        row.addStretch(1)
        col = QVBoxLayout(self)
        col.setContentsMargins(4, 4, 4, 4)
        heading = QLabel("Key images of this study (K: of interest, Shift+K: for report)")
        heading.setWordWrap(True)
        col.addWidget(heading)
        col.addWidget(self.list, 2)
        col.addLayout(row)
        col.addWidget(self.kos_button)
        col.addWidget(self.gsps_button)
        col.addWidget(QLabel("Selected by key object documents among the open files"))
        col.addWidget(self.others, 1)
        col.addWidget(self.status)
        self._kos_paths: tuple[str, ...] = ()

    @property
    def index(self) -> StudyIndex:
        return self.grid.model.active_state.index

    # --- the study's list -----------------------------------------------------------------
    def set_study(self, study_uid: str) -> None:
        self.study_uid = study_uid
        self.keys = []
        self.list.clear()
        self.refresh()

    def refresh(self) -> None:
        if not self.study_uid:
            return
        uid = self.study_uid
        self.runner.start(
            "Listing key images",
            lambda _ctx: notes.list_key_images(self.ws, uid),
            on_result=lambda keys: self._listed(uid, keys),
            on_error=self._failure("Cannot list the key images"),
        )

    def _listed(self, study_uid: str, keys: list[KeyImage]) -> None:
        if study_uid != self.study_uid:
            return
        self.keys = keys
        located = locate(self.index, (k.sop_instance_uid for k in keys))
        self.list.clear()
        for key in keys:
            where = located.get(key.sop_instance_uid)
            label = frame_label(where, key.frame, key.sop_instance_uid)
            purpose = str(key.purpose)  # the enum's value is its label: "For Report"
            item = QListWidgetItem(f"{label} · {purpose} · {key.author}")
            item.setData(Qt.ItemDataRole.UserRole, (key.sop_instance_uid, key.frame))
            item.setToolTip(f"Double-click to show. Marked {key.created_at}")
            frame = self._decoded(key.sop_instance_uid, key.frame)
            if frame is not None:
                item.setIcon(thumbnail(frame))
            self.list.addItem(item)
        self.changed.emit()

    def _decoded(self, sop_uid: str, frame: int) -> Frame | None:
        """The frame as a viewport decoded it, if one did (nothing is read for a thumbnail)."""
        for cell in self.grid.model.cells:
            state = cell.state
            for ref, decoded in zip(state.slices, state.frames, strict=False):
                if decoded is not None and (ref.instance.sop_instance_uid, ref.frame) == (
                    sop_uid,
                    frame,
                ):
                    return decoded
        return None

    def report_refs(self) -> list[ImageRef]:
        """The key images meant for the report, for the report SR's findings."""
        from core.reports.items import ImageRef

        located = locate(self.index, (k.sop_instance_uid for k in self.keys))
        refs = []
        for key in self.keys:
            where = located.get(key.sop_instance_uid)
            if key.purpose != Purpose.FOR_REPORT or where is None:
                continue
            multi = where.instance.number_of_frames > 1
            refs.append(
                ImageRef(
                    where.instance.sop_class_uid,
                    key.sop_instance_uid,
                    key.frame + 1 if multi else None,
                    frame_label(where, key.frame, key.sop_instance_uid),
                )
            )
        return refs

    # --- marking --------------------------------------------------------------------------
    def current_image(self) -> tuple[str, str, AcquiredImage] | str:
        """(study, series, image) on screen in the active viewport, or why there is none."""
        i = self.grid.model.active
        state = self.grid.model.active_state
        ref = state.current_slice()
        if ref is None or state.series is None:
            return "No image on screen in the active viewport."
        if self.grid.reformat_of(i) is not None:
            return "This viewport shows a reformatted plane: mark a key image on acquired images."
        inst = ref.instance
        if inst.is_plain_image or not inst.study_instance_uid:
            return "Only DICOM images can be key images."
        image = AcquiredImage(inst.sop_instance_uid, ref.frame, inst.pixel_spacing)
        return inst.study_instance_uid, state.series.series_instance_uid, image

    def toggle_mark(self, purpose: Purpose = Purpose.OF_INTEREST) -> bool:
        """Mark the image on screen as a key image, or unmark it when it is one (mine, same
        purpose). A job; the list follows."""
        found = self.current_image()
        if isinstance(found, str):
            return self._say(found, True)
        study_uid, series_uid, image = found
        me = self.ws.actor.user
        existing = next(
            (
                k
                for k in self.keys
                if (k.sop_instance_uid, k.frame, k.author)
                == (image.sop_instance_uid, image.frame, me)
                and k.purpose == purpose
            ),
            None,
        )
        if existing is not None and study_uid == self.study_uid:
            self._unmark(existing)
            return True
        label = purpose.value
        self.runner.start(
            "Marking a key image",
            lambda _ctx: notes.mark_key_image(self.ws, study_uid, series_uid, image, purpose),
            on_result=lambda _k: self._changed(f"Marked as key image ({label})"),
            on_error=self._failure("Not marked"),
        )
        return True

    def _changed(self, text: str) -> None:
        self._say(text)
        self.refresh()

    def unmark_selected(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.keys):
            self._unmark(self.keys[row])

    def _unmark(self, key: KeyImage) -> None:
        self.runner.start(
            "Unmarking a key image",
            lambda _ctx: notes.unmark_key_image(self.ws, key.uid),
            on_result=lambda _k: self._changed("Key image unmarked"),
            on_error=self._failure("Not unmarked"),
        )

    # --- showing --------------------------------------------------------------------------
    def _show_item(self, item: QListWidgetItem) -> None:
        data = item.data(Qt.ItemDataRole.UserRole)
        if data:
            self.show_image(str(data[0]), int(data[1]))

    def show_image(self, sop_uid: str, frame: int = 0) -> bool:
        """Show an image of the open studies in the active viewport."""
        where = locate(self.index, [sop_uid]).get(sop_uid)
        if where is None:
            return self._say(f"Image '{sop_uid}' is not among the open files: open it first.", True)
        state = self.grid.model.active_state
        uid = where.series.series_instance_uid
        if state.series is None or state.series.series_instance_uid != uid:
            self.grid.open_series(uid)
            state = self.grid.model.active_state
        for i, ref in enumerate(state.slices):
            if ref.instance.sop_instance_uid == sop_uid and ref.frame == frame:
                state.set_slice(i)
                return True
        return self._say("The image is in the series but not among its slices.", True)

    # --- KOS from other systems -----------------------------------------------------------
    def scan_index(self, *_: object) -> None:
        """Read the KOS documents among the open files (a job) and list what they select."""
        paths = tuple(
            inst.path
            for _p, _s, series in self.index.iter_series()
            for inst in series.instances
            if inst.sop_class_uid == KOS_CLASS
        )
        if paths == self._kos_paths:
            return
        self._kos_paths = paths
        self.runner.start(
            "Reading key object selections",
            read_kos_job,
            list(paths),
            on_result=lambda found: self._kos_read(paths, found),
        )

    def _kos_read(self, paths: tuple[str, ...], found: list[tuple[str, list[ImageRef]]]) -> None:
        """List what a scan found, unless a later scan (other files open now) superseded it:
        jobs finish in any order, and an older scan must not overwrite a newer list."""
        if paths != self._kos_paths:
            return
        located = locate(self.index, (r.sop_instance_uid for _t, refs in found for r in refs))
        self.selected = []
        self.others.clear()
        for title, refs in found:
            for r in refs:
                frame = (r.frame or 1) - 1
                where = located.get(r.sop_instance_uid)
                label = frame_label(where, frame, r.sop_instance_uid)
                if where is None:
                    label += " (not open)"
                self.selected.append(Selected(title, r.sop_instance_uid, frame, label))
                item = QListWidgetItem(f"{title}: {label}")
                item.setData(Qt.ItemDataRole.UserRole, (r.sop_instance_uid, frame))
                self.others.addItem(item)

    # --- exports --------------------------------------------------------------------------
    def _open_paths(self) -> dict[str, str]:
        return {
            inst.sop_instance_uid: inst.path
            for _p, st, series in self.index.iter_series()
            if st.study_instance_uid == self.study_uid
            for inst in series.instances
            if inst.has_pixels and not inst.is_plain_image
        }

    def _folder(self, title: str) -> Path | None:
        folder = QFileDialog.getExistingDirectory(self, title)
        return Path(folder) if folder else None

    def export_kos_dialog(self) -> None:
        out_dir = self._folder("Export the key images (KOS) to")
        if out_dir is not None or self.to_pacs.isChecked():
            self.export_kos(out_dir, self.to_pacs.isChecked())

    def export_kos(self, out_dir: Path | None, to_pacs: bool = False) -> bool:
        if not self.keys:
            return self._say("This study has no key images to export.", True)
        paths = self._open_paths()
        wanted = [paths[k.sop_instance_uid] for k in self.keys if k.sop_instance_uid in paths]
        return self._export(
            "Exporting key images", export_kos_job, self.study_uid, list(self.keys), wanted,
            out_dir, to_pacs,
        )  # fmt: skip

    def export_annotations_dialog(self) -> None:
        out_dir = self._folder("Export the annotations (GSPS + TID 1500) to")
        if out_dir is not None or self.to_pacs.isChecked():
            self.export_annotations(out_dir, self.to_pacs.isChecked())

    def export_annotations(self, out_dir: Path | None, to_pacs: bool = False) -> bool:
        windows: dict[str, tuple[float, float]] = {}
        units: dict[str, str] = {}
        frames: dict[tuple[str, int], npt.NDArray[Any]] = {}
        for cell in self.grid.model.cells:
            state = cell.state
            if state.series is None:
                continue
            uid = state.series.series_instance_uid
            vp = state.viewport
            windows.setdefault(uid, (vp.window_center, vp.window_width))
            for ref, frame in zip(state.slices, state.frames, strict=False):
                if frame is not None and not frame.is_color:
                    frames[(ref.instance.sop_instance_uid, ref.frame)] = frame.values
                    units.setdefault(uid, frame.units)

        def pixel_values(sop_uid: str, frame: int) -> npt.NDArray[Any] | None:
            return frames.get((sop_uid, frame))

        return self._export(
            "Exporting annotations", export_annotations_job, self.study_uid, self._open_paths(),
            windows, pixel_values, units, out_dir, to_pacs,
        )  # fmt: skip

    def _export(self, name: str, job: Callable[..., Exports], *args: Any) -> bool:
        if not self.study_uid:
            return self._say("No study on screen.", True)
        if args[-2] is None and not args[-1]:
            return self._say("Choose a folder or the PACS to export to.", True)
        self._say(f"{name}…")

        def done(result: Exports) -> None:
            found, left_out = result
            self.last_export, self.last_left_out = found, left_out
            said = "Exported " + ", ".join(f"{e.kind} → {e.destination}" for e in found)
            if left_out:
                said += f". Left out ({len(left_out)}): " + "; ".join(left_out)
            self._say(said)

        self.runner.start(
            name,
            job,
            self.ws,
            *args,
            on_result=done,
            on_error=self._failure("Not exported"),
        )
        return True

    def _failure(self, prefix: str) -> Callable[[BaseException], None]:
        return failure(self.status, prefix)

    def _say(self, text: str, refused: bool = False) -> bool:
        return say(self.status, text, refused)
