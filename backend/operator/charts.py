"""The counts behind the operator pages' charts, each one GROUP BY in SQL over every active device.

The pages' tables list at most ``fleet.MAX_PAGE`` rows; the charts must describe the whole fleet,
so they count in the database instead of over the listed rows. Each bucket is a CASE computed in
a subquery and grouped in the outer query: grouping by the CASE itself would repeat its bound
parameters in GROUP BY, which PostgreSQL does not recognise as the selected expression.

Ages are compared with cut-off times computed here (``last_sync > now - 15 min``), not computed
in SQL, so the same statement runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from backend import fleet
from backend.db import Device, DeviceStatus, utcnow
from backend.operator.plot import Bar

MINUTE, HOUR, DAY = 60, 3600, 86400
# (label, upper bound of the age in seconds); an age falls in the first bucket it is under
SYNC_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("< 15 min", 15 * MINUTE),
    ("15 min – 1 h", HOUR),
    ("1 – 6 h", 6 * HOUR),
    ("6 – 24 h", DAY),
    ("1 – 7 days", 7 * DAY),
    ("> 7 days", None),
)
NEVER = "never"
# (label, largest queue length in it)
QUEUE_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("0", 0),
    ("1 – 10", 10),
    ("11 – 100", 100),
    ("101 – 1000", 1000),
    ("> 1000", None),
)
UNKNOWN = "unknown"
OTHER = "(other)"  # parenthesised, unlike a real app version
NOT_REPORTED = "(not reported)"
TOP_VERSIONS = 8


def _active() -> Select[Any]:
    """Active (not revoked) devices with their status row, if any."""
    return (
        select(Device.device_id)
        .outerjoin(DeviceStatus, DeviceStatus.device_id == Device.device_id)
        .where(Device.revoked.is_(False))
    )


def _count_by(session: Session, bucket: ColumnElement[int], n: int) -> list[int]:
    """How many active devices fall in each of the ``n`` buckets numbered by ``bucket``."""
    inner = _active().add_columns(bucket.label("bucket")).subquery()
    rows = session.execute(
        select(inner.c.bucket, func.count()).group_by(inner.c.bucket).order_by(inner.c.bucket)
    ).all()
    counts = [0] * n
    for index, count in rows:
        counts[int(index)] += int(count)
    return counts


def sync_ages(session: Session, now: datetime | None = None) -> list[Bar]:
    """Time since each active device's last sync (the later of the server's audit batch and the
    workstation's own report, as the table shows it), in ``SYNC_BUCKETS`` and "never".

    A bucket wholly past ``fleet.STALE_AFTER_S``, and "never", is a warning, as the table's
    highlighted rows are."""
    now = now or utcnow()
    last = fleet._last_sync_sql()  # the table's own definition of "last sync"
    never = len(SYNC_BUCKETS)
    whens: list[tuple[ColumnElement[bool], int]] = [(last.is_(None), never)]
    lower = 0
    warn: list[bool] = []
    for i, (_label, upper) in enumerate(SYNC_BUCKETS):
        warn.append(lower >= fleet.STALE_AFTER_S)
        if upper is not None:
            whens.append((last > now - timedelta(seconds=upper), i))
            lower = upper
    counts = _count_by(session, case(*whens, else_=never - 1), never + 1)
    labels = [label for label, _ in SYNC_BUCKETS] + [NEVER]
    return [
        Bar(label, count, w) for label, count, w in zip(labels, counts, [*warn, True], strict=True)
    ]


def queue_lengths(session: Session) -> list[Bar]:
    """Outbox lengths the active workstations last reported, in ``QUEUE_BUCKETS``; "unknown"
    for a device that never sent a status report."""
    queue = DeviceStatus.queue_length
    unknown = len(QUEUE_BUCKETS)
    whens: list[tuple[ColumnElement[bool], int]] = [(queue.is_(None), unknown)]
    for i, (_label, most) in enumerate(QUEUE_BUCKETS):
        if most is not None:
            whens.append((queue <= most, i))
    counts = _count_by(session, case(*whens, else_=unknown - 1), unknown + 1)
    labels = [label for label, _ in QUEUE_BUCKETS] + [UNKNOWN]
    return [Bar(label, count) for label, count in zip(labels, counts, strict=True)]


def app_versions(session: Session, top: int = TOP_VERSIONS) -> list[Bar]:
    """Active devices per app version: the ``top`` most common (ties by name), then "(other)"
    for the rest and "(not reported)" for devices that never reported one; empty bars left
    out."""
    inner = _active().add_columns(DeviceStatus.app_version.label("version")).subquery()
    rows = session.execute(select(inner.c.version, func.count()).group_by(inner.c.version)).all()
    unknown = sum(int(n) for v, n in rows if not v)
    known = sorted(((str(v), int(n)) for v, n in rows if v), key=lambda vn: (-vn[1], vn[0]))
    bars = [Bar(v, n) for v, n in known[:top]]
    rest = sum(n for _v, n in known[top:])
    if rest:
        bars.append(Bar(OTHER, rest))
    if unknown:
        bars.append(Bar(NOT_REPORTED, unknown))
    return bars
