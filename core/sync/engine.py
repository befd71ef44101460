"""Draining the outbox: batches per kind, full-jitter backoff, Retry-After, idempotent replays.

Rows are marked sent only after a 2xx that acknowledges them, so a crash, a dropped answer or a
restart at any point leaves them unsent and they go again; the server recognises the replay by
the batch's Idempotency-Key (derived from the row ids) and each item by its client id, so
nothing is stored twice. A 409 ``audit_chain_*`` is not retried: it means the local audit
history no longer extends what the server anchored (an older database restored, or history
rewritten), and it is raised as a Security Alert.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from core.sync.errors import (
    AuthFailedError,
    ChainAlertError,
    RefusedError,
    SyncConfigError,
    SyncError,
    TransientError,
)
from core.sync.outbox import Outbox, OutboxRow, payload_dict
from core.sync.status import SyncStatus
from core.sync.wire import MAX_BATCH_ITEMS, AuditEventItem, BatchResponse, ResultItem

log = logging.getLogger(__name__)

ENDPOINTS = {"result": "results:batch", "audit": "audit-events:batch"}


class BatchSender(Protocol):
    def post_batch(self, endpoint: str, body: bytes, key: str) -> BatchResponse: ...


@dataclass(frozen=True)
class BackoffPolicy:
    """Full jitter: wait uniform(0, min(cap, base * 2**(attempt-1))); Retry-After is a floor."""

    base_s: float = 0.5
    cap_s: float = 60.0
    max_attempts: int = 8  # per batch within one pass; the next pass starts afresh


@dataclass(frozen=True)
class SecurityAlert:
    code: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyncReport:
    sent: int = 0
    duplicates: int = 0
    batches: int = 0
    retries: int = 0
    remaining: int = 0
    error: str | None = None
    alert: SecurityAlert | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.alert is None


def idempotency_key(kind: str, ids: Sequence[str]) -> str:
    """Same rows, same key: a batch retried after a lost answer is a replay, not a new write."""
    digest = hashlib.sha256("\n".join([kind, *ids]).encode()).hexdigest()
    return f"{kind}-{digest[:48]}"


def alert_message(exc: ChainAlertError) -> str:
    return (
        "SECURITY ALERT: the sync server refused this workstation's audit trail "
        f"({exc.code}): {exc}. The local audit database may have been replaced by an older copy "
        "or its history rewritten. Audit sync is stopped; inform IT security."
    )


class _WaitRetryAfter(wait_base):
    """Full jitter, but never sooner than the server's Retry-After."""

    def __init__(self, jitter: wait_base, cap_s: float) -> None:
        self.jitter, self.cap_s = jitter, cap_s

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = float(self.jitter(retry_state))
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)  # already capped by parse_retry_after
        return wait


class _StopOnEvent(stop_base):
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.event.is_set()


class _PassStopped(Exception):
    """Ends the current pass; the report carries why."""


class SyncEngine:
    """One ``sync_once()`` drains as much of the outbox as the network allows."""

    def __init__(
        self,
        outbox: Outbox,
        sender: BatchSender,
        *,
        batch_size: int = 200,
        backoff: BackoffPolicy | None = None,
        on_alert: Callable[[SecurityAlert], None] | None = None,
        status: SyncStatus | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.outbox, self.sender = outbox, sender
        self.batch_size = max(1, min(batch_size, MAX_BATCH_ITEMS))
        self.backoff = backoff or BackoffPolicy()
        self.on_alert = on_alert
        self.status = status or SyncStatus()
        self.stop_event = stop_event or threading.Event()
        self._last_alert: tuple[str, str] | None = None

    # --- one pass ----------------------------------------------------------------------------

    def sync_once(self) -> SyncReport:
        report = SyncReport()
        self.status.update(
            state="syncing", queue_length=self.outbox.count_unsent(), sent_this_run=0
        )
        try:
            while not self.stop_event.is_set():
                rows = list(self.outbox.fetch_unsent(self.batch_size))
                if not rows:
                    break
                self._check_kinds(rows)
                results = [r for r in rows if r.kind == "result"]
                audit = [r for r in rows if r.kind == "audit"]
                for kind, group in (("result", results), ("audit", audit)):
                    if group:
                        self._send_group(kind, group, report)
                self.status.update(
                    queue_length=self.outbox.count_unsent(), sent_this_run=report.sent
                )
        except _PassStopped as stop:
            report.error = report.error or str(stop)
        report.remaining = self.outbox.count_unsent()
        self._finish(report)
        return report

    def _check_kinds(self, rows: Sequence[OutboxRow]) -> None:
        other = [r for r in rows if r.kind not in ENDPOINTS]
        if other:
            msg = f"outbox row {other[0].id!r} has unknown kind {other[0].kind!r}"
            self.outbox.mark_failed([r.id for r in other], msg)
            raise _PassStopped(msg)

    def _finish(self, report: SyncReport) -> None:
        now = datetime.now(UTC)
        if report.alert is not None:
            self.status.update(
                state="alert",
                queue_length=report.remaining,
                alert=report.alert.message,
                last_error=report.alert.message,
            )
        elif report.error is not None:
            transient = report.error.startswith("offline:")
            self.status.update(
                state="offline" if transient else "error",
                queue_length=report.remaining,
                last_error=report.error.removeprefix("offline: "),
            )
        else:
            self.status.update(
                state="online",
                queue_length=report.remaining,
                last_success=now,
                last_error=None,
                alert=None,
            )

    # --- one batch ---------------------------------------------------------------------------

    def _body(self, kind: str, rows: Sequence[OutboxRow]) -> tuple[bytes, list[str]]:
        items: list[ResultItem | AuditEventItem] = []
        for row in rows:
            try:
                data = payload_dict(row)
                items.append(
                    ResultItem.model_validate(data)
                    if kind == "result"
                    else AuditEventItem.model_validate(data)
                )
            except (ValueError, TypeError, ValidationError) as exc:
                msg = f"outbox row {row.id!r} ({kind}) is not a valid wire item: {exc}"
                self.outbox.mark_failed([row.id], msg)
                raise _PassStopped(msg) from exc
        ids = [i.client_id if isinstance(i, ResultItem) else i.event_id for i in items]
        key = "items" if kind == "result" else "events"
        parts = b",".join(i.model_dump_json().encode() for i in items)
        return b'{"' + key.encode() + b'":[' + parts + b"]}", ids

    def _send_group(self, kind: str, rows: Sequence[OutboxRow], report: SyncReport) -> None:
        body, wire_ids = self._body(kind, rows)
        row_ids = [r.id for r in rows]
        try:
            resp = self._post(ENDPOINTS[kind], body, idempotency_key(kind, row_ids), report)
        except ChainAlertError as exc:
            alert = SecurityAlert(exc.code, alert_message(exc), exc.data)
            self.outbox.mark_failed(row_ids, alert.message)
            report.alert = alert
            if self._last_alert != (exc.code, str(exc)) and self.on_alert is not None:
                self.on_alert(alert)
            self._last_alert = (exc.code, str(exc))
            raise _PassStopped(alert.message) from exc
        except TransientError as exc:
            self.outbox.mark_failed(row_ids, str(exc))
            raise _PassStopped(f"offline: {exc}") from exc
        except (RefusedError, AuthFailedError, SyncConfigError, SyncError) as exc:
            self.outbox.mark_failed(row_ids, str(exc))
            raise _PassStopped(str(exc)) from exc
        acked = set(resp.stored) | set(resp.duplicates)
        done = [rid for rid, wid in zip(row_ids, wire_ids, strict=True) if wid in acked]
        self.outbox.mark_sent(done)
        report.sent += len(resp.stored)
        report.duplicates += len(resp.duplicates)
        report.batches += 1
        if len(done) != len(row_ids):
            msg = f"the server acknowledged {len(done)} of {len(row_ids)} {kind} items"
            self.outbox.mark_failed([r for r in row_ids if r not in set(done)], msg)
            raise _PassStopped(msg)

    def _post(self, endpoint: str, body: bytes, key: str, report: SyncReport) -> BatchResponse:
        def note(state: RetryCallState) -> None:
            report.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.info("sync retry %d of %s: %s", state.attempt_number, endpoint, exc)
            self.status.update(state="offline", last_error=str(exc))

        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            wait=_WaitRetryAfter(
                wait_random_exponential(multiplier=self.backoff.base_s, max=self.backoff.cap_s),
                self.backoff.cap_s,
            ),
            stop=stop_after_attempt(self.backoff.max_attempts) | _StopOnEvent(self.stop_event),
            sleep=self._sleep,
            before_sleep=note,
            reraise=True,
        )
        resp: BatchResponse = retrying(self.sender.post_batch, endpoint, body, key)
        self.status.update(state="syncing", last_error=None)
        return resp

    def _sleep(self, seconds: float) -> None:
        self.stop_event.wait(seconds)  # a stop request cuts a backoff wait short

    def stop(self) -> None:
        """Ask a running pass to finish after the current request (interrupts backoff sleeps)."""
        self.stop_event.set()
