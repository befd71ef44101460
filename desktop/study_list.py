"""The study list: every study opened or retrieved on this workstation (the local study
database), searchable, and the priors of the study on screen.

A view over core.app.studies: every read and write is a ``JobRunner`` job (SQL never runs on the
GUI thread) and every list shown is an audited Query. "Recent" (the studies opened last) is the
default view; typing searches name, Patient ID and accession; a click on a column header sorts
by it (dates by their value); double-click (or Enter) opens a study through the window's own open
path. "Forget" removes the selected study from the local database after a confirmation (its
files stay; audited by ``core.app.studies.forget_study``). The Source column names the PACS node
a study was retrieved from. The Report column says each study's report state (none, draft,
signed): read with the list in its job, and changed when the report panel saves or signs
(``follow_reports``); it sorts by that order, not alphabetically. The priors list under it is
asked for whenever a series of another study comes on screen: the local database and each
configured PACS node (QIDO-RS), matched by Patient ID and issuer; a node's answer is reused
for that patient for ``[viewer] priors_cache_s`` (``RemotePriorsCache``), "Refresh" asks
again. A prior here opens at once; one only on a PACS is retrieved in the background into the
encrypted cache, recorded, then opened on request.

With hide-PHI on, names, IDs, accession numbers and dates are blanked, as in the study browser.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QPoint, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.app.reports import report_states
from core.app.studies import (
    PriorsFound,
    find_priors,
    forget_study,
    last_folder,
    list_studies,
    mark_retrieved,
    pacs_searchers,
    remember_folder,
    study_paths,
)
from core.imaging.model import Patient, Series, Study
from core.studies.catalogue import StudyEntry, StudySearch
from core.studies.priors import PatientKey, Prior, RemotePriorsCache
from core.viewer.overlay import format_dicom_date
from desktop.workers import Job, JobContext

if TYPE_CHECKING:
    from core.app.workstation import Workstation
    from core.imaging.model import StudyIndex
    from desktop.main_window import MainWindow
    from desktop.report_gui import ReportsGui

UID_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # what a column sorts by, when not its text
COLUMNS = ("Name", "Patient ID", "Accession", "Date", "Modality", "Description", "Source",
           "Report", "Last opened")  # fmt: skip
REPORT_COLUMN = COLUMNS.index("Report")
#: the report column sorts in the order a read goes, not alphabetically ("draft" < "none")
REPORT_ORDER = {"none": "0", "draft": "1", "signed": "2"}
PRIOR_COLUMNS = ("Date", "Modality", "Description", "Images", "Source")
SEARCH_DELAY_MS = 300


# --- jobs (worker threads) ------------------------------------------------------------------
def list_job(
    ctx: JobContext, ws: Workstation, query: StudySearch
) -> tuple[list[StudyEntry], dict[str, str]]:
    """The studies and their report states, both read here (never on the GUI thread)."""
    entries = list_studies(ws, query)
    states = report_states(ws, [e.study_uid for e in entries])
    return entries, {uid: state.value for uid, state in states.items()}


def paths_job(ctx: JobContext, ws: Workstation, study_uid: str) -> list[str]:
    return study_paths(ws, study_uid)


def priors_job(
    ctx: JobContext,
    ws: Workstation,
    patient: Patient,
    study: Study,
    with_pacs: bool,
    cache: RemotePriorsCache | None = None,
    refresh: bool = False,
) -> PriorsFound:
    """The key from the study's own header (the issuer is not in the index), then local and
    PACS priors (``cache``: PACS answers reused; ``refresh``: this patient's dropped first); a
    PACS configuration problem is reported with the local priors."""
    from core.config import ConfigError
    from core.pacs.errors import PacsError
    from core.studies.catalogue import issuer_of
    from desktop.pacs_dialog import current_settings

    key = PatientKey.of(patient.patient_id, issuer_of(study))
    if refresh and cache is not None:
        cache.forget(key)
    problems: list[str] = []
    clients: list[Any] = []
    if with_pacs:
        try:
            clients, problems = pacs_searchers(ws, current_settings())
        except (ConfigError, PacsError) as exc:
            problems.append(str(exc))
    found = find_priors(
        ws, study.study_instance_uid, clients, key, lambda: ctx.cancelled, cache=cache
    )
    found.problems[:0] = problems
    return found


def retrieve_prior_job(
    ctx: JobContext, ws: Workstation, node: str, study_uid: str, cache: Any
) -> int:
    """Retrieve a prior from ``node`` into the cache (each step audited by the PACS layer),
    then record it in the study database under that node. Returns the instances retrieved."""
    from core.app.access import index_read
    from core.imaging.index import build_index
    from core.pacs.errors import PacsError
    from core.pacs.retrieve import retrieve_study
    from desktop.pacs_dialog import current_settings

    clients, problems = pacs_searchers(ws, current_settings(), [node])
    if not clients:
        raise PacsError("; ".join(problems) or f"PACS '{node}' cannot be used")
    client = clients[0]
    results = retrieve_study(client, cache, study_uid, cancel=ctx.cancel_event)  # type: ignore[arg-type]
    paths = [str(p) for r in results for p in r.paths]
    if ctx.cancelled or not paths:
        return 0
    index_read(ws, build_index(paths), action="retrieve-prior", node=node)
    mark_retrieved(ws, study_uid, node)
    return len(paths)


def start_retrieve(
    window: MainWindow,
    ws: Workstation,
    node: str,
    study_uid: str,
    cache: Any,
    on_result: Callable[[int], None],
    on_error: Callable[[BaseException], None],
) -> Job:
    """Retrieve a prior in a job, once at a time per study: a second ask while it runs (the
    study list's Retrieve while hanging on open fetches the same prior) waits for the same job
    rather than writing the same files into the cache beside it."""
    running = window.prior_retrievals.get(study_uid)
    if running is not None and not running.done and not running.cancelled:

        def guarded(callback: Callable[[Any], None]) -> Callable[[Any], None]:
            def call(value: Any) -> None:
                if not window.runner.closed and not running.cancelled:
                    callback(value)

            return call

        running.signals.result.connect(guarded(on_result))
        running.signals.error.connect(guarded(on_error))
        return running

    def finished(job: Job) -> None:
        if window.prior_retrievals.get(study_uid) is job:
            del window.prior_retrievals[study_uid]

    job = window.runner.start(
        "retrieve prior", retrieve_prior_job, ws, node, study_uid, cache,
        on_result=on_result, on_error=on_error, on_finished=finished,
    )  # fmt: skip
    window.prior_retrievals[study_uid] = job
    return job


def hang_job(ctx: JobContext, ws: Workstation, study_uids: Sequence[str]) -> StudyIndex:
    """Index the files of local priors (their headers read: audited as access) so that the
    hanging protocol finds them among the open studies."""
    from core.app.access import index_read
    from core.imaging.index import build_index

    paths = [p for uid in study_uids for p in study_paths(ws, uid)]
    index = build_index(paths, cancel=ctx.cancel_event)
    index_read(ws, index, action="hang-priors")
    return index


def forget_job(ctx: JobContext, ws: Workstation, study_uid: str) -> StudyEntry:
    return forget_study(ws, study_uid)


def folder_job(ctx: JobContext, ws: Workstation, folder: str | None) -> str:
    if folder is not None:
        remember_folder(ws, folder)
        return folder
    return last_folder(ws)


def refresh_job(ctx: JobContext, ws: Workstation, index: StudyIndex) -> int:
    from core.app.access import refresh_studies

    return refresh_studies(ws, index)


# --- the panel --------------------------------------------------------------------------------
class _Item(QTableWidgetItem):
    """A cell that sorts by its SORT_ROLE value when it has one (dates: YYYYMMDD, not the
    displayed text), else by its text, case-insensitively."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if mine is None or theirs is None:
            return self.text().casefold() < other.text().casefold()
        return str(mine) < str(theirs)


def _item(text: str, uid: str = "", sort: str | None = None) -> QTableWidgetItem:
    item = _Item(text)
    item.setToolTip(text)
    if uid:
        item.setData(UID_ROLE, uid)
    if sort is not None:
        item.setData(SORT_ROLE, sort)
    return item


def _table(headers: Sequence[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setWordWrap(False)
    table.setAlternatingRowColors(True)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)
    return table


class StudyListPanel(QWidget):
    """Search box, the study table, and the priors of the current study."""

    def __init__(self, window: MainWindow, ws: Workstation) -> None:
        super().__init__()
        self.setObjectName("studyList")
        self.window_, self.ws = window, ws
        self.entries: list[StudyEntry] = []
        self.report_states: dict[str, str] = {}  # study UID -> none / draft / signed
        self._told: dict[str, str] = {}  # states the report panel told since the listing began
        self.priors: list[Prior] = []
        self.priors_for = ""  # the study whose priors are listed (or being asked for)
        self.list_job: Job | None = None
        self.priors_job: Job | None = None
        self.retrieve_jobs: list[Job] = []
        self.with_pacs = True
        self._pending_recent = False
        self.folders: DialogFolders | None = None
        self._opening: tuple[str, Job] | None = None
        self._found: PriorsFound | None = None
        self.dock: QDockWidget | None = None

        self.search = QLineEdit(placeholderText="Search name, Patient ID or accession")
        self.search.setClearButtonEnabled(True)
        self.recent_button = QPushButton("Recent")
        self.recent_button.setToolTip("The studies opened last on this workstation")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.table = _table(COLUMNS)
        self.table.setSortingEnabled(True)  # a header click sorts; "Last opened" first
        self.table.horizontalHeader().setSortIndicator(
            COLUMNS.index("Last opened"), Qt.SortOrder.DescendingOrder
        )
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.forget_button = QPushButton("Forget")
        self.forget_button.setToolTip(
            "Forget this study: remove it from this list (its files are kept)"
        )
        self.forget_box: QMessageBox | None = None  # the confirmation on screen
        self.forget_job: Job | None = None
        self.priors_cache: RemotePriorsCache | None = getattr(window, "priors_cache", None)
        self.refresh_priors_button = QPushButton("Refresh")
        self.refresh_priors_button.setToolTip("Ask the PACS nodes for this patient's priors again")
        self.priors_label = QLabel("Priors: open a study")
        self.priors_table = _table(PRIOR_COLUMNS)
        self.open_prior_button = QPushButton("Open")
        self.retrieve_prior_button = QPushButton("Retrieve")
        self.retrieve_prior_button.setToolTip("Retrieve the prior from PACS in the background")
        self.hang_button = QPushButton("Hang with priors")
        self.hang_button.setToolTip(
            "Hang the study on screen by protocol, with the priors that are here"
        )

        row = QHBoxLayout()
        row.addWidget(self.search, 1)
        row.addWidget(self.recent_button)
        row.addWidget(self.forget_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.hang_button)
        buttons.addWidget(self.refresh_priors_button)
        buttons.addStretch(1)
        buttons.addWidget(self.open_prior_button)
        buttons.addWidget(self.retrieve_prior_button)
        col = QVBoxLayout(self)
        col.setContentsMargins(2, 2, 2, 2)
        col.addLayout(row)
        col.addWidget(self.table, 3)
        col.addWidget(self.status)
        col.addWidget(self.priors_label)
        col.addWidget(self.priors_table, 2)
        col.addLayout(buttons)

        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.search.returnPressed.connect(self.refresh)
        self.recent_button.clicked.connect(self.show_recent)
        self.table.itemActivated.connect(lambda item: self.open_row(item.row()))
        self.table.itemDoubleClicked.connect(lambda item: self.open_row(item.row()))
        self.priors_table.itemDoubleClicked.connect(lambda item: self.open_or_retrieve(item.row()))
        self.priors_table.itemSelectionChanged.connect(self._update_prior_buttons)
        self.open_prior_button.clicked.connect(lambda: self.open_or_retrieve(self._prior_row()))
        self.retrieve_prior_button.clicked.connect(lambda: self.retrieve_prior(self._prior_row()))
        self.hang_button.clicked.connect(self.hang_with_priors)
        self.refresh_priors_button.clicked.connect(self.refresh_priors)
        self.forget_button.clicked.connect(lambda: self.ask_forget(self._study_row()))
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.itemSelectionChanged.connect(self._update_forget_button)
        state = window.state
        state.series_changed.connect(self._on_series_changed)
        state.hide_phi_changed.connect(self._on_hide_phi)
        window.controller.index_loaded.connect(self._on_index_loaded)
        self._update_prior_buttons()
        self._update_forget_button()

    # --- the list ------------------------------------------------------------------------
    def query(self) -> StudySearch:
        return StudySearch(text=self.search.text().strip())

    def show_recent(self) -> Job | None:
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        return self.refresh()

    def refresh(self) -> Job | None:
        """List again (recent, or what the search box asks) in a job."""
        self._search_timer.stop()
        if self.window_.runner.closed:
            return None
        if self.list_job is not None and not self.list_job.done:
            self.list_job.cancel()
        query = self.query()
        self._told = {}
        self.status.setText("Searching…" if query.keys() else "Reading the recent studies…")
        self.list_job = self.window_.runner.start(
            "study list", list_job, self.ws, query,
            on_result=self._listed, on_error=self._list_failed,
        )  # fmt: skip
        return self.list_job

    def _listed(self, found: tuple[list[StudyEntry], dict[str, str]]) -> None:
        entries, states = found
        # a save or signature told while the job read is newer than what it read
        self.report_states = {**states, **self._told}
        self._show_entries(entries)

    def _show_entries(self, entries: list[StudyEntry]) -> None:
        self.entries = entries
        hide = self.window_.state.hide_phi
        self.table.setSortingEnabled(False)  # rows stay where they are put while filling
        self.table.setRowCount(0)
        for row, e in enumerate(entries):
            self.table.insertRow(row)
            name = f"Patient {row + 1}" if hide else e.display_name or "(no name)"
            cells = (
                name,
                "" if hide else e.patient_id,
                "" if hide else e.accession,
                "" if hide else format_dicom_date(e.study_date),
                "/".join(e.modalities),
                e.description,
                e.source,
                self.report_states.get(e.study_uid, ""),
                "" if hide else e.last_opened[:16].replace("T", " "),
            )
            sorts = {
                3: "" if hide else e.study_date + e.study_time,
                REPORT_COLUMN: REPORT_ORDER.get(cells[REPORT_COLUMN], ""),
                COLUMNS.index("Last opened"): "" if hide else e.last_opened,
            }
            for col, text in enumerate(cells):
                self.table.setItem(row, col, _item(text, e.study_uid, sorts.get(col)))
        self.table.setSortingEnabled(True)  # sorts by the header's column and order
        self.table.resizeColumnsToContents()
        self._show_count()
        self._update_forget_button()

    def set_report_state(self, study_uid: str, state: str) -> None:
        """The report panel saved or signed ``study_uid``'s report: its row says so at once
        (the table re-sorts itself when sorted by this column)."""
        self.report_states[study_uid] = state
        self._told[study_uid] = state
        for row in range(self.table.rowCount()):
            item = self.table.item(row, REPORT_COLUMN)
            if item is not None and item.data(UID_ROLE) == study_uid:
                item.setData(SORT_ROLE, REPORT_ORDER.get(state, ""))
                item.setText(state)
                item.setToolTip(state)
                return

    def follow_reports(self, reports: ReportsGui | None) -> None:
        """Keep the Report column current with the window's report panel (none: no panel)."""
        if reports is not None:
            reports.panel.report_saved.connect(self.set_report_state)

    def _show_count(self) -> None:
        what = "matching" if self.query().keys() else "opened or retrieved recently"
        n = len(self.entries)
        self.status.setText(f"{n} stud{'y' if n == 1 else 'ies'} {what}")

    def _on_hide_phi(self, _hide: bool) -> None:
        self._show_entries(self.entries)
        if self._found is not None:
            self._show_priors(self._found)

    def _list_failed(self, exc: BaseException) -> None:
        self.status.setText(f"Cannot list studies: {exc}")

    def entry_at(self, row: int) -> StudyEntry | None:
        """The study shown in table row ``row`` (rows follow the sorting, not ``entries``)."""
        item = self.table.item(row, 0) if 0 <= row < self.table.rowCount() else None
        uid = item.data(UID_ROLE) if item is not None else None
        return next((e for e in self.entries if e.study_uid == uid), None)

    def _study_row(self) -> int:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def open_row(self, row: int) -> Job | None:
        """Open the study of ``row`` through the window's open path (its files indexed)."""
        entry = self.entry_at(row)
        if entry is None or self.window_.runner.closed:
            return None
        busy = self._opening
        if busy is not None and not busy[1].done and busy[0] == entry.study_uid:
            return busy[1]  # a double click also activates the row: open it once
        self.status.setText("Opening the study…")
        job = self.window_.runner.start(
            "open study", paths_job, self.ws, entry.study_uid,
            on_result=self._open_paths, on_error=self._open_failed,
        )  # fmt: skip
        self._opening = (entry.study_uid, job)
        return job

    def _open_paths(self, paths: list[str]) -> None:
        self.status.setText(f"Opening {len(paths)} file(s)…")
        self.window_.open_paths(paths)

    def _open_failed(self, exc: BaseException) -> None:
        self.status.setText(str(exc))
        self.window_.statusBar().showMessage(str(exc), 10_000)

    # --- forgetting a study -----------------------------------------------------------------
    def _update_forget_button(self) -> None:
        self.forget_button.setEnabled(self.entry_at(self._study_row()) is not None)

    def _context_menu(self, pos: QPoint) -> None:
        row = self.table.rowAt(pos.y())
        if self.entry_at(row) is None:
            return
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.open_row(row))
        menu.addAction("Forget this study…", lambda: self.ask_forget(row))
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def ask_forget(self, row: int) -> QMessageBox | None:
        """Ask for a confirmation (window-modal, not blocking); Yes forgets the study."""
        entry = self.entry_at(row)
        if entry is None:
            return None
        hide = self.window_.state.hide_phi
        who = "this patient" if hide else (entry.display_name or entry.patient_id or "no name")
        when = "" if hide else f" of {format_dicom_date(entry.study_date)}"
        what = entry.description or "/".join(entry.modalities) or "study"
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Forget this study",
            f"Remove the {what}{when} ({who}) from the study list?\n\n"
            "Its files are not deleted; opening them again lists it again. "
            "The removal is recorded in the audit trail.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        uid = entry.study_uid
        box.finished.connect(
            lambda _r: self._forget_answered(
                uid, box.standardButton(box.clickedButton()) == QMessageBox.StandardButton.Yes
            )
        )
        self.forget_box = box
        box.open()
        return box

    def _forget_answered(self, study_uid: str, yes: bool) -> None:
        self.forget_box = None
        if yes and not self.window_.runner.closed:
            self.status.setText("Forgetting the study…")
            self.forget_job = self.window_.runner.start(
                "forget study", forget_job, self.ws, study_uid,
                on_result=self._forgotten, on_error=self._list_failed,
            )  # fmt: skip

    def _forgotten(self, entry: StudyEntry) -> None:
        self.window_.statusBar().showMessage("The study was removed from the study list", 8000)
        self.refresh()
        ctx = self.window_.state.context()
        if ctx is not None and self.priors_for:  # it may have been listed as a prior
            self.ask_priors(*ctx)

    # --- reactions to the viewer ------------------------------------------------------------
    def _on_series_changed(self, series: Series | None) -> None:
        ctx = self.window_.state.context()
        if series is None or ctx is None:
            return
        patient, study = ctx
        if self.status.text().startswith("Opening"):
            self._show_count()
        if study.study_instance_uid != self.priors_for:
            self._pending_recent = True
            self.ask_priors(patient, study)

    def on_audited(self) -> None:
        """An access event was written: the recent list may have changed."""
        if self._pending_recent and not self.query().keys():
            self._pending_recent = False
            self.refresh()

    def _on_index_loaded(self, index: StudyIndex) -> None:
        if not self.window_.runner.closed:
            self.window_.runner.start(
                "study database refresh", refresh_job, self.ws, index,
                on_error=lambda exc: self.status.setText(f"Study database not updated: {exc}"),
            )  # fmt: skip

    # --- priors ---------------------------------------------------------------------------
    def refresh_priors(self) -> Job | None:
        """Ask again for the priors of the study on screen, the PACS nodes included (their
        cached answers about this patient dropped)."""
        ctx = self.window_.state.context()
        return self.ask_priors(*ctx, refresh=True) if ctx is not None else None

    def ask_priors(self, patient: Patient, study: Study, refresh: bool = False) -> Job | None:
        if self.window_.runner.closed:
            return None
        if self.priors_job is not None and not self.priors_job.done:
            self.priors_job.cancel()
        self.priors_for = study.study_instance_uid
        self.priors, self._found = [], None
        self.priors_table.setRowCount(0)
        self.priors_label.setText("Priors: searching…")
        self.priors_job = self.window_.runner.start(
            "priors", priors_job, self.ws, patient, study, self.with_pacs, self.priors_cache,
            refresh, on_result=self._show_priors, on_error=self._priors_failed,
        )  # fmt: skip
        return self.priors_job

    def _show_priors(self, found: PriorsFound) -> None:
        if found.study_uid != self.priors_for:
            return
        self._found = found
        self.priors = found.priors
        hide = self.window_.state.hide_phi
        self.priors_table.setRowCount(0)
        for row, p in enumerate(found.priors):
            self.priors_table.insertRow(row)
            where = "here" if p.local is not None else p.source
            if p.local is not None and p.nodes:
                where += f" + {', '.join(p.nodes)}"
            cells = (
                "" if hide else format_dicom_date(p.study_date),
                "/".join(p.modalities),
                p.description,
                "?" if p.n_instances is None else str(p.n_instances),
                where,
            )
            for col, text in enumerate(cells):
                self.priors_table.setItem(row, col, _item(text, p.study_uid))
        self.priors_table.resizeColumnsToContents()
        n = len(found.priors)
        text = f"Priors: {n} other stud{'y' if n == 1 else 'ies'} of this patient"
        if found.problems:
            text += " - not asked: " + "; ".join(found.problems)
        self.priors_label.setText(text)
        self._update_prior_buttons()

    def _priors_failed(self, exc: BaseException) -> None:
        self.priors_label.setText(f"Priors: {exc}")

    def _prior_row(self) -> int:
        rows = self.priors_table.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def _update_prior_buttons(self) -> None:
        row = self._prior_row()
        prior = self.priors[row] if 0 <= row < len(self.priors) else None
        self.open_prior_button.setEnabled(prior is not None and prior.local is not None)
        self.retrieve_prior_button.setEnabled(prior is not None and prior.retrievable)
        self.hang_button.setEnabled(any(p.local is not None for p in self.priors))

    def open_or_retrieve(self, row: int) -> Job | None:
        """A prior here opens; one only on a PACS is retrieved first."""
        if not 0 <= row < len(self.priors):
            return None
        prior = self.priors[row]
        if prior.local is None:
            return self.retrieve_prior(row)
        self.priors_label.setText("Opening the prior…")
        return self.window_.runner.start(
            "open prior", paths_job, self.ws, prior.study_uid,
            on_result=self._open_paths, on_error=self._open_failed,
        )  # fmt: skip

    def hang_with_priors(self) -> Job | None:
        """The priors that are here (the selected one, else all) indexed into the open studies,
        then the study on screen hung by protocol (View > Layout > Hang by protocol)."""
        row = self._prior_row()
        chosen = [self.priors[row]] if 0 <= row < len(self.priors) else self.priors
        uids = [p.study_uid for p in chosen if p.local is not None]
        if not uids or self.window_.runner.closed:
            return None
        self.priors_label.setText(f"Hanging with {len(uids)} prior(s)…")
        return self.window_.runner.start(
            "hang with priors", hang_job, self.ws, uids,
            on_result=self._hang, on_error=self._open_failed,
        )  # fmt: skip

    def _hang(self, index: StudyIndex) -> None:
        from core.config import ConfigError, load_settings
        from core.viewer.hanging import HangingError

        self.window_.state.add_index(index)
        self.window_.controller.start_thumbnails([s for _p, _st, s in index.iter_series()])
        try:
            hanging = self.window_.grid.hang_current(load_settings().viewer.hanging_protocols)
        except (ConfigError, HangingError) as exc:
            self.priors_label.setText(f"Cannot hang: {exc}")
            return
        if hanging is not None:
            n = len(hanging.studies) - 1
            self.priors_label.setText(f"Hung by '{hanging.protocol}' with {n} prior(s)")

    def retrieve_prior(self, row: int) -> Job | None:
        if not 0 <= row < len(self.priors) or not self.priors[row].nodes:
            return None
        prior, cache = self.priors[row], self._cache()
        if cache is None:
            self.priors_label.setText("Priors: no PACS cache (File > Search PACS is not set up)")
            return None
        node = prior.nodes[0]
        self.priors_label.setText(f"Retrieving the prior from '{node}' in the background…")
        job = start_retrieve(
            self.window_, self.ws, node, prior.study_uid, cache,
            on_result=lambda n: self._retrieved(prior, node, n),
            on_error=lambda exc: self.priors_label.setText(f"Retrieve failed: {exc}"),
        )  # fmt: skip
        self.retrieve_jobs.append(job)
        job.signals.finished.connect(
            lambda: self.retrieve_jobs.remove(job) if job in self.retrieve_jobs else None
        )
        return job

    def _cache(self) -> Any:
        pacs = self.window_.pacs
        if pacs is not None:
            return pacs.cache
        from core.pacs.cache import PacsCache
        from desktop.pacs_dialog import current_settings

        return PacsCache.from_settings(current_settings())

    def _retrieved(self, prior: Prior, node: str, count: int) -> None:
        self.window_.statusBar().showMessage(
            f"Prior of {format_dicom_date(prior.study_date)} retrieved from '{node}' "
            f"({count} instance(s)); it is in the study list",
            10_000,
        )
        ctx = self.window_.state.context()
        if ctx is not None:  # list again: the prior is now here
            self.ask_priors(*ctx)
        self.refresh()


class DialogFolders(QObject):
    """File dialogs start where the user's last one ended: the folder is read and saved in
    jobs, in the encrypted store (a folder's name often carries a patient's name)."""

    def __init__(self, window: MainWindow, ws: Workstation) -> None:
        super().__init__(window)
        self.window_, self.ws = window, ws
        window.dialog_folder_chosen.connect(self.save)
        window.runner.start("last folder", folder_job, ws, None, on_result=self._loaded)

    def _loaded(self, folder: str) -> None:
        if folder and not self.window_.dialog_folder:
            self.window_.dialog_folder = folder

    def save(self, folder: str) -> None:
        if not self.window_.runner.closed:
            self.window_.runner.start("remember folder", folder_job, self.ws, folder)


def install_study_list(window: MainWindow, ws: Workstation) -> StudyListPanel:
    """The "Study list" dock, tabbed with the study browser, showing the recent studies."""
    panel = StudyListPanel(window, ws)
    dock = window.add_panel(panel, Qt.DockWidgetArea.LeftDockWidgetArea, "Study list")
    window.tabifyDockWidget(window.browser_dock, dock)
    window.browser_dock.raise_()
    if window.audit_hooks is not None:
        window.audit_hooks.audited.connect(panel.on_audited)
    panel.folders = DialogFolders(window, ws)
    panel.dock = dock
    panel.refresh()
    return panel
