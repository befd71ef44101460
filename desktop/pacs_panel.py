"""PACS in the workstation: File > Search PACS… and "Export to PACS" in the AI panel.

Both act as the signed-in user: every QIDO query, WADO retrieve and STOW export goes through
``core.app.pacs_audit`` on the workstation's encrypted trail, naming the user and role
signed in at that moment. The search dialog is ``desktop.pacs_dialog.PacsDialog`` (retrieves into
the size-bounded profile cache and opens the first instance at once). An export builds, for the
accepted result of the image on screen, a TID 1500 Comprehensive 3D SR and, where highdicom can
encode it for that image, a Parametric Map of the heatmap (core.pacs.export), and stores them with
STOW-RS in a background job; "Export" is audited, failures included. A study retrieved through
the search dialog is listed in the study list with the node it came from (``RetrievedFrom``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from core.app.pacs_audit import pacs_audit
from core.config import Settings
from core.pacs.cache import PacsCache
from core.pacs.errors import PacsError
from desktop.pacs_dialog import PacsDialog, client_factory, configured_nodes
from desktop.workers import Job, JobContext

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydicom import Dataset

    from core.app.workstation import Workstation
    from core.imaging.model import StudyIndex
    from core.inference.result import InferenceResult
    from core.pacs.client import PacsClient
    from desktop.main_window import MainWindow


@dataclass(frozen=True)
class ExportOutcome:
    node: str
    study_uid: str
    stored: list[str]
    kinds: list[str]  # Modality of each stored object: SR, and RWV for a Parametric Map
    note: str = ""  # what was left out, and why


def export_job(
    ctx: JobContext,
    client: PacsClient,
    result: InferenceResult,
    index: int,
    source_path: str,
    model_name: str = "",
) -> ExportOutcome:
    """Build SR (+ Parametric Map) for image ``index`` of ``result`` and STOW them (worker)."""
    from core.imaging.sources import read_dataset
    from core.pacs.export import build_heatmap, build_sr, finding_from_result, store_objects

    ds = read_dataset(source_path, stop_before_pixels=False)
    finding = finding_from_result(result, index, model_name=model_name)
    # the export is of the image the radiologist looked at and accepted
    finding = dataclasses.replace(finding, input_sop_uids=[str(ds.SOPInstanceUID)])
    objects: list[Dataset] = [build_sr(finding, [ds])]
    note = ""
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if result.heatmaps is not None and frames == 1:
        try:
            objects.append(build_heatmap(result.heatmaps[index : index + 1], [ds], finding))
        except (ValueError, RuntimeError, AttributeError, TypeError) as exc:
            # highdicom (0.28) cannot encode a Parametric Map over some projection images
            note = f"the heatmap was not exported: no Parametric Map can be built for it ({exc})"
    elif result.heatmaps is not None:
        note = "the heatmap was not exported: its source is a multi-frame image"
    if ctx.cancelled:
        raise PacsError("export cancelled before anything was sent")
    stored = store_objects(client, objects, finding)
    return ExportOutcome(
        client.node.name, str(ds.StudyInstanceUID), stored, [str(o.Modality) for o in objects], note
    )


class PacsExport(QObject):
    """The "Export to PACS" row in the AI panel: enabled for an accepted result only."""

    def __init__(
        self,
        window: Any,
        node_names: list[str],
        client_for: Callable[[str], PacsClient],
        problem: str = "",
    ) -> None:
        super().__init__(window)
        self.window, self.panel = window, window.ai
        self.client_for, self.problem = client_for, problem
        self.job: Job | None = None
        self.last: ExportOutcome | None = None
        self.node = QComboBox()
        self.node.addItems(node_names)
        self.node.setToolTip("The PACS that receives the AI result")
        self.button = QPushButton("Export to PACS")
        self.button.clicked.connect(self.export)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.widget = QWidget()
        self.widget.setObjectName("pacsExport")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.node, 1)
        row.addWidget(self.button)
        col = QVBoxLayout(self.widget)
        col.setContentsMargins(0, 4, 0, 0)
        col.addLayout(row)
        col.addWidget(self.status)
        self.panel.add_result_widget(self.widget)
        self.panel.result_changed.connect(self.refresh)
        self.refresh()

    def _why_not(self) -> str:
        if self.problem or not self.node.count():
            return self.problem or "No PACS configured"
        if self.job is not None and not self.job.done:
            return "Exporting…"
        if self.panel.current_result() is None:
            return "No AI result on this image"
        if self.panel.current_verdict() != "accepted":
            return "Only an accepted result can be exported: accept it first"
        return ""

    def refresh(self) -> None:
        why = self._why_not()
        self.button.setEnabled(not why)
        self.button.setToolTip(why or "Send the result as DICOM SR (and heatmap) to the PACS")

    def _source_path(self, sop_uid: str) -> str | None:
        for ref in self.window.state.slices:
            if ref.instance.sop_instance_uid == sop_uid:
                return str(ref.instance.path)
        return None

    def export(self) -> Job | None:
        why = self._why_not()
        found = self.panel.current_result()
        if why or found is None or self.window.runner.closed:
            self.status.setText(why)
            return None
        result, k = found
        sop = result.provenance.inputs[k].sop_instance_uid
        path = self._source_path(sop)
        node = self.node.currentText()
        if path is None:
            self.status.setText(
                f"The source image '{sop}' is no longer open; open its series again to export"
            )
            return None
        try:
            client = self.client_for(node)
        except (PacsError, ValueError, OSError) as exc:
            self.status.setText(f"Cannot use PACS '{node}': {exc}")
            return None
        manager = self.panel.manager
        name = ""
        if manager is not None:
            try:
                name = manager.package(result.provenance.model_id).manifest.name
            except KeyError:
                name = ""
        self.status.setText(f"Exporting to '{node}'…")
        self.job = self.window.runner.start(
            "PACS export",
            export_job,
            client,
            result,
            k,
            path,
            name,
            on_result=self._done,
            on_error=self._failed,
            on_finished=lambda _j: self.refresh(),
        )
        self.refresh()
        return self.job

    def _done(self, outcome: ExportOutcome) -> None:
        self.last = outcome
        what = " + ".join("Parametric Map" if k == "RWV" else k for k in outcome.kinds)
        text = f"Exported to '{outcome.node}': {what} ({len(outcome.stored)} object(s) stored)"
        if outcome.note:
            text += f"; {outcome.note}"
        self.status.setText(text)
        self.window.statusBar().showMessage(text, 10_000)

    def _failed(self, exc: BaseException) -> None:
        kind = (
            "" if isinstance(exc, PacsError | ValueError | OSError) else f" ({type(exc).__name__})"
        )
        text = f"Export to PACS '{self.node.currentText()}' failed{kind}: {exc}"
        self.status.setText(text)
        self.window.statusBar().showMessage(text, 15_000)


def record_retrieved_job(
    ctx: JobContext, ws: Workstation, index: StudyIndex, study_uid: str, node: str
) -> None:
    """Record the retrieved study in the study database (its headers read: audited as access,
    as a retrieved prior is) and name the node it came from."""
    from core.app.access import index_read
    from core.app.studies import mark_retrieved

    index_read(ws, index, action="retrieve", node=node)
    mark_retrieved(ws, study_uid, node)


class RetrievedFrom(QObject):
    """Remembers which node each study retrieved through the search dialog came from, and
    records it once the study's index is known (the study list's Source column)."""

    def __init__(self, window: MainWindow, ws: Workstation, panel: Any) -> None:
        super().__init__(window)
        self.window_, self.ws, self.panel = window, ws, panel
        self.pending: dict[str, str] = {}  # study uid -> node name
        self.jobs: list[Job] = []
        self._seen: object = None  # the retrieve job whose node is noted
        opener: Callable[[list[str]], None] = panel.open_paths

        def open_paths(paths: list[str]) -> None:
            self._note(panel.retrieve)
            opener(paths)

        panel.open_paths = open_paths
        window.controller.index_loaded.connect(self._on_index)

    def _note(self, job: object) -> None:
        if job is None or job is self._seen:
            return
        self._seen = job
        item = self.panel.results.currentItem()
        data = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        node = self.panel.node.currentText()
        if isinstance(data, tuple) and data and data[0] and node:
            self.pending[str(data[0])] = node

    def _on_index(self, index: StudyIndex) -> None:
        for _p, study, _s in index.iter_series():
            node = self.pending.pop(study.study_instance_uid, None)
            if node is None or self.window_.runner.closed:
                continue
            job = self.window_.runner.start(
                "record retrieved study", record_retrieved_job, self.ws, index,
                study.study_instance_uid, node,
                on_result=self._recorded,
                on_finished=lambda j: self.jobs.remove(j) if j in self.jobs else None,
            )  # fmt: skip
            self.jobs.append(job)

    def _recorded(self, _result: object) -> None:
        """The node is stored: the study list shows it now (a listing read before this job
        committed would otherwise keep saying "pacs" until the next refresh)."""
        study_list = getattr(self.window_, "study_list", None)
        if study_list is not None:
            study_list.refresh()


@dataclass
class PacsGui:
    action: QAction
    dialog: PacsDialog
    export: PacsExport | None
    cache: PacsCache
    retrieved_from: RetrievedFrom | None = None

    def show_search(self) -> None:
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        self.dialog.panel.patient_name.setFocus()


def install_pacs(
    window: MainWindow, ws: Workstation, settings: Settings | None, cache: PacsCache | None = None
) -> PacsGui:
    """File > Search PACS… (Ctrl+Shift+P) and the AI panel's Export to PACS, as ``ws``'s user.

    With no ``[[pacs]]`` node configured both still appear and say what to configure."""
    nodes, problem = configured_nodes(settings)
    names = [n.name for n in nodes]
    client_for = client_factory(nodes, pacs_audit(ws))
    cache = cache or PacsCache.from_settings(settings)
    dialog = PacsDialog(window, client_for, names, cache)
    dialog.panel.status.setText(problem)
    action = QAction("Search PACS…", window)
    action.setShortcut(QKeySequence("Ctrl+Shift+P"))
    if window.menus is not None:  # after the Open entries, before the first separator
        file_menu = window.menus.file
        before = next((a for a in file_menu.actions() if a.isSeparator()), window.menus.quit)
        file_menu.insertAction(before, action)
    export = PacsExport(window, names, client_for, problem)
    gui = PacsGui(action, dialog, export, cache, RetrievedFrom(window, ws, dialog.panel))
    action.triggered.connect(gui.show_search)
    window.pacs = gui
    return gui
