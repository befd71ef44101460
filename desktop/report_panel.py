"""The report panel: the report of the study in the active viewport (issue 17).

Findings and impression editors with the template of the study's modality (changeable); the
draft saved by itself a moment after typing stops and when the panel leaves the study, in a
job (``core.app.reports.save_draft``); measurements, key images and accepted AI findings
inserted as lines at the cursor; "Draft impression" asks the demonstration report drafter (a
small T5, loaded on first use) in a job and shows its words as a labelled, editable draft;
"Sign…" asks the password (and code) again; a signed report is read-only, takes addenda, and
is exported as DICOM SR + PDF to a folder and/or the configured PACS.

Every use case runs as a job; saves, signing and addenda run one at a time through one queue
(``SerialJobs``), so a signature never overtakes the save of the text it signs. The panel
holds what is on screen; the stored report is the use cases'.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from core.app import reports as app
from core.reports.model import ReportError, ReportState
from core.reports.templates import Template, TemplateError, load_templates, template_for
from core.security.users import Permission
from desktop.report_lines import (
    InsertSources,
    ai_lines_job,
    key_image_lines_job,
    measurement_lines_job,
)
from desktop.report_sources import failure, pacs_client, read_sources, say, study_series
from desktop.sign_dialog import SignDialog
from desktop.workers import JobContext, JobRunner, SerialJobs

if TYPE_CHECKING:
    from core.app.workstation import Workstation
    from core.inference.manager import ModelManager
    from core.reports.items import ImageRef
    from core.reports.store import Exported, StoredReport
    from core.viewer.layout import Layout
    from core.viewer.state import ViewerState

log = logging.getLogger(__name__)

DEMO_STYLE = "background:#7a2e00;color:#fff3e0;font-weight:bold;padding:4px;border-radius:3px;"
SAVE_DELAY_MS = 1_000  # a pause in typing this long saves the draft


@dataclass
class Doc:
    """The report of one study as the panel and its jobs share it. ``lock`` serialises a save
    in a job with the last save at close; ``revision`` is the one stored last (None: none).
    ``unsaved``: the text (findings, impression, template) handed to a save that has not
    finished yet or failed - kept until a save stores it, so a window closing while it waits
    in the queue saves it itself; ``stored_text``: what the last save stored (set under
    ``lock`` by the job, so the close sees a save that finished but was not reported yet)."""

    study_uid: str
    modality: str = ""
    body_part: str = ""
    revision: int | None = None
    state: ReportState = ReportState.NONE
    loaded: bool = False  # the stored report (or the template) is on screen: editable
    closed: bool = False
    unsaved: tuple[str, str, str] | None = None
    stored_text: tuple[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def expected(self) -> int | None:
        """The revision a save expects to replace: the one read or stored last, or "none"
        once the study was read without a report (another window's new draft is a conflict)."""
        if self.revision is not None:
            return self.revision
        return app.NO_REPORT if self.loaded else None


# --- jobs (worker threads) -----------------------------------------------------------------
RECOVERY_FOLDER = "report-recovery"  # beside the profile's database
_RECOVERY_HEAD = "Study Instance UID: "


def recovered_drafts(ws: Workstation, study_uid: str) -> list[Path]:
    """The recovery files kept for ``study_uid`` (drafts the store refused at a close), so
    the panel says they exist when the study is shown again. Reads files: a job."""
    folder = ws.db.path.parent / RECOVERY_FOLDER
    found = []
    for path in sorted(folder.glob("draft-*.txt")) if folder.is_dir() else []:
        try:
            with path.open(encoding="utf-8") as f:
                head = f.readline().rstrip("\n")
        except (OSError, UnicodeDecodeError):
            continue
        if head == _RECOVERY_HEAD + study_uid:
            found.append(path)
    return found


def load_job(
    _ctx: JobContext, ws: Workstation, study_uid: str
) -> tuple[StoredReport | None, dict[str, Template], str, list[Path]]:
    """The stored report, the templates (a bad template file is said, not fatal) and the
    recovery files kept for the study."""
    stored = app.get_report(ws, study_uid)
    kept = recovered_drafts(ws, study_uid)
    try:
        return stored, load_templates(), "", kept
    except TemplateError as exc:
        return stored, {}, str(exc), kept


def save_job(
    _ctx: JobContext, ws: Workstation, doc: Doc, findings: str, impression: str, template: str
) -> StoredReport | None:
    """Save the draft as the revision after the one this panel stored last."""
    with doc.lock:
        if doc.closed:  # the window saved the newest text itself while closing
            return None
        stored = app.save_draft(
            ws,
            doc.study_uid,
            findings=findings,
            impression=impression,
            template_id=template,
            expected_revision=doc.expected,
        )
        doc.revision, doc.state = stored.revision, stored.report.state
        doc.stored_text = (findings, impression)
        return stored


@dataclass(frozen=True)
class SignRequest:
    """What a signature signs and says: the text on screen (findings, impression), its
    template (saved first when nothing is stored yet: an untouched template), and whether the
    impression is a model's unedited draft and its review was confirmed (core's rule)."""

    shown: tuple[str, str]
    template: str = ""
    unedited_model_draft: bool = False
    reviewed: bool = False


def sign_job(
    _ctx: JobContext,
    ws: Workstation,
    doc: Doc,
    password: str,
    code: str | None,
    request: SignRequest,
) -> StoredReport:
    """Sign the stored draft, only if it is the text on screen (``request.shown``): a save
    that failed before it would otherwise sign an older text. Nothing stored yet (a template
    signed untouched: no save was ever due) saves the text on screen as the draft first."""
    with doc.lock:
        current = app.get_report(ws, doc.study_uid)
        if current is None and doc.revision is None:
            findings, impression = request.shown
            current = app.save_draft(
                ws,
                doc.study_uid,
                findings=findings,
                impression=impression,
                template_id=request.template,
                expected_revision=doc.expected,
            )
            doc.revision, doc.state = current.revision, current.report.state
            doc.stored_text = request.shown
        if current is None or (current.report.findings, current.report.impression) != request.shown:
            raise ReportError(
                "the text on screen is not the stored draft (its save failed or is pending): "
                'not signed; wait for "Draft saved" and sign again'
            )
        stored = app.sign_report(
            ws,
            doc.study_uid,
            password,
            code,
            expected_revision=current.revision,
            unedited_model_draft=request.unedited_model_draft,
            reviewed=request.reviewed,
        )
        doc.revision, doc.state = stored.revision, stored.report.state
        return stored


def addendum_job(
    _ctx: JobContext, ws: Workstation, doc: Doc, text: str, password: str, code: str | None
) -> StoredReport:
    with doc.lock:
        stored = app.add_addendum(ws, doc.study_uid, text, password, code)
        doc.revision, doc.state = stored.revision, stored.report.state
        return stored


#: What the drafter's framework imports on first use (models.adapters.transformers_adapter).
FRAMEWORK_MODULES: dict[str, tuple[str, ...]] = {
    "transformers": ("torch", "transformers", "transformers.models.t5.modeling_t5"),
}


def draft_job(
    _ctx: JobContext, ws: Workstation, manager: ModelManager, study_uid: str, findings: str
) -> app.ImpressionDraft:
    """Draft the impression; the first time, the framework is imported and the model loaded
    with the collector paused and libraries preloaded (core.inference.quiet_import), which
    otherwise stall the GUI thread for hundreds of ms through the shared GIL."""
    from core.inference.quiet_import import collector_paused, quiet_import

    if app.DRAFTER in manager.loaded_ids():
        return app.draft_impression(ws, manager, study_uid, findings)
    framework = manager.package(app.DRAFTER).manifest.framework
    with collector_paused():
        quiet_import(FRAMEWORK_MODULES.get(framework, ()))
        return app.draft_impression(ws, manager, study_uid, findings)


def export_job(
    _ctx: JobContext,
    ws: Workstation,
    study_uid: str,
    paths: list[str],
    key_images: list[ImageRef],
    out_dir: Path | None,
    to_pacs: bool,
) -> list[Exported]:
    """The signed report as SR (+ PDF into the folder), to the folder and/or the PACS."""
    client = pacs_client(ws, to_pacs, "the report")
    sources = read_sources(paths)
    keys = [k for k in key_images if k.sop_instance_uid in {str(d.SOPInstanceUID) for d in sources}]
    return app.export_report(
        ws, study_uid, sources, key_images=keys, out_dir=out_dir, client=client
    )


def _summary(done: list[Exported]) -> str:
    kinds = ", ".join(f"{e.kind} → {e.destination}" for e in done)
    return f"Exported {kinds}" if done else "Nothing was exported"


class ReportPanel(QWidget):
    """The report of the active viewport's study. ``study_changed`` carries its UID ("")."""

    study_changed = Signal(str)
    #: the stored report changed (state shown elsewhere, e.g. a study list column)
    report_saved = Signal(str, str)  # study UID, state

    def __init__(
        self,
        ws: Workstation,
        reading: Layout,
        runner: JobRunner,
        manager: Callable[[], ModelManager | None],
        insert_sources: Callable[[str], InsertSources],
        key_images_for_report: Callable[[], list[ImageRef]] = list,
        parent: QWidget | None = None,
    ) -> None:
        """``manager``: the window's model manager once found (None before); ``insert_sources``:
        what the insert jobs need of the open study (built on the GUI thread)."""
        super().__init__(parent)
        self.setObjectName("reportPanel")
        self.setWindowTitle("Report")
        self.ws, self.reading, self.runner = ws, reading, runner
        self.manager_of, self.insert_sources = manager, insert_sources
        self.key_images_for_report = key_images_for_report
        self.serial = SerialJobs(runner, self)
        self.doc: Doc | None = None
        self.unsaved_docs: list[Doc] = []  # docs whose queued or failed save holds text
        self.recovered: list[Path] = []  # recovery files written at close (a refused save)
        self.templates: dict[str, Template] = {}
        self.template_text: tuple[str, str] = ("", "")  # the template's text as first shown
        self.model_draft = ""  # the impression as the drafter gave it (until edited)
        self.model_notice = ""  # what the drafter's manifest says of it (a demonstration model)
        self.dirty = False
        self._loading = False  # text set by the panel, not typed
        self._save_pending = False
        self.draft_job_running = False
        self.last_export: list[Exported] = []
        self.sign_dialog: SignDialog | None = None
        self._last_editor: QPlainTextEdit | None = None
        self._build()
        self._save_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_now)
        self._follow = QTimer(self, singleShot=True, interval=0)  # coalesce viewer events
        self._follow.timeout.connect(self.follow_active)
        reading.active_changed.connect(self._schedule_follow)
        reading.cell_changed.connect(self._schedule_follow)
        reading.grid_changed.connect(self._schedule_follow)
        self._watched: weakref.WeakSet[ViewerState] = weakref.WeakSet()  # not ids: reused
        self._watch_cells()
        self._update_buttons()

    # --- building ------------------------------------------------------------------------
    def _build(self) -> None:
        self.title = QLabel("No study on screen")
        self.title.setObjectName("reportTitle")
        self.template = QComboBox()
        self.template.setObjectName("reportTemplate")
        self.template.setToolTip("Report template (chosen by the study's modality)")
        self.template.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.template.activated.connect(self._template_chosen)
        self.findings = QPlainTextEdit()
        self.findings.setObjectName("reportFindings")
        self.findings.setPlaceholderText("Findings")
        self.impression = QPlainTextEdit()
        self.impression.setObjectName("reportImpression")
        self.impression.setPlaceholderText("Impression")
        self.draft_notice = QLabel("")
        self.draft_notice.setObjectName("draftNotice")
        self.draft_notice.setWordWrap(True)
        self.draft_notice.setStyleSheet(DEMO_STYLE)
        self.draft_notice.hide()
        self.addenda = QLabel("")
        self.addenda.setObjectName("reportAddenda")
        self.addenda.setWordWrap(True)
        self.addenda.hide()
        self.status = QLabel("")
        self.status.setObjectName("reportStatus")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: the drafter reports no steps
        self.progress.setMaximumHeight(10)
        self.progress.setTextVisible(False)
        self.progress.hide()
        for editor in (self.findings, self.impression):
            editor.textChanged.connect(self._typed)
            editor.installEventFilter(self)

        def button(text: str, slot: Callable[[], object], tip: str) -> QPushButton:
            b = QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(lambda _c=False: slot())
            return b

        self.insert_measurements = button(
            "Measurements", self.insert_measurement_lines, "Insert the study's measurements"
        )
        self.insert_keys = button(
            "Key images", self.insert_key_image_lines, "Insert the study's key images"
        )
        self.insert_ai = button("AI findings", self.insert_ai_lines, "Insert accepted AI findings")
        self.draft_button = button(
            "Draft impression",
            self.draft_impression,
            "Draft the impression from the findings with the demonstration report drafter",
        )
        self.sign_button = button("Sign…", self.open_sign_dialog, "Sign the report (password)")
        self.addendum_button = button(
            "Addendum…", self.open_addendum_dialog, "Add a signed addendum to the signed report"
        )
        self.export_button = button(
            "Export…", self.export_dialog, "Export the signed report as DICOM SR and PDF"
        )
        self.to_pacs = QCheckBox("Also send to PACS")
        self.to_pacs.setObjectName("reportToPacs")
        self.reload_button = button(
            "Reload", self.reload, "Show the stored report (the text typed since is dropped)"
        )
        self.reload_button.hide()
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.template)
        top.addWidget(self.reload_button)
        inserts = QHBoxLayout()
        inserts.addWidget(QLabel("Insert:"))
        for b in (self.insert_measurements, self.insert_keys, self.insert_ai):
            inserts.addWidget(b)
        inserts.addStretch(1)
        # two rows, so that the dock can stay narrow beside the image
        actions = QVBoxLayout()
        groups: tuple[tuple[QWidget, ...], ...] = (
            (self.draft_button, self.sign_button, self.addendum_button),
            (self.export_button, self.to_pacs),
        )
        for group in groups:
            row = QHBoxLayout()
            for w in group:
                row.addWidget(w)
            row.addStretch(1)
            actions.addLayout(row)
        self.title.setMinimumWidth(60)  # elided by the layout rather than widening the dock
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        col = QVBoxLayout(self)
        col.setContentsMargins(4, 4, 4, 4)
        col.addLayout(top)
        col.addWidget(QLabel("Findings"))
        col.addWidget(self.findings, 3)
        col.addLayout(inserts)
        col.addWidget(QLabel("Impression"))
        col.addWidget(self.draft_notice)
        col.addWidget(self.impression, 2)
        col.addWidget(self.addenda)
        col.addWidget(self.progress)
        col.addLayout(actions)
        col.addWidget(self.status)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusIn and isinstance(obj, QPlainTextEdit):
            self._last_editor = obj  # inserts go where the radiologist was writing
        return False

    # --- following the active viewport ----------------------------------------------------
    def _schedule_follow(self, *_: object) -> None:
        self._watch_cells()
        self._follow.start()

    def _watch_cells(self) -> None:
        for cell in self.reading.cells:
            if cell.state not in self._watched:
                self._watched.add(cell.state)
                cell.state.series_changed.connect(self._schedule_follow)

    def _active_study(self) -> tuple[str, str, str]:
        """(study UID, modality, body part) of the active viewport's series, or empties."""
        state: ViewerState = self.reading.active_state
        series = state.series
        if series is None:
            return "", "", ""
        try:
            _patient, study = state.context() or (None, None)
        except KeyError:  # a provisional image whose study is not indexed yet
            return "", "", ""
        if study is None:
            return "", "", ""
        return study.study_instance_uid, series.modality, series.body_part

    def follow_active(self) -> None:
        uid, modality, body_part = self._active_study()
        current = self.doc.study_uid if self.doc is not None else ""
        if uid == current:
            return
        self.leave_study()
        if not uid:
            self._show_empty()
            return
        self._read(Doc(uid, modality, body_part))
        self.study_changed.emit(uid)

    def _read(self, doc: Doc) -> None:
        """Show ``doc``'s stored report (or its template) once read (a job)."""
        self.doc = doc
        self.dirty = False
        self.reload_button.hide()
        self._set_texts("", "")
        self.template.clear()
        self._update_buttons()  # read-only until the stored report is read
        self.title.setText(f"Report · {doc.modality or 'study'} · loading…")
        self._set_message("")
        self.runner.start(
            "Reading the report",
            load_job,
            self.ws,
            doc.study_uid,
            on_result=lambda found: self._loaded(doc, *found),
            on_error=self._failure("The report cannot be read"),
        )

    def reload(self) -> None:
        """Show the stored report again, dropping the text typed since the last save (after
        someone else changed it: that save was refused rather than overwrite theirs)."""
        if self.doc is not None:
            self._save_timer.stop()
            self.model_draft = ""
            self.draft_notice.hide()
            self._read(Doc(self.doc.study_uid, self.doc.modality, self.doc.body_part))

    def leave_study(self) -> None:
        """Save what was typed in the study being left (a job), before showing another."""
        if self.doc is not None and self.dirty and self.doc.state is not ReportState.SIGNED:
            self._save_timer.stop()
            self._queue_save(self.doc)
        self.doc, self.dirty, self.model_draft = None, False, ""
        self.draft_notice.hide()

    def _show_empty(self) -> None:
        self.title.setText("No study on screen")
        self._set_texts("", "")
        self.template.clear()
        self.addenda.hide()
        self._update_buttons()
        self.study_changed.emit("")

    def _loaded(
        self,
        doc: Doc,
        stored: StoredReport | None,
        templates: dict[str, Template],
        problem: str,
        kept: list[Path],
    ) -> None:
        if doc is not self.doc:
            return  # the user moved on while it was read
        self.templates = templates
        self.template.clear()
        for t in templates.values():
            self.template.addItem(t.title, t.id)
        if stored is None:
            chosen = template_for(templates, doc.modality, doc.body_part)
            self.template_text = (chosen.findings, chosen.impression) if chosen else ("", "")
            self._set_texts(*self.template_text)
            self._select_template(chosen.id if chosen else "")
            doc.state = ReportState.NONE
        else:
            report = stored.report
            doc.revision, doc.state = stored.revision, report.state
            self.template_text = ("", "")
            self._set_texts(report.findings, report.impression)
            self._select_template(report.template_id)
            self._show_addenda(stored)
        self.title.setText(f"Report · {doc.modality or 'study'} · {doc.state.value}")
        self._set_message(f"Templates: {problem}" if problem else "")
        if kept:  # a draft refused at an earlier close: not lost, and said where it is
            self._set_message(
                f"A draft of this study was refused when the window closed ({len(kept)}); its "
                f"text is kept in '{kept[-1]}': copy what you need from it.",
                True,
            )
        doc.loaded = True
        self._update_buttons()

    def _select_template(self, template_id: str) -> None:
        i = self.template.findData(template_id)
        self.template.setCurrentIndex(i)

    def _template_chosen(self, index: int) -> None:
        """Another template: its text replaces the editors' only while they hold the previous
        template's untouched text (typed text is never thrown away)."""
        t = self.templates.get(str(self.template.itemData(index)))
        if t is None or self.doc is None:
            return
        untouched = (self.findings.toPlainText(), self.impression.toPlainText()) == (
            self.template_text
        )
        if untouched:
            self.template_text = (t.findings, t.impression)
            self._set_texts(t.findings, t.impression)
        else:
            self._set_message(f"Template '{t.title}' chosen; your text is kept as it is.")
        self._typed()

    def _set_texts(self, findings: str, impression: str) -> None:
        self._loading = True
        try:
            self.findings.setPlainText(findings)
            self.impression.setPlainText(impression)
        finally:
            self._loading = False

    def _show_addenda(self, stored: StoredReport) -> None:
        parts = stored.report.addenda
        self.addenda.setText(
            "\n".join(
                f"Addendum by {a.author}, {a.signed_at:%Y-%m-%d %H:%M} UTC: {a.text}" for a in parts
            )
        )
        self.addenda.setVisible(bool(parts))

    # --- saving ---------------------------------------------------------------------------
    def _typed(self) -> None:
        if self._loading or self.doc is None or not self._may_write():
            return
        if self.doc.state is ReportState.SIGNED:
            return
        self.dirty = True
        if self.model_draft and self.impression.toPlainText().strip() != self.model_draft:
            self._show_notice(edited=True)
        self._save_timer.start()

    def save_now(self) -> None:
        """Save the draft of the study on screen now (a job); later edits save again after."""
        if self.doc is None or not self.dirty:
            return
        self._save_timer.stop()
        self._queue_save(self.doc)

    def _queue_save(self, doc: Doc) -> None:
        findings, impression = self.findings.toPlainText(), self.impression.toPlainText()
        template = str(self.template.currentData() or "")
        self.dirty = False
        doc.unsaved = (findings, impression, template)  # until a save stores it
        if doc not in self.unsaved_docs:
            self.unsaved_docs.append(doc)
        if doc is self.doc:
            self._set_message("Saving…")
        self.serial.submit(
            "Saving the report draft",
            save_job,
            self.ws,
            doc,
            findings,
            impression,
            template,
            on_result=lambda stored: self._saved(doc, stored),
            on_error=lambda exc: self._save_failed(doc, exc),
        )

    def _saved(self, doc: Doc, stored: StoredReport | None) -> None:
        if stored is None:
            return
        if doc.unsaved is not None and doc.unsaved[:2] == doc.stored_text:
            doc.unsaved = None  # the newest text handed over is stored (a later one waits)
            if doc in self.unsaved_docs:
                self.unsaved_docs.remove(doc)
        self.report_saved.emit(doc.study_uid, stored.report.state.value)
        if doc is self.doc:
            self.title.setText(f"Report · {doc.modality or 'study'} · {doc.state.value}")
            if not self.dirty:
                self._set_message(
                    f"Draft saved {datetime.now():%H:%M:%S} (revision {stored.revision})"
                )
            self._update_buttons()

    def _save_failed(self, doc: Doc, exc: BaseException) -> None:
        # doc.unsaved stays: the close saves it (or keeps it in a recovery file)
        if doc is not self.doc:
            self._set_message(f"The draft of the study left was not saved: {exc}", True)
            return
        self.dirty = True  # kept for the next try
        self._set_message(f"The draft was not saved: {exc}", True)
        if isinstance(exc, app.ReportConflict):
            self.reload_button.show()

    def save_on_close(self) -> list[Path]:
        """The window is closing: save every draft whose text is not stored yet - the one on
        screen and those of studies left whose save still waits in the queue (the queue stops
        with the window) or failed - waiting for a save in flight (the window is going away,
        so there is no GUI left to keep responsive).

        Each save names the revision this panel read (``expected_revision``): another
        writer's newer draft is not overwritten, and a report signed elsewhere is not
        changed. The refused text is then not dropped either: it goes to a recovery file in
        the profile's folder (private to the user, like the profile), named in the log
        without patient data, because at close there is no one left to ask whether to save
        it as the next draft. Returns the recovery files written."""
        docs = list(self.unsaved_docs)
        doc = self.doc
        if doc is not None and self.dirty and doc.state is not ReportState.SIGNED:
            doc.unsaved = (
                self.findings.toPlainText(),
                self.impression.toPlainText(),
                str(self.template.currentData() or ""),
            )
            if doc not in docs:
                docs.append(doc)
        written: list[Path] = []
        for d in docs:
            with d.lock:
                d.closed = True
                if d.unsaved is None or d.unsaved[:2] == d.stored_text:
                    continue  # stored by a save that finished as the window closed
                findings, impression, template = d.unsaved
                try:
                    stored = app.save_draft(
                        self.ws,
                        d.study_uid,
                        findings=findings,
                        impression=impression,
                        template_id=template,
                        expected_revision=d.expected,
                    )
                except Exception as exc:  # noqa: BLE001 - any refusal: the text goes to a file
                    written.append(self._recover(d, exc))
                    continue
                d.revision, d.stored_text, d.unsaved = stored.revision, (findings, impression), None
        self.dirty = False
        self.unsaved_docs.clear()
        self.recovered += written
        return written

    def _recover(self, doc: Doc, exc: BaseException) -> Path:
        """Keep a draft the store refused at close in a file of the profile's folder."""
        assert doc.unsaved is not None
        findings, impression, template = doc.unsaved
        folder = self.ws.db.path.parent / RECOVERY_FOLDER
        folder.mkdir(exist_ok=True)
        path = folder / f"draft-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}-{id(doc):x}.txt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(
                f"{_RECOVERY_HEAD}{doc.study_uid}\nTemplate: {template}\n"
                f"Not saved because: {exc}\n\nFindings:\n{findings}\n\nImpression:\n{impression}\n"
            )
        log.warning(
            "a report draft was refused by the store at close (%s); its text is kept in '%s'",
            type(exc).__name__,
            path,
        )
        return path

    # --- inserting lines ------------------------------------------------------------------
    def _insert_with(self, name: str, job: Callable[..., list[str]], what: str) -> None:
        if self.doc is None or not self.doc.loaded or self.doc.state is ReportState.SIGNED:
            return
        sources = self.insert_sources(self.doc.study_uid)
        doc = self.doc

        def insert(lines: list[str]) -> None:
            if doc is not self.doc or doc.state is ReportState.SIGNED:
                return
            if not lines:
                self._set_message(f"No {what} in this study")
                return
            self.insert_lines(lines)
            self._set_message(f"Inserted {len(lines)} line(s): {what}")

        self.runner.start(
            name,
            job,
            self.ws,
            sources,
            on_result=insert,
            on_error=self._failure(f"Cannot insert the {what}"),
        )

    def insert_lines(self, lines: list[str]) -> None:
        """The lines at the cursor of the editor last written in (the findings by default)."""
        editor = self._last_editor or self.findings
        cursor = editor.textCursor()
        before = editor.toPlainText()[: cursor.position()]
        lead = "\n" if before and not before.endswith("\n") else ""
        cursor.insertText(lead + "\n".join(lines) + "\n")
        editor.setTextCursor(cursor)

    def insert_measurement_lines(self) -> None:
        self._insert_with("Listing measurements", measurement_lines_job, "measurements")

    def insert_key_image_lines(self) -> None:
        self._insert_with("Listing key images", key_image_lines_job, "key images")

    def insert_ai_lines(self) -> None:
        self._insert_with("Listing accepted AI findings", ai_lines_job, "accepted AI findings")

    # --- the drafter ----------------------------------------------------------------------
    def draft_impression(self) -> bool:
        """Ask the demonstration drafter for an impression of the findings (a job)."""
        if self.doc is None or not self.doc.loaded or self.draft_job_running:
            return False
        manager = self.manager_of()
        findings = self.findings.toPlainText()
        if manager is None:
            return self._set_message("The models are still being found; try again shortly.", True)
        if not findings.strip():
            return self._set_message(
                "Write the findings first: the impression is drafted from them.", True
            )
        self.draft_job_running = True
        self.progress.show()
        self._set_message("Drafting the impression (the drafter loads on first use)…")
        self._update_buttons()
        doc = self.doc

        def done(draft: app.ImpressionDraft) -> None:
            if doc is not self.doc or doc.state is ReportState.SIGNED:
                return
            self.model_draft = draft.text
            cursor = self.impression.textCursor()  # one undoable step: Ctrl+Z brings back the old
            cursor.select(cursor.SelectionType.Document)
            cursor.insertText(draft.text)
            self.model_notice = draft.notice
            self._show_notice(edited=False)
            self._set_message("Impression drafted: review and edit it before signing.")

        def finished(_job: object) -> None:
            self.draft_job_running = False
            self.progress.hide()
            self._update_buttons()

        self.runner.start(
            "Drafting the impression",
            draft_job,
            self.ws,
            manager,
            doc.study_uid,
            findings,
            on_result=done,
            on_error=self._failure("The impression was not drafted"),
            on_finished=finished,
        )
        return True

    def _show_notice(self, *, edited: bool) -> None:
        state = "DRAFT, edited by you" if edited else "DRAFT"
        self.draft_notice.setText(f"{state} · {self.model_notice}")
        self.draft_notice.show()

    # --- signing, addenda -----------------------------------------------------------------
    def open_sign_dialog(self) -> SignDialog | None:
        """The password dialog (shown, not blocking); it signs through ``_submit_sign``."""
        if self.doc is None or not self.doc.loaded or self.doc.state is ReportState.SIGNED:
            return None
        self.save_now()  # queued before the signature: what is signed is what is shown
        notice = self.draft_notice.text() if self._unedited_model_draft() else ""
        doc = self.doc  # the dialog signs this study's report, whatever is active at OK

        def submit(*args: Any) -> None:
            self._submit_sign(doc, *args)

        self.sign_dialog = SignDialog(submit, unreviewed_draft=notice, parent=self)
        self.sign_dialog.accepted.connect(lambda: self._after_sign(self.sign_dialog))
        self.sign_dialog.open()
        return self.sign_dialog

    def _unedited_model_draft(self) -> bool:
        return bool(self.model_draft) and (
            self.impression.toPlainText().strip() == self.model_draft
        )

    def open_addendum_dialog(self) -> SignDialog | None:
        if self.doc is None or self.doc.state is not ReportState.SIGNED:
            return None
        doc = self.doc

        def submit(*args: Any) -> None:
            self._submit_addendum(doc, *args)

        self.sign_dialog = SignDialog(submit, addendum=True, parent=self)
        self.sign_dialog.accepted.connect(lambda: self._after_sign(self.sign_dialog))
        self.sign_dialog.open()
        return self.sign_dialog

    def _moved_on(self, doc: Doc | None) -> ReportError | None:
        """The refusal when the study on screen is no longer the one the dialog was opened
        for (the panel follows the active viewport while the dialog is open)."""
        if doc is not None and doc is self.doc:
            return None
        return ReportError(
            "another study is on screen since the dialog opened: nothing was signed; "
            "show that study again and sign it from there"
        )

    def _dialog_doc(
        self, doc: Doc | None, on_failed: Callable[[BaseException], None]
    ) -> Doc | None:
        """The study the dialog was opened for, if it is still on screen; else the refusal is
        told to the dialog and None returned."""
        refused = self._moved_on(doc)
        if refused is not None or doc is None:
            on_failed(refused or RuntimeError("no study on screen"))
            return None
        return doc

    def _submit_sign(
        self,
        doc: Doc | None,
        password: str,
        code: str | None,
        _text: str | None,
        reviewed: bool,
        on_done: Callable[[object], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        if (doc := self._dialog_doc(doc, on_failed)) is None:
            return
        request = SignRequest(
            self._shown(),
            str(self.template.currentData() or ""),
            self._unedited_model_draft(),
            reviewed,
        )
        self.serial.submit(
            "Signing the report", sign_job, self.ws, doc, password, code, request,
            on_result=on_done, on_error=on_failed,
        )  # fmt: skip

    def _submit_addendum(
        self,
        doc: Doc | None,
        password: str,
        code: str | None,
        text: str | None,
        _reviewed: bool,
        on_done: Callable[[object], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        if (doc := self._dialog_doc(doc, on_failed)) is None:
            return
        if not text:
            on_failed(ReportError("the addendum is empty"))
            return
        self.serial.submit(
            "Adding an addendum", addendum_job, self.ws, doc, text, password, code,
            on_result=on_done, on_error=on_failed,
        )  # fmt: skip

    def _shown(self) -> tuple[str, str]:
        return self.findings.toPlainText(), self.impression.toPlainText()

    def _after_sign(self, dialog: SignDialog | None) -> None:
        stored: Any = dialog.signed if dialog is not None else None
        if stored is None or self.doc is None or stored.report.study_uid != self.doc.study_uid:
            return
        self.dirty = False
        self._save_timer.stop()
        self.model_draft = ""
        self.draft_notice.hide()
        self._set_texts(stored.report.findings, stored.report.impression)
        self._show_addenda(stored)
        self.title.setText(f"Report · {self.doc.modality or 'study'} · signed")
        when = stored.report.signed_at
        self._set_message(
            f"Signed by {stored.report.signer} at {when:%Y-%m-%d %H:%M} UTC. Export it with "
            "Export…; only an addendum can change it now."
        )
        self.report_saved.emit(self.doc.study_uid, stored.report.state.value)
        self._update_buttons()

    # --- export ---------------------------------------------------------------------------
    def export_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the signed report (SR and PDF) to")
        if folder or self.to_pacs.isChecked():
            self.export(Path(folder) if folder else None, self.to_pacs.isChecked())

    def export(self, out_dir: Path | None, to_pacs: bool = False) -> bool:
        """Export the signed report of the study on screen (a job); the outcome is shown."""
        doc = self.doc
        if doc is None or doc.state is not ReportState.SIGNED:
            return self._set_message("Only a signed report is exported: sign it first.", True)
        if out_dir is None and not to_pacs:
            return self._set_message("Choose a folder or the PACS to export to.", True)
        index = self.reading.active_state.index
        paths = [
            inst.path
            for series in study_series(index, doc.study_uid)
            for inst in series.instances
            if inst.has_pixels and not inst.is_plain_image
        ]
        if not paths:
            return self._set_message("The study's images are not open: open them to export.", True)
        self._set_message("Exporting…")

        def done(found: list[Exported]) -> None:
            self.last_export = found
            self._set_message(_summary(found))

        self.runner.start(
            "Exporting the report",
            export_job,
            self.ws,
            doc.study_uid,
            paths,
            self.key_images_for_report(),
            out_dir,
            to_pacs,
            on_result=done,
            on_error=self._failure("The report was not exported"),
        )
        return True

    # --- state of the controls ------------------------------------------------------------
    def _may_write(self) -> bool:
        user = self.ws.session.user
        return user is not None and user.can(Permission.DECIDE)

    def _update_buttons(self) -> None:
        doc = self.doc
        signed = doc is not None and doc.state is ReportState.SIGNED
        open_ = doc is not None and doc.loaded and not signed and self._may_write()
        user = self.ws.session.user
        may_ai = user is not None and user.can(Permission.RUN_AI)
        for editor in (self.findings, self.impression):
            editor.setReadOnly(not open_)
        self.template.setEnabled(open_)
        for b in (self.insert_measurements, self.insert_keys, self.insert_ai, self.sign_button):
            b.setEnabled(open_)
        self.draft_button.setEnabled(open_ and may_ai and not self.draft_job_running)
        self.addendum_button.setEnabled(signed and self._may_write())
        self.export_button.setEnabled(signed and self._may_write())
        self.to_pacs.setEnabled(signed)

    def _failure(self, prefix: str) -> Callable[[BaseException], None]:
        return failure(self.status, prefix)

    def _set_message(self, text: str, refused: bool = False) -> bool:
        return say(self.status, text, refused)
