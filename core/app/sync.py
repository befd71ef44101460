"""Use case: sync with the central backend. One ``SyncSession.run_pass()`` sends what the outbox
holds, keeps the time of the last success in the encrypted store, enrols on the first start with
IT's one-time code, and, when due, installs the signed channel's model versions (audited as
installed by 'system': IT's signed channel decided). A Security Alert (the server's anchor does
not match this history) is audited here.

The window runs one pass at a time as a background job on a timer or on "Sync now"
(desktop.sync_worker); nothing here blocks on Qt, and nothing here is called on the GUI thread.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from core.app.model_admin import install_update
from core.app.workstation import Workstation
from core.audit.events import Participants
from core.audit.vocabulary import EventType, Outcome
from core.config import Settings
from core.store.database import set_property
from core.store.outbox import StoreOutbox
from core.store.schema import properties
from core.sync.engine import BackoffPolicy, SecurityAlert, SyncEngine, SyncReport
from core.sync.errors import SyncConfigError, SyncError
from core.sync.model_update import ModelUpdateError
from core.sync.status import SyncStatus
from core.sync.wire import BatchResponse

if TYPE_CHECKING:
    from core.sync.client import SyncClient

log = logging.getLogger(__name__)

LAST_SUCCESS_KEY = "sync.last_success"
#: How often a pass also asks the update server about the installed models (TUF refresh); a
#: "Sync now" asks at once. Model packages change rarely; results and audit events often.
MODEL_CHECK_S = 900.0
STATUS_REPORT_S = 900.0  # how often a workstation sends its status report to the fleet view
#: Per-request limit of the window's sync client: bounds how long a stop waits for a request.
REQUEST_TIMEOUT_S = 15.0


def load_last_success(ws: Workstation) -> datetime | None:
    with ws.db.engine.connect() as conn:
        value = conn.execute(
            select(properties.c.value).where(properties.c.key == LAST_SUCCESS_KEY)
        ).scalar_one_or_none()
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None  # an unreadable value is simply "not known"; the next sync rewrites it


def save_last_success(ws: Workstation, when: datetime) -> None:
    with ws.db.transaction() as conn:
        set_property(conn, LAST_SUCCESS_KEY, when.isoformat())


def record_security_alert(ws: Workstation, alert: SecurityAlert) -> None:
    ws.record(
        EventType.SECURITY_ALERT,
        Participants().add("workstation", ws.db.workstation_id),
        Outcome.SERIOUS_FAILURE,
        source="sync",
        code=alert.code,
        message=alert.message,
    )


class _DeferredClient:
    """The engine's sender, built on first use in a pass: creating the TLS context (reading
    the CA bundles) and the HTTP client is I/O the GUI thread must not do."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: SyncClient | None = None
        self._lock = threading.Lock()
        self.closed = False

    def get(self) -> SyncClient:
        with self._lock:
            if self.closed:
                raise SyncError("sync is stopping")
            if self._client is None:
                from core.sync.service import make_client

                self._client = make_client(self.settings, timeout=REQUEST_TIMEOUT_S)
            return self._client

    def post_batch(self, endpoint: str, body: bytes, key: str) -> BatchResponse:
        return self.get().post_batch(endpoint, body, key)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._client is not None:
                self._client.close()


@dataclass(frozen=True)
class PassOutcome:
    report: SyncReport | None  # None: the pass could not run (the status says why)
    models_note: str | None  # None: models not checked this pass; "" all well; else the news
    stopped: bool = False  # a setting that cannot work: no further pass will run


class SyncSession:
    """The workstation's side of sync for one window: engine, client and the pass rules."""

    def __init__(
        self,
        ws: Workstation,
        settings: Settings,
        status: SyncStatus | None = None,
        *,
        backoff: BackoffPolicy | None = None,
        model_check_s: float = MODEL_CHECK_S,
        check_models: bool = True,
    ) -> None:
        self.ws, self.settings = ws, settings
        self.status = status or SyncStatus()
        self.client = _DeferredClient(settings)
        self.model_check_s = model_check_s
        self.alerts: list[SecurityAlert] = []
        self.engine = SyncEngine(
            StoreOutbox(ws.db),
            self.client,
            batch_size=settings.sync.batch_size,
            backoff=backoff,
            status=self.status,
            on_alert=self._on_alert,
        )
        self.passes = 0
        self._prepared = False
        self._stopped = False
        self._models_due = check_models
        self._last_models = float("-inf") if check_models else float("inf")
        self._last_status = float("-inf")  # the first pass that reaches the server reports

    def _on_alert(self, alert: SecurityAlert) -> None:
        self.alerts.append(alert)
        record_security_alert(self.ws, alert)

    def models_due(self) -> None:
        """Ask about model updates in the next pass ("Sync now")."""
        self._models_due = True

    @property
    def stopping(self) -> bool:
        return self._stopped or self.engine.stop_event.is_set()

    def run_pass(self) -> PassOutcome:
        """One pass; never raises (what went wrong is in ``status`` and the outcome)."""
        if self.stopping:
            return PassOutcome(None, None, stopped=True)
        try:
            if not self._prepared:  # retried each pass: enrolment may need the server up
                self._prepared = self._prepare()
                if not self._prepared:
                    return PassOutcome(None, None, stopped=self._stopped)
            report = self.engine.sync_once()
            when = self.status.snapshot.last_success
            if report.ok and when is not None:
                save_last_success(self.ws, when)
        except Exception as exc:  # noqa: BLE001 - shown in the status bar, sync goes on
            log.warning("sync failed: %s", exc)
            self.status.update(state="error", last_error=f"sync failed: {exc}")
            report = None
        note = None
        now = time.monotonic()
        if not self.stopping and (
            self._models_due or now - self._last_models >= self.model_check_s
        ):  # inf - inf is nan: never due
            self._models_due, self._last_models = False, now
            note = self._check_models()
        if (
            not self.stopping
            and report is not None
            and now - self._last_status >= min(self.model_check_s, STATUS_REPORT_S)
        ):
            self._last_status = now
            self._report_status()
        self.passes += 1
        return PassOutcome(report, note)

    def _report_status(self) -> None:
        """Tell IT's fleet view what this workstation runs (on the first pass, then at most every
        ``STATUS_REPORT_S``: "last seen" comes from every request anyway). Best effort."""
        from core.sync.status_report import build_report, send

        try:
            report = build_report(
                self.engine.outbox.count_unsent(),
                installed_model_versions(),
                self.status.snapshot.last_success,
            )
            send(self.client.get(), report)
        except (SyncError, SyncConfigError, OSError, ValueError) as exc:
            log.info("device status not sent: %s", exc)

    def _prepare(self) -> bool:
        last = load_last_success(self.ws)
        if last is not None and self.status.snapshot.last_success is None:
            self.status.update(last_success=last)
        try:
            client = self.client.get()
        except SyncConfigError as exc:  # a CA bundle or proxy that cannot work
            self.status.update(state="not_configured", last_error=str(exc))
            self._stopped = True
            return False
        code = self.settings.sync.enrolment_code
        if code and client.credentials.device() is None:
            client.enrol(code, socket.gethostname())
        return True

    def _check_models(self) -> str:
        from core.sync.service import make_updater, models_to_update

        try:
            updater = make_updater(self.settings, self.client.get())
        except SyncConfigError as exc:
            return f"Model updates off: {exc}"
        except SyncError as exc:
            return f"Model update refused or not possible: {exc}"
        try:
            done: list[str] = []
            refused: list[ModelUpdateError] = []
            for model_id in models_to_update(self.client.get(), updater):
                try:
                    result = install_update(self.ws, updater, model_id, by_person=False)
                except ModelUpdateError as exc:
                    if exc.reason != "not_published":
                        refused.append(exc)
                    continue
                if result.action == "installed":
                    done.append(result.message)
            if refused:
                return f"Model update refused or not possible: {refused[0]}"
            return "; ".join(done)
        except SyncError as exc:
            return f"Model update refused or not possible: {exc}"
        except Exception as exc:  # an update bug must not stop result sync (logged)
            log.exception("model update check failed")
            return f"Model update check failed: {exc}"
        finally:
            updater.close()

    def request_stop(self) -> None:
        self._stopped = True
        self.engine.stop()  # also cuts a backoff wait short

    def close(self) -> None:
        """Close the HTTP client (ends a request in flight at once; nothing is lost)."""
        self.client.close()


def installed_model_versions() -> dict[str, str]:
    """Model id -> the version this workstation runs: a signed update where one is installed,
    else the shipped zoo's (manifests read, weights not hashed: this runs every model check)."""
    from core.inference.model_store import ModelStore
    from core.paths import profile_dir
    from models.discovery import ZOO_DIR
    from models.manifest import MANIFEST_NAME, read_manifest

    versions: dict[str, str] = {}
    for folder in sorted(ZOO_DIR.iterdir()):
        if (folder / MANIFEST_NAME).is_file():
            try:
                manifest, _raw = read_manifest(folder)
            except Exception:  # noqa: BLE001 - a broken package is reported elsewhere
                continue
            versions[manifest.id] = manifest.version
    for model_id, pointer in ModelStore(profile_dir() / "models").installed().items():
        versions[model_id] = pointer.version
    return versions
