"""PACS search and retrieve: QIDO-RS search form, study/series list, WADO-RS retrieve that
opens the series in the viewer while it downloads.

Searches and retrieves are background jobs (desktop.workers); the first retrieved instance is
opened at once, the rest are added in batches (every ``FLUSH_MS``) and at the end, so the
radiologist sees an image long before the series is complete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QDate, Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.config import ConfigError, PacsNode, Settings
from core.pacs.audit import AuditSink
from core.pacs.cache import PacsCache
from core.pacs.client import PacsClient, SeriesHit, StudyHit, StudyQuery
from core.pacs.errors import PacsError
from core.pacs.retrieve import RetrieveResult, retrieve_series, retrieve_study
from desktop.workers import Job, JobContext, JobRunner

MODALITIES = ("", "CT", "MR", "CR", "DX", "US", "MG", "PT", "NM", "XA", "SR", "SEG")
FLUSH_MS = 1500
UID_ROLE = Qt.ItemDataRole.UserRole


def search_job(ctx: JobContext, client: PacsClient, query: StudyQuery) -> list[StudyHit]:
    return client.search_studies(query)


def series_job(ctx: JobContext, client: PacsClient, study_uid: str) -> list[SeriesHit]:
    return client.search_series(study_uid)


def retrieve_job(
    ctx: JobContext, client: PacsClient, cache: PacsCache, study_uid: str, series_uid: str | None
) -> list[RetrieveResult]:
    def arrived(path: Any, done: int, total: int) -> None:
        ctx.report((str(path), done, total))

    if series_uid:
        return [
            retrieve_series(
                client, cache, study_uid, series_uid, on_instance=arrived, cancel=ctx.cancel_event
            )
        ]
    return retrieve_study(client, cache, study_uid, on_instance=arrived, cancel=ctx.cancel_event)


class PacsSearchPanel(QWidget):
    """The search form and results; ``open_paths`` is the main window's."""

    def __init__(
        self,
        runner: JobRunner,
        client_for: Callable[[str], PacsClient],
        node_names: list[str],
        open_paths: Callable[[list[str]], None],
        cache: PacsCache | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("pacsSearch")
        self.runner, self.client_for, self.open_paths = runner, client_for, open_paths
        self.cache = cache or PacsCache.from_settings(current_settings())
        self.search: Job | None = None
        self.retrieve: Job | None = None
        self.pending: list[str] = []
        self.opened_first = False
        self._flush = QTimer(self, interval=FLUSH_MS)
        self._flush.timeout.connect(self._flush_pending)

        self.node = QComboBox()
        self.node.addItems(node_names)
        self.patient_name = QLineEdit()
        self.patient_id = QLineEdit()
        self.accession = QLineEdit()
        self.use_dates = QCheckBox("between")
        self.date_from = QDateEdit(QDate.currentDate().addYears(-1))
        self.date_to = QDateEdit(QDate.currentDate())
        for edit in (self.date_from, self.date_to):
            edit.setCalendarPopup(True)
        self.modality = QComboBox()
        self.modality.addItems([m or "any" for m in MODALITIES])
        form = QFormLayout()
        form.addRow("PACS", self.node)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Accession", self.accession)
        dates = QHBoxLayout()
        for w in (self.use_dates, self.date_from, QLabel("and"), self.date_to):
            dates.addWidget(w)
        form.addRow("Study date", dates)
        form.addRow("Modality", self.modality)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.run_search)
        self.results = QTreeWidget()
        self.results.setHeaderLabels(
            ["Date", "Patient", "ID", "Accession", "Modality", "Images", "Description"]
        )
        self.results.itemExpanded.connect(self._load_series)
        self.results.itemDoubleClicked.connect(lambda *_: self.run_retrieve())
        self.retrieve_button = QPushButton("Retrieve and open")
        self.retrieve_button.clicked.connect(self.run_retrieve)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.search_button)
        buttons.addStretch(1)
        buttons.addWidget(self.retrieve_button)
        buttons.addWidget(self.cancel_button)
        col = QVBoxLayout(self)
        col.addLayout(form)
        col.addLayout(buttons)
        col.addWidget(self.results, 1)
        col.addWidget(self.status)

    # --- search ----------------------------------------------------------------------------
    def query(self) -> StudyQuery:
        use = self.use_dates.isChecked()
        return StudyQuery(
            patient_name=self.patient_name.text(),
            patient_id=self.patient_id.text(),
            accession=self.accession.text(),
            date_from=self.date_from.date().toPython() if use else None,  # type: ignore[arg-type]
            date_to=self.date_to.date().toPython() if use else None,  # type: ignore[arg-type]
            modality=MODALITIES[self.modality.currentIndex()],
        )

    def _client(self) -> PacsClient | None:
        if not self.node.currentText():
            self.status.setText(NO_NODES)
            return None
        try:
            return self.client_for(self.node.currentText())
        except (PacsError, ConfigError, ValueError, OSError) as exc:  # shown, never raised
            self.status.setText(f"Cannot use PACS '{self.node.currentText()}': {exc}")
            return None

    def run_search(self) -> Job | None:
        client = self._client()
        if client is None or self.runner.closed:
            return None
        if self.search is not None:
            self.search.cancel()
        self.status.setText("Searching…")
        self.results.clear()
        self.search = self.runner.start(
            "PACS search",
            search_job,
            client,
            self.query(),
            on_result=self._on_studies,
            on_error=self._on_error,
        )
        return self.search

    def _on_studies(self, hits: list[StudyHit]) -> None:
        for hit in hits:
            item = QTreeWidgetItem(
                [
                    hit.study_date,
                    hit.patient_name.replace("^", " "),
                    hit.patient_id,
                    hit.accession,
                    "/".join(hit.modalities),
                    "" if hit.instance_count is None else str(hit.instance_count),
                    hit.description,
                ]
            )
            item.setData(0, UID_ROLE, (hit.study_uid, None))
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
            self.results.addTopLevelItem(item)
        self.status.setText(f"{len(hits)} stud{'y' if len(hits) == 1 else 'ies'} found")

    def _load_series(self, item: QTreeWidgetItem) -> None:
        study_uid, series_uid = item.data(0, UID_ROLE)
        if series_uid is not None or item.childCount():
            return
        client = self._client()
        if client is None:
            return
        self.runner.start(
            "PACS series search",
            series_job,
            client,
            study_uid,
            on_result=lambda hits: self._on_series(item, hits),
            on_error=self._on_error,
        )

    def _on_series(self, parent: QTreeWidgetItem, hits: list[SeriesHit]) -> None:
        for hit in hits:
            child = QTreeWidgetItem(
                [
                    "",
                    "",
                    "",
                    "",
                    hit.modality,
                    "" if hit.instance_count is None else str(hit.instance_count),
                    hit.description or f"Series {hit.number or ''}",
                ]
            )
            child.setData(0, UID_ROLE, (hit.study_uid, hit.series_uid))
            parent.addChild(child)

    # --- retrieve --------------------------------------------------------------------------
    def run_retrieve(self) -> Job | None:
        item = self.results.currentItem()
        client = self._client()
        if item is None or client is None or self.runner.closed:
            if item is None:
                self.status.setText("Select a study or series to retrieve")
            return None
        self.cancel_retrieve()
        study_uid, series_uid = item.data(0, UID_ROLE)
        self.pending, self.opened_first = [], False
        self.status.setText("Retrieving…")
        self.retrieve = self.runner.start(
            "PACS retrieve",
            retrieve_job,
            client,
            self.cache,
            study_uid,
            series_uid,
            on_progress=self._on_instance,
            on_result=self._on_retrieved,
            on_error=self._on_error,
            on_finished=lambda _j: self._flush.stop(),
        )
        self._flush.start()
        return self.retrieve

    def _on_instance(self, item: tuple[str, int, int]) -> None:
        path, done, total = item
        if not self.opened_first:  # the first image goes to the viewer at once
            self.opened_first = True
            self.open_paths([path])
        else:
            self.pending.append(path)
        self.status.setText(f"Retrieving: {done}/{total or '?'} instances")

    def _flush_pending(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self.open_paths(batch)

    def _on_retrieved(self, results: list[RetrieveResult]) -> None:
        self._flush.stop()
        self._flush_pending()
        n = sum(len(r.paths) for r in results)
        cached = all(r.from_cache for r in results)
        self.status.setText(
            f"Retrieved {n} instance(s)" + (" from the local cache" if cached else "")
        )

    def _on_error(self, exc: BaseException) -> None:
        self._flush.stop()
        self._flush_pending()  # what did arrive stays open
        self.status.setText(str(exc))

    def cancel_retrieve(self) -> None:
        if self.retrieve is not None and not self.retrieve.done:
            self.retrieve.cancel()
        self._flush.stop()

    def cancel(self) -> None:
        self.cancel_retrieve()
        if self.search is not None:
            self.search.cancel()
        self.status.setText("Cancelled")


class PacsDialog(QDialog):
    """The search panel in a non-modal dialog (File > PACS…)."""

    def __init__(
        self,
        window: Any,
        client_for: Callable[[str], PacsClient],
        node_names: list[str],
        cache: PacsCache | None = None,
    ) -> None:
        super().__init__(window)
        self.setWindowTitle("Search the PACS")
        self.resize(900, 600)
        self.panel = PacsSearchPanel(
            window.runner, client_for, node_names, lambda paths: window.open_paths(paths), cache
        )
        col = QVBoxLayout(self)
        col.addWidget(self.panel)


def current_settings() -> Settings | None:
    """The settings in force (pinned at start), or None (defaults: the cache encrypted)."""
    from core.config import load_settings

    try:
        return load_settings()
    except ConfigError:
        return None


NO_NODES = "No PACS configured: add a [[pacs]] table (name, url, auth) to the settings"


def configured_nodes(settings: Settings | None) -> tuple[list[PacsNode], str]:
    """The ``[[pacs]]`` nodes, and what to tell the user when there are none (or bad settings)."""
    from core.pacs.nodes import list_nodes

    try:
        nodes = list_nodes(settings)
    except ConfigError as exc:
        return [], str(exc)
    return nodes, "" if nodes else NO_NODES


def client_factory(nodes: list[PacsNode], audit: AuditSink) -> Callable[[str], PacsClient]:
    """One client per node name, made on first use (DICOMweb, or DIMSE for dicom:// nodes)."""
    from core.pacs.dimse import DimseClient, is_dimse

    clients: dict[str, PacsClient] = {}

    def client_for(name: str) -> PacsClient:
        if name not in clients:
            node = next((n for n in nodes if n.name == name), None)
            if node is None:
                raise ValueError(f"no PACS node named '{name}'")
            if is_dimse(node):
                clients[name] = DimseClient(node, audit)  # type: ignore[assignment]
            else:
                clients[name] = PacsClient(node, audit)
        return clients[name]

    return client_for
