"""Tools > Save AI segmentation as DICOM SEG… and Send AI segmentation to PACS.

After a segmentation model ran on the open series (AI panel), the mask of the result shown on
the active viewport is saved as a DICOM SEG that references the source series
(``core.app.seg_exports``: highdicom through ``core.pacs.export.build_seg``; an audited Export
with a profile), or stored on the PACS node chosen in the AI panel's "Export to PACS" row (an
accepted result only, as that export asks). Reading the sources, building and writing happen
in a worker job; the GUI thread only reacts. Once saved, the SEG is read back and drawn over
its slices through the SEG overlay (``desktop.seg_overlay``), so what is on screen is what was
written. Success and failure are said in the status bar naming the file (``message``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu

from desktop.workers import Job, JobContext

if TYPE_CHECKING:
    from core.app.seg_exports import SavedSeg
    from core.app.workstation import Workstation
    from core.imaging.overlays import SegOverlay
    from core.inference.result import InferenceResult
    from core.pacs.client import PacsClient
    from desktop.main_window import MainWindow

SAVE_TEXT = "Save AI segmentation as DICOM SEG…"
SEND_TEXT = "Send AI segmentation to PACS"


def _sources(paths: list[str]) -> list[Any]:
    from core.imaging.sources import read_dataset

    return [read_dataset(p, stop_before_pixels=True) for p in paths]


def save_seg_job(
    ctx: JobContext,
    ws: Workstation | None,
    result: InferenceResult,
    paths: list[str],
    folder: Path,
    model_name: str,
) -> tuple[SavedSeg, SegOverlay | None, str]:
    """Read the source headers, build and write the SEG, read it back for the overlay
    (worker thread). The overlay is None (with the reason) when it cannot be read back."""
    from core.app.seg_exports import save_seg
    from core.imaging.overlays import OverlayError, read_seg

    sources = _sources(paths)
    if ctx.cancelled:
        raise OSError("the SEG export was cancelled before anything was written")
    saved = save_seg(ws, result, sources, folder, model_name=model_name)
    try:
        return saved, read_seg(str(saved.path)), ""
    except OverlayError as exc:
        return saved, None, str(exc)


def send_seg_job(
    ctx: JobContext, client: PacsClient, result: InferenceResult, paths: list[str], name: str
) -> list[str]:
    from core.app.seg_exports import send_seg

    sources = _sources(paths)
    if ctx.cancelled:
        raise OSError("the SEG export was cancelled before anything was sent")
    return send_seg(client, result, sources, model_name=name)


class SegExport(QObject):
    """The two Tools actions; a child of the window (``window.findChild(SegExport)``)."""

    #: Text of the last outcome (also shown in the status bar).
    finished = Signal(str)

    def __init__(self, window: MainWindow, menu: QMenu | None = None) -> None:
        super().__init__(window)
        self.setObjectName("segExport")
        self.window = window
        self.job: Job | None = None
        self.last: SavedSeg | None = None
        self.message = ""
        self.save_action = QAction(SAVE_TEXT, window)
        self.save_action.triggered.connect(self.save_dialog)
        self.send_action = QAction(SEND_TEXT, window)
        self.send_action.triggered.connect(self.send_to_pacs)
        for action in (self.save_action, self.send_action):
            window.addAction(action)
            window.actions_by_name[action.text()] = action
        if menu is not None:
            menu.addSeparator()
            menu.addAction(self.save_action)
            menu.addAction(self.send_action)
            menu.aboutToShow.connect(self.refresh)

    # --- what can be exported --------------------------------------------------------------
    def current(self) -> tuple[InferenceResult, int] | None:
        """The active viewport's result when it carries a mask."""
        panel = getattr(self.window, "ai", None)
        found = panel.current_result() if panel is not None else None
        return found if found is not None and found[0].masks is not None else None

    def why_not(self, *, pacs: bool = False) -> str:
        if self.job is not None and not self.job.done:
            return "A SEG export is running"
        panel = getattr(self.window, "ai", None)
        found = panel.current_result() if panel is not None else None
        if found is None:
            return "No AI result on this image: run a segmentation model on the series first"
        if found[0].masks is None:
            return f"Model '{found[0].provenance.model_id}' gives no segmentation mask"
        if pacs:
            gui = getattr(self.window, "pacs", None)
            if gui is None or gui.export is None or not gui.export.node.count():
                return "No PACS configured"
            if panel is None or panel.current_verdict() != "accepted":
                return "Only an accepted result can be sent: accept it first"
        return ""

    def refresh(self) -> None:
        for action, pacs in ((self.save_action, False), (self.send_action, True)):
            why = self.why_not(pacs=pacs)
            action.setEnabled(not why)
            action.setToolTip(why or action.text())

    def _paths(self, result: InferenceResult) -> list[str] | str:
        """The source file of each input, or the reason they cannot all be found."""
        state = self.window.ai.state
        where = {(r.instance.sop_instance_uid, r.frame): str(r.instance.path) for r in state.slices}
        paths = []
        for ref in result.provenance.inputs:
            path = where.get((ref.sop_instance_uid, ref.frame))
            if path is None:
                return (
                    f"the source image '{ref.sop_instance_uid}' is no longer open; open its "
                    "series again to export"
                )
            paths.append(path)
        return paths

    def _model_name(self, result: InferenceResult) -> str:
        manager = self.window.ai.manager
        try:
            return manager.package(result.provenance.model_id).manifest.name if manager else ""
        except KeyError:
            return ""

    def _say(self, text: str, ms: int = 15_000) -> None:
        self.message = text
        self.window.statusBar().showMessage(text, ms)
        self.finished.emit(text)

    # --- save to a folder ------------------------------------------------------------------
    def save_dialog(self) -> Job | None:
        why = self.why_not()
        if why:
            self._say(why)
            return None
        folder = QFileDialog.getExistingDirectory(
            self.window, "Save the AI segmentation (DICOM SEG) into", self.window.dialog_folder
        )
        return self.save_to(Path(folder)) if folder else None

    def save_to(self, folder: Path) -> Job | None:
        """Save the shown result's mask as a SEG file in ``folder`` (in a job)."""
        why = self.why_not()
        found = self.current()
        if why or found is None or self.window.runner.closed:
            self._say(why or "Nothing to save")
            return None
        result = found[0]
        paths = self._paths(result)
        if isinstance(paths, str):
            self._say(f"Cannot save the SEG: {paths}")
            return None
        self.message = f"Saving the DICOM SEG into '{folder}'…"
        self.window.statusBar().showMessage(self.message)
        self.job = self.window.runner.start(
            "DICOM SEG export",
            save_seg_job,
            self.window.workstation,
            result,
            paths,
            folder,
            self._model_name(result),
            on_result=self._saved,
            on_error=lambda exc: self._failed(exc, f"into '{folder}'"),
            on_finished=lambda _j: self.refresh(),
        )
        self.refresh()
        return self.job

    def _saved(self, value: tuple[SavedSeg, SegOverlay | None, str]) -> None:
        saved, overlay, problem = value
        self.last = saved
        text = (
            f"DICOM SEG saved to '{saved.path}': {saved.frames} frame(s), "
            f"{saved.pixels} '{saved.segment_label}' pixel(s)"
        )
        if overlay is not None:
            self._show(overlay)
        elif problem:
            text += f"; it cannot be shown: {problem}"
        self._say(text)

    def _show(self, overlay: SegOverlay) -> None:
        """Draw the saved mask over its slices with the SEG overlay of every viewport."""
        panel = getattr(self.window, "seg_panel", None)
        if panel is None:
            return
        # what the panel does with SEG objects it read itself: every viewport's layer and its
        # summary line
        panel.add_overlays([overlay])

    def _failed(self, exc: BaseException, where: str) -> None:
        from core.app.seg_exports import SegExportError

        known = isinstance(exc, OSError | SegExportError | ValueError)
        reason = (
            f"{exc.strerror}: '{exc.filename}'"
            if isinstance(exc, OSError) and exc.strerror and exc.filename
            else str(exc)
        )
        kind = "" if known else f" ({type(exc).__name__})"
        self._say(f"Could not save the DICOM SEG {where}{kind}: {reason}")

    # --- send to the PACS ------------------------------------------------------------------
    def send_to_pacs(self) -> Job | None:
        """STOW the SEG to the node chosen in the AI panel's Export to PACS row (in a job)."""
        from core.pacs.errors import PacsError

        why = self.why_not(pacs=True)
        found = self.current()
        if why or found is None or self.window.runner.closed:
            self._say(why or "Nothing to send")
            return None
        result = found[0]
        paths = self._paths(result)
        if isinstance(paths, str):
            self._say(f"Cannot send the SEG: {paths}")
            return None
        gui = self.window.pacs
        export = gui.export if gui is not None else None
        if export is None:
            self._say("No PACS configured")
            return None
        node = export.node.currentText()
        try:
            client = export.client_for(node)
        except (PacsError, ValueError, OSError) as exc:
            self._say(f"Cannot use PACS '{node}': {exc}")
            return None
        self.message = f"Sending the DICOM SEG to '{node}'…"
        self.job = self.window.runner.start(
            "DICOM SEG to PACS",
            send_seg_job,
            client,
            result,
            paths,
            self._model_name(result),
            on_result=lambda stored: self._say(
                f"DICOM SEG stored on PACS '{node}' ({len(stored)} object(s))"
            ),
            on_error=lambda exc: self._say(f"Sending the DICOM SEG to PACS '{node}' failed: {exc}"),
            on_finished=lambda _j: self.refresh(),
        )
        return self.job


def find(window: Any) -> SegExport | None:
    """The window's SEG export (tests, other modules)."""
    found = window.findChild(SegExport, "segExport")
    return found if isinstance(found, SegExport) else None
