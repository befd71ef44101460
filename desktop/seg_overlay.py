"""SEG masks drawn over the viewport, and a panel with the SR/SEG objects of the open studies.

Whenever studies are added (from files or the PACS), SEG and SR instances among them are read
in a background job (core.imaging.overlays); masks then follow the viewport's slice, zoom,
pan, rotation and flip through the same view matrix the image uses. A transparent child
widget paints them, so viewport_widget.py needed no change. Every viewport of the reading room's
grid gets one (``ResultsObjectsPanel.follow_grid``, also for viewports later layouts add); each
draws only the masks of the instance its own current slice shows, so a viewport showing another
series draws none, and the panel's toggle shows or hides them in all. A viewport covered by a
reformat (``desktop.mpr_cell``) draws none: the masks belong to the acquired slices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import shiboken6
from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QImage, QPainter, QPaintEvent, QTransform
from PySide6.QtWidgets import QCheckBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from core.imaging.model import Instance, StudyIndex
from core.imaging.overlays import SEG_SOP_CLASS, SR_SOP_CLASSES, SegOverlay, SrSummary
from core.viewer.state import ViewerState
from core.viewer.transform import view_matrix
from desktop.grid_cells import GridCells
from desktop.mpr_cell import MprCell
from desktop.workers import JobContext, JobRunner

ALPHA = 110


def mask_image(masks: list[tuple[Any, np.ndarray[Any, Any]]]) -> QImage:
    """One ARGB image of all segments of a slice (later segments drawn over earlier ones)."""
    h, w = masks[0][1].shape
    rgba = np.zeros((h, w, 4), np.uint8)
    for segment, mask in masks:
        r, g, b = segment.color
        rgba[mask] = (r, g, b, ALPHA)
    img = QImage(rgba.data, w, h, rgba.strides[0], QImage.Format.Format_RGBA8888)
    return img.copy()


StudyReport = tuple[str, SrSummary]  # (study instance UID, the SR's summary)


def read_objects_job(
    ctx: JobContext, seg: list[Instance], sr: list[Instance], index: StudyIndex
) -> tuple[list[SegOverlay], list[StudyReport], list[str]]:
    """Read SEG/SR instances (worker thread); problems come back as text, never raised."""
    from core.imaging.overlays import OverlayError, read_seg, read_sr

    overlays: list[SegOverlay] = []
    reports: list[StudyReport] = []
    problems: list[str] = []
    for inst in seg:
        if ctx.cancelled:
            break
        try:
            overlay = read_seg(inst.path)
            if overlay.unmapped_frames:  # no references: match frames by position instead
                source = next(
                    (
                        s
                        for _p, _st, s in index.iter_series()
                        if s.series_instance_uid == overlay.referenced_series_uid
                    ),
                    None,
                )
                if source is not None:
                    overlay = read_seg(inst.path, source)
            overlays.append(overlay)
        except OverlayError as exc:
            problems.append(str(exc))
    for inst in sr:
        if ctx.cancelled:
            break
        try:
            reports.append((inst.study_instance_uid, read_sr(inst.path)))
        except OverlayError as exc:
            problems.append(str(exc))
    return overlays, reports, problems


if TYPE_CHECKING:
    from desktop.main_window import MainWindow
    from desktop.viewport_grid import ViewportGrid
    from desktop.viewport_widget import ViewportWidget


class SegOverlayLayer(QWidget):
    """Transparent child of the viewport that paints the masks of the current slice."""

    def __init__(self, viewport: ViewportWidget, state: ViewerState) -> None:
        super().__init__(viewport)
        self.viewport = viewport
        self.state = state
        self.overlays: list[SegOverlay] = []
        self._cache: dict[tuple[str, str, int], QImage] = {}
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setGeometry(viewport.rect())
        viewport.installEventFilter(self)
        state.viewport.events.connect(self._repaint)
        state.frame_loaded.connect(self._repaint)
        state.series_changed.connect(self._repaint)
        self.painted_masks = 0  # masks drawn by the last paint (tests, status)
        self.show()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.viewport and event.type() == QEvent.Type.Resize:
            self.setGeometry(self.viewport.rect())
        return False

    def _repaint(self, *_: object) -> None:
        # a viewport a smaller grid deleted (with this layer) may leave its state behind,
        # still emitting for a while (a cancelled load's last slices)
        if shiboken6.isValid(self):
            self.update()

    def set_overlays(self, overlays: list[SegOverlay]) -> None:
        self.overlays = overlays
        self._cache.clear()
        self.update()

    def current_masks(self) -> list[tuple[str, QImage]]:
        ref = self.state.current_slice()
        if ref is None:
            return []
        out = []
        for overlay in self.overlays:
            key = (overlay.sop_instance_uid, ref.instance.sop_instance_uid, ref.frame)
            if key not in self._cache:
                masks = overlay.masks_for(ref.instance.sop_instance_uid, ref.frame)
                if not masks:
                    continue
                self._cache[key] = mask_image(masks)
            out.append((overlay.sop_instance_uid, self._cache[key]))
        return out

    def covered(self) -> bool:
        """Whether a reformat lies over the viewport (its acquired slice is not on screen)."""
        return any(c.isVisible() for c in self.viewport.findChildren(MprCell))

    def paintEvent(self, event: QPaintEvent) -> None:
        self.painted_masks = 0
        frame = self.state.current_frame()
        if frame is None or not self.isVisible() or self.covered():
            return
        masks = self.current_masks()
        if not masks:
            return
        g = self.viewport.geometry_for(frame)
        m = view_matrix(g)
        p = QPainter(self)
        p.setTransform(QTransform(m[0, 0], m[1, 0], m[0, 1], m[1, 1], m[0, 2], m[1, 2]))
        for _uid, img in masks:
            if (img.height(), img.width()) == frame.shape:
                p.drawImage(QPointF(0, 0), img)
                self.painted_masks += 1
        p.end()


class ResultsObjectsPanel(QWidget):
    """Lists the SEG/SR objects found in the open studies; SR summaries as text."""

    def __init__(
        self,
        state: ViewerState,
        runner: JobRunner,
        layer: SegOverlayLayer,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("segSrPanel")
        self.state, self.runner, self.layer = state, runner, layer
        self.layers: list[SegOverlayLayer] = [layer]  # one per viewport (follow_grid)
        self.cells: GridCells | None = None
        self.seen: set[str] = set()
        self.overlays: list[SegOverlay] = []
        self.reports: list[StudyReport] = []
        self.problems: list[str] = []
        self.show_masks = QCheckBox("Show segmentations over the image")
        self.show_masks.setChecked(True)
        self.show_masks.toggled.connect(self._set_masks_visible)
        self.summary = QLabel("No SEG or SR objects in the open studies")
        self.summary.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        col = QVBoxLayout(self)
        col.addWidget(self.show_masks)
        col.addWidget(self.summary)
        col.addWidget(self.text, 1)
        state.index_changed.connect(self._scan)
        state.series_changed.connect(lambda _s: self._show())

    def follow_grid(self, grid: ViewportGrid) -> None:
        """A mask layer over every viewport of ``grid``, now and in later layouts."""
        self.cells = GridCells(grid)
        self.cells.added.connect(self._add_layer)
        self.cells.start()

    def _add_layer(self, viewport: ViewportWidget) -> None:
        cells = self.cells
        # layers of viewports a smaller grid deleted go (they were deleted with them)
        self.layers = [la for la in self.layers if cells is None or cells.owns(la.viewport)]
        if any(la.viewport is viewport for la in self.layers):
            return
        layer = SegOverlayLayer(viewport, viewport.state)
        layer.set_overlays(self.overlays)
        layer.setVisible(self.show_masks.isChecked())
        self.layers.append(layer)

    def layer_of(self, viewport: ViewportWidget) -> SegOverlayLayer | None:
        return next((la for la in self.layers if la.viewport is viewport), None)

    def _set_masks_visible(self, on: bool) -> None:
        for layer in self.layers:
            layer.setVisible(on)

    def _scan(self, index: StudyIndex) -> None:
        seg, sr = [], []
        for _p, _st, series in index.iter_series():
            for inst in series.instances:
                if inst.path in self.seen:
                    continue
                if inst.sop_class_uid == SEG_SOP_CLASS:
                    seg.append(inst)
                elif inst.sop_class_uid in SR_SOP_CLASSES:
                    sr.append(inst)
        if (not seg and not sr) or self.runner.closed:
            return
        self.seen.update(i.path for i in seg + sr)
        self.runner.start(
            "read SEG/SR", read_objects_job, seg, sr, index, on_result=self._on_objects
        )

    def add_overlays(self, overlays: list[SegOverlay]) -> None:
        """Show SEG masks made in this session (an AI segmentation just saved) like read ones."""
        self._on_objects((overlays, [], []))

    def _on_objects(self, result: tuple[list[SegOverlay], list[StudyReport], list[str]]) -> None:
        overlays, reports, problems = result
        self.overlays += overlays
        self.reports += reports
        self.problems += problems
        for layer in self.layers:
            layer.set_overlays(self.overlays)
        self._show()

    def _show(self) -> None:
        """Reports of the study on screen only: another patient's findings never sit beside
        this patient's images."""
        context = self.state.context()
        study_uid = context[1].study_instance_uid if context is not None else None
        mine = [r for uid, r in self.reports if uid == study_uid]
        others = len(self.reports) - len(mine)
        self.summary.setText(
            f"{len(self.overlays)} segmentation(s) in the open studies; "
            f"{len(mine)} report(s) of this study"
            + (f" ({others} of other studies not shown)" if others else "")
            + (f"; {len(self.problems)} unreadable" if self.problems else "")
        )
        blocks = []
        for r in mine:
            head = f"{r.title} ({r.template})" if r.template else r.title
            if r.contributing:
                head += "\n  by: " + "; ".join(r.contributing)
            blocks.append(head + "\n" + "\n".join(r.lines))
        blocks += [f"! {p}" for p in self.problems]
        self.text.setPlainText("\n\n".join(blocks))


def install(window: MainWindow) -> ResultsObjectsPanel:
    """Add the SEG layer to every viewport of the window's grid and the SEG/SR panel as a
    dock."""
    layer = SegOverlayLayer(window.viewport, window.state)
    panel = ResultsObjectsPanel(window.state, window.runner, layer)
    panel.follow_grid(window.grid)
    window.add_panel(panel, Qt.DockWidgetArea.RightDockWidgetArea, "SEG / SR")
    window.seg_panel = panel
    return panel
