"""The audit viewer for administrators and auditors: filter, verify the chain, export.

Who may open it: Permission.READ_AUDIT, which core.security.users gives to the auditor and the
admin roles (the issue names both; an admin still cannot change the trail, the API has no
update or delete, and the reading is itself audited). Reading, verifying and exporting run in
the window's worker pool (a long trail must not freeze the window); opening the viewer, each
export and each verification are recorded as "Audit Log Used".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.app.workstation import Workstation
from core.audit.export import EXPORTERS
from core.audit.log import AuditObject, StoredEvent, TrailCheck
from core.audit.vocabulary import EventType, Outcome
from core.security.users import Permission, PermissionDenied
from desktop.workers import JobContext, JobRunner

COLUMNS = ("#", "Time (UTC)", "User", "Role", "Event", "Outcome", "Objects")
MAX_ROWS = 5_000  # newest first; the filters narrow a larger trail
SUFFIX = {"json": "json", "csv": "csv", "dicom-xml": "xml"}
TRAIL = AuditObject("audit-log", "local")


@dataclass(frozen=True)
class AuditFilter:
    user: str = ""
    event_type: EventType | None = None
    since: str = ""  # ISO UTC, as stored
    until: str = ""
    patient: str = ""


def parse_time(text: str, end: bool = False) -> str:
    """'2026-11-30' or '2026-11-30T14:00' (UTC unless an offset is given) -> the stored form.

    A date alone as the end of a range means the whole day.
    """
    text = text.strip()
    if not text:
        return ""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"'{text}' is not a date or time (use 2026-11-30 or 2026-11-30T14:00)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if end and len(text) == 10:
        when += timedelta(days=1)
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def _events(ws: Workstation, flt: AuditFilter) -> list[StoredEvent]:
    return list(
        ws.audit.iter_events(
            since=flt.since or None,
            until=flt.until or None,
            user=flt.user or None,
            event_type=flt.event_type,
            patient=flt.patient or None,
        )
    )


def _load(_ctx: JobContext, ws: Workstation, flt: AuditFilter) -> list[StoredEvent]:
    return _events(ws, flt)[-MAX_ROWS:][::-1]


def _verify(_ctx: JobContext, ws: Workstation) -> tuple[TrailCheck, tuple[int, str]]:
    """The hash chain, the recorded head, the page HMACs and SQLite's integrity check; and the
    head to show beside them (read here, not on the GUI thread)."""
    return ws.audit.check(), ws.audit.chain_head()


def _export(_ctx: JobContext, ws: Workstation, flt: AuditFilter, path: Path, fmt: str) -> int:
    events = _events(ws, flt)
    path.write_text(EXPORTERS[fmt](events), encoding="utf-8")
    return len(events)


def objects_text(event: StoredEvent) -> str:
    return "; ".join(
        f"{o['kind']} {o['id']}" + (f" ({o['name']})" if o.get("name") else "")
        for o in event.objects
    )


class AuditViewer(QWidget):
    audited = Signal()  # the viewer appended to the trail (the chain head moved)
    loaded = Signal()  # rows shown (tests, status)
    verified = Signal(object)  # TrailCheck
    exported = Signal(str)  # path, or "" on failure

    def __init__(self, ws: Workstation, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("auditViewer")
        self.setWindowTitle("Audit trail")
        self.ws = ws
        self.runner = runner
        self.events: list[StoredEvent] = []
        self.last_verify: TrailCheck | None = None

        self.user = QLineEdit()
        self.user.setPlaceholderText("any user")
        self.patient = QLineEdit()
        self.patient.setPlaceholderText("patient id or name")
        self.since = QLineEdit()
        self.since.setPlaceholderText("e.g. 2026-11-01")
        self.until = QLineEdit()
        self.until.setPlaceholderText("e.g. 2026-11-30T23:59")
        self.event_type = QComboBox()
        self.event_type.addItem("All events", None)
        for member in EventType:
            self.event_type.addItem(member.meaning, member)
        self.refresh_button = QPushButton("Apply filters")
        self.verify_button = QPushButton("Verify chain")
        self.export_format = QComboBox()
        self.export_format.addItems(list(EXPORTERS))
        self.export_button = QPushButton("Export…")
        self.status = QLabel("")
        self.status.setObjectName("auditStatus")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)

        grid = QGridLayout()
        for col, (label, widget) in enumerate(
            (("User", self.user), ("Event", self.event_type), ("Patient", self.patient))
        ):
            grid.addWidget(QLabel(label), 0, 2 * col)
            grid.addWidget(widget, 0, 2 * col + 1)
        grid.addWidget(QLabel("From (UTC)"), 1, 0)
        grid.addWidget(self.since, 1, 1)
        grid.addWidget(QLabel("To (UTC)"), 1, 2)
        grid.addWidget(self.until, 1, 3)
        grid.addWidget(self.refresh_button, 1, 5)
        actions = QHBoxLayout()
        actions.addWidget(self.verify_button)
        actions.addWidget(self.status, 1)
        actions.addWidget(QLabel("Format"))
        actions.addWidget(self.export_format)
        actions.addWidget(self.export_button)
        col_layout = QVBoxLayout(self)
        col_layout.addLayout(grid)
        col_layout.addWidget(self.table, 1)
        col_layout.addLayout(actions)

        self.refresh_button.clicked.connect(self.refresh)
        for edit in (self.user, self.patient, self.since, self.until):
            edit.returnPressed.connect(self.refresh)
        self.verify_button.clicked.connect(self.verify)
        self.export_button.clicked.connect(self.export_dialog)

    # --- permission and auditing -----------------------------------------------------------
    def _allowed(self) -> bool:
        try:
            self.ws.session.require(Permission.READ_AUDIT)
        except PermissionDenied as exc:  # shown in the panel, never raised into Qt
            self.status.setText(f"Not allowed: {exc}.")
            return False
        return True

    def _record(
        self,
        outcome: Outcome = Outcome.SUCCESS,
        extra: tuple[AuditObject, ...] = (),
        **details: object,
    ) -> None:
        self.ws.record(EventType.AUDIT_LOG_USED, [TRAIL, *extra], outcome, **details)
        self.audited.emit()

    def current_filter(self) -> AuditFilter:
        """The filter fields; raises ValueError naming a malformed date."""
        return AuditFilter(
            self.user.text().strip(),
            self.event_type.currentData(),
            parse_time(self.since.text()),
            parse_time(self.until.text(), end=True),
            self.patient.text().strip(),
        )

    def _filter_or_say(self) -> AuditFilter | None:
        try:
            return self.current_filter()
        except ValueError as exc:
            self.status.setText(str(exc))
            return None

    # --- reading ---------------------------------------------------------------------------
    def open_trail(self) -> None:
        """The viewer is being shown: audited as Audit Log Used, then the newest rows load."""
        if not self._allowed():
            return
        self._record(action="view")
        self.refresh()

    def refresh(self) -> None:
        flt = self._filter_or_say()
        if flt is None or not self._allowed():
            return
        self.status.setText("Reading the audit trail…")
        self.runner.start(
            "reading the audit trail",
            _load,
            self.ws,
            flt,
            on_result=self._show,
            on_error=self._failed,
        )

    def _show(self, events: list[StoredEvent]) -> None:
        self.events = events
        self.table.setRowCount(len(events))
        for i, e in enumerate(events):
            outcome = Outcome(e.outcome).name.replace("_", " ").lower()
            action = e.details.get("action")
            event = f"{e.event_type.meaning} ({action})" if action else e.event_type.meaning
            cells = (
                str(e.index),
                e.created_at[:19].replace("T", " "),
                e.user,
                e.role,
                event,
                outcome,
                objects_text(e),
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if e.outcome != Outcome.SUCCESS:
                    item.setForeground(QColor("#ff8a80"))
                self.table.setItem(i, c, item)
        self.table.resizeColumnsToContents()
        more = f" (the newest {MAX_ROWS})" if len(events) >= MAX_ROWS else ""
        self.status.setText(f"{len(events)} event(s){more}.")
        self.loaded.emit()

    def _failed(self, exc: BaseException) -> None:
        self.status.setText(f"Cannot read the audit trail: {exc}")

    # --- verify ----------------------------------------------------------------------------
    def verify(self) -> None:
        if not self._allowed():
            return
        self.status.setText("Verifying the chain and every page of the database…")
        self.runner.start(
            "verifying the audit chain",
            _verify,
            self.ws,
            on_result=self._verified,
            on_error=self._failed,
        )

    def _verified(self, found: tuple[TrailCheck, tuple[int, str]]) -> None:
        result, (index, head) = found
        self.last_verify = result
        chain = result.chain
        if chain.ok:
            text = f"Chain OK: {chain.checked} event(s) verified; head #{index} {head[:12]}."
        elif chain.first_bad_index is None:
            text = f"Chain NOT VERIFIED: {chain.reason}."
        else:
            text = f"TAMPERED: the chain breaks at event #{chain.first_bad_index} ({chain.reason})."
            self._select_index(chain.first_bad_index)
        if not result.head.ok:
            text += f" RECORDED HEAD: {result.head.reason}."
        damaged = [str(c) for c in result.storage if not c.ok]
        if damaged:
            text += " DAMAGED FILE: " + "; ".join(damaged) + "."
        else:
            text += " " + "; ".join(str(c) for c in result.storage) + "."
        if not result.ok:
            text += " Keep this database for investigation."
        self.status.setText(text)
        self._record(
            Outcome.SUCCESS if result.ok else Outcome.SERIOUS_FAILURE,
            action="verify",
            ok=result.ok,
            checked=result.checked,
            first_bad_index=result.first_bad_index,
            failed=result.failed(),
        )
        self.verified.emit(result)

    def _select_index(self, index: int | None) -> None:
        for row, event in enumerate(self.events):
            if event.index == index:
                # an explicit command: selectRow follows the keyboard modifiers held at the
                # moment (Shift or Ctrl held while verifying would extend or toggle instead)
                cell = self.table.model().index(row, 0)
                flags = (
                    QItemSelectionModel.SelectionFlag.ClearAndSelect
                    | QItemSelectionModel.SelectionFlag.Rows
                )
                self.table.selectionModel().setCurrentIndex(cell, flags)
                self.table.scrollTo(cell)
                return

    # --- export ----------------------------------------------------------------------------
    def export_dialog(self) -> None:
        fmt = self.export_format.currentText()
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the audit trail", f"audit-trail.{SUFFIX.get(fmt, 'txt')}"
        )
        if path:
            self.export_to(Path(path), fmt)

    def export_to(self, path: Path, fmt: str) -> None:
        """Write the filtered events in a worker; audited as Audit Log Used with the file."""
        flt = self._filter_or_say()
        if flt is None or not self._allowed():
            self.exported.emit("")
            return
        self.status.setText(f"Exporting to '{path}'…")

        def done(count: int) -> None:
            self._record(
                extra=(AuditObject("file", str(path)),), action="export", format=fmt, events=count
            )
            self.status.setText(f"Exported {count} event(s) to '{path}'.")
            self.exported.emit(str(path))

        def failed(exc: BaseException) -> None:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.status.setText(f"Cannot write '{path}': {reason}")
            self._record(
                Outcome.MINOR_FAILURE,
                extra=(AuditObject("file", str(path)),),
                action="export",
                format=fmt,
                error=str(reason),
            )
            self.exported.emit("")

        self.runner.start(
            "exporting the audit trail",
            _export,
            self.ws,
            flt,
            path,
            fmt,
            on_result=done,
            on_error=failed,
        )
