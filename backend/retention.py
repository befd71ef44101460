"""Retention (issue 19, defect 7): what the backend may forget, and when.

Kept for ever: results, decisions, audit events, security alerts, devices, models, TUF
metadata (the record), and the ``enrolments`` rows (which code, by its hash, enrolled which
device: tiny, and the audit trail of how a device joined, even after its code is purged).
Deleted once past their horizon (``Settings``):

- idempotency answers older than ``idempotency_days``: a workstation replays a batch within
  minutes or days; after the horizon a replay is stored again as new items, which the results'
  and audit events' own unique keys still turn into duplicates.
- refresh tokens ``token_grace_days`` after they expire (used or not: an expired token is
  refused by its signature already; a used one is kept until then so its reuse is detected),
  and revoked refresh families once every token of the family has expired.
- enrolment codes ``token_grace_days`` after they expired or were used.
- shared rate-limit buckets idle for ``rate_bucket_idle_s`` (a new bucket starts full, as an
  idle one would have refilled).
- metric files of dead worker processes untouched for ``metric_files_idle_s``.

One process at a time runs it (a PostgreSQL advisory lock; the others skip that round), every
``purge_every_s`` from the app (:func:`purge_periodically`, which ``serve`` runs with
:func:`backend.background.attach`), or ``doctorai-backend purge``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, text
from sqlalchemy.orm import Session

from backend.config import Settings
from backend.db import (
    EnrolCode,
    IdempotencyRecord,
    RateBucket,
    RefreshToken,
    RevokedRefreshFamily,
)
from backend.deps import BackendState
from backend.ops import log, multiprocess_dir, purge_dead_metric_files

#: pg_try_advisory_xact_lock key of the purge ("DAIPURG" as an integer)
PURGE_LOCK_KEY = 0x44414950555247


def purge(session: Session, now: datetime, settings: Settings) -> dict[str, int]:
    """Delete what is past its horizon at ``now``; the caller commits. Rows deleted per kind."""
    grace = timedelta(days=settings.token_grace_days)
    statements = {
        "idempotency": delete(IdempotencyRecord).where(
            IdempotencyRecord.created_at < now - timedelta(days=settings.idempotency_days)
        ),
        "refresh_tokens": delete(RefreshToken).where(RefreshToken.expires_at < now - grace),
        "revoked_refresh_families": delete(RevokedRefreshFamily).where(
            RevokedRefreshFamily.revoked_at
            < now - timedelta(seconds=settings.refresh_ttl_s) - grace
        ),
        "enrol_codes": delete(EnrolCode).where(
            or_(EnrolCode.expires_at < now - grace, EnrolCode.used_at < now - grace)
        ),
        "rate_buckets": delete(RateBucket).where(
            RateBucket.stamp < now.timestamp() - settings.rate_bucket_idle_s
        ),
    }
    counts = {
        name: int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
        for name, stmt in statements.items()
    }
    metrics = multiprocess_dir()
    counts["metric_files"] = (
        purge_dead_metric_files(metrics, settings.metric_files_idle_s, now.timestamp())
        if metrics and metrics.is_dir()
        else 0
    )
    return counts


def purge_once(st: BackendState, now: datetime) -> dict[str, int] | None:
    """One round in its own transaction; None when another process holds the purge lock."""
    with st.sessions() as session:
        if st.engine.dialect.name == "postgresql":
            got = session.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": PURGE_LOCK_KEY}
            ).scalar()
            if not got:
                return None
        counts = purge(session, now, st.settings)
        session.commit()
    return counts


async def purge_periodically(st: BackendState) -> None:
    """The app's background task: a round every ``purge_every_s``; a failure is logged and the
    next round tries again (a database fail-over must not end retention for good)."""
    every = st.settings.purge_every_s
    if every <= 0:
        return
    while True:
        await asyncio.sleep(every)
        started = time.perf_counter()
        try:
            now = datetime.now(UTC)
            counts = await asyncio.to_thread(purge_once, st, now)
        except Exception as exc:  # noqa: BLE001  # logged; the loop must survive anything
            log(logging.WARNING, "retention purge failed", reason=f"{type(exc).__name__}: {exc}")
            continue
        if counts is not None:
            ms = round((time.perf_counter() - started) * 1000, 1)
            log(logging.INFO, "retention purge", ms=ms, **counts)
