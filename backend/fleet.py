"""The fleet: what each workstation reported, when it was last seen, and revoking one.

Storage only (no FastAPI): backend.fleet_api serves it as JSON, backend.operator as pages.

Revocation is checked on every device request (``check_and_touch``), not only at login or
refresh, so an unexpired access token stops working the moment an admin revokes its device, in
every backend process (the flag is a database row all of them read). The same call records
"last seen", written at most once per ``SEEN_RESOLUTION_S`` per device so a busy workstation
costs one primary-key read per request, not a write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.auth import aware
from backend.db import Device, DeviceStatus, SecurityAlert, utcnow
from core.sync.status_report import DeviceStatusReport

SEEN_RESOLUTION_S = 30.0
STALE_AFTER_S = 24 * 3600  # a workstation not heard from for a day is highlighted
MAX_PAGE = 500
SortKey = Literal["label", "enrolled_at", "last_seen_at", "last_sync_at", "queue_length"]
SORT_KEYS: tuple[str, ...] = SortKey.__args__  # type: ignore[attr-defined]


class FleetError(Exception):
    """A refused fleet operation; ``status`` and ``code`` are the wire answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    label: str
    enrolled_at: datetime
    revoked: bool
    last_seen_at: datetime | None
    server_sync_at: datetime | None  # the server's: the last audit batch it stored from it
    reported_sync_at: datetime | None  # the workstation's own, from its status report
    reported_at: datetime | None
    app_version: str
    os: str
    queue_length: int | None
    models: dict[str, str]

    @property
    def last_sync_at(self) -> datetime | None:
        """The later of the server's and the workstation's own record of its last sync."""
        known = [aware(d) for d in (self.server_sync_at, self.reported_sync_at) if d is not None]
        return max(known, default=None)

    def age_s(self, at: datetime, field: str = "last_seen_at") -> float | None:
        value = getattr(self, field)
        return None if value is None else (at - aware(value)).total_seconds()

    def as_json(self) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return None if d is None else aware(d).isoformat()

        return {
            "device_id": self.device_id,
            "label": self.label,
            "enrolled_at": iso(self.enrolled_at),
            "revoked": self.revoked,
            "last_seen_at": iso(self.last_seen_at),
            "last_sync_at": iso(self.last_sync_at),
            "server_sync_at": iso(self.server_sync_at),
            "reported_sync_at": iso(self.reported_sync_at),
            "reported_at": iso(self.reported_at),
            "app_version": self.app_version,
            "os": self.os,
            "queue_length": self.queue_length,
            "models": self.models,
        }


@dataclass(frozen=True)
class Page:
    total: int
    items: list[DeviceRow]


def _upsert_status(session: Session, device_id: str, **values: Any) -> None:
    """Update the device's status row, inserting it the first time (two processes racing to
    insert: the loser updates)."""
    for _ in range(2):
        done = session.execute(
            update(DeviceStatus).where(DeviceStatus.device_id == device_id).values(**values)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            return
        try:
            with session.begin_nested():
                session.add(DeviceStatus(device_id=device_id, **values))
        except IntegrityError:
            continue
        return


def check_and_touch(session: Session, device_id: str, now: datetime | None = None) -> bool:
    """False for an unknown or revoked device; else note it as seen now and return True."""
    now = now or utcnow()
    row = session.execute(
        select(Device.revoked, DeviceStatus.last_seen_at)
        .outerjoin(DeviceStatus, DeviceStatus.device_id == Device.device_id)
        .where(Device.device_id == device_id)
    ).first()
    if row is None or row.revoked:
        return False
    seen = row.last_seen_at
    if seen is None or (now - aware(seen)).total_seconds() >= SEEN_RESOLUTION_S:
        _upsert_status(session, device_id, last_seen_at=now)
        session.commit()
    return True


def store_status(session: Session, device_id: str, report: DeviceStatusReport) -> None:
    """Keep the device's latest report (an older one arriving late does not replace it).

    Both times come from the workstation's clock, so neither may pass the server's now: a
    report dated a year ahead would otherwise win over every report of that year, and a last
    sync in the future would keep a device that stopped syncing looking fresh."""
    now = utcnow()
    reported_at = min(aware(report.reported_at), now)  # a time without a zone is UTC
    last_sync = report.last_sync_at
    last_sync_at = None if last_sync is None else min(aware(last_sync), reported_at)
    current = session.get(DeviceStatus, device_id)
    if (
        current is not None
        and current.reported_at is not None
        and aware(current.reported_at) > reported_at
    ):
        return
    _upsert_status(
        session,
        device_id,
        last_seen_at=now,
        reported_at=reported_at,
        app_version=report.app_version,
        os=report.os,
        reported_sync_at=last_sync_at,
        queue_length=report.queue_length,
        models=dict(report.models),
    )
    session.commit()


def _row(d: Device, s: DeviceStatus | None) -> DeviceRow:
    return DeviceRow(
        device_id=d.device_id,
        label=d.label,
        enrolled_at=d.enrolled_at,
        revoked=d.revoked,
        last_seen_at=s.last_seen_at if s else None,
        server_sync_at=d.last_sync_at,
        reported_sync_at=s.reported_sync_at if s else None,
        reported_at=s.reported_at if s else None,
        app_version=s.app_version if s else "",
        os=s.os if s else "",
        queue_length=s.queue_length if s else None,
        models=dict(s.models) if s and s.models else {},
    )


def _last_sync_sql() -> ColumnElement[Any]:
    """DeviceRow.last_sync_at in SQL (portable: no GREATEST in SQLite)."""
    server, reported = Device.last_sync_at, DeviceStatus.reported_sync_at
    return case((server >= reported, server), else_=func.coalesce(reported, server))


def list_devices(
    session: Session,
    *,
    revoked: bool | None = None,
    stale_after_s: float | None = None,
    search: str = "",
    app_version: str = "",
    sort: str = "label",
    descending: bool = False,
    limit: int = 100,
    offset: int = 0,
    now: datetime | None = None,
) -> Page:
    """One page of the fleet. ``stale_after_s``: only devices not seen for that long (or
    never); ``search``: a substring of the label or device id."""
    if sort not in SORT_KEYS:
        raise FleetError(422, "invalid_sort", f"cannot sort by {sort!r}: one of {SORT_KEYS}")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise FleetError(422, "invalid_page", f"limit must be 1..{MAX_PAGE}, offset >= 0")
    now = now or utcnow()
    where: list[ColumnElement[bool]] = []
    if revoked is not None:
        where.append(Device.revoked.is_(revoked))
    if stale_after_s is not None:
        cutoff = now - timedelta(seconds=stale_after_s)
        where.append(or_(DeviceStatus.last_seen_at.is_(None), DeviceStatus.last_seen_at < cutoff))
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(
            or_(Device.label.ilike(pattern, escape="\\"), Device.device_id.ilike(pattern, "\\"))
        )
    if app_version:
        where.append(DeviceStatus.app_version == app_version)
    base = select(Device, DeviceStatus).outerjoin(
        DeviceStatus, DeviceStatus.device_id == Device.device_id
    )
    base = base.where(*where)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    column = {
        "label": Device.label,
        "enrolled_at": Device.enrolled_at,
        "last_seen_at": DeviceStatus.last_seen_at,
        "last_sync_at": _last_sync_sql(),
        "queue_length": DeviceStatus.queue_length,
    }[sort]
    order = column.desc().nulls_last() if descending else column.asc().nulls_first()
    rows = session.execute(base.order_by(order, Device.device_id).limit(limit).offset(offset)).all()
    return Page(total=int(total), items=[_row(d, s) for d, s in rows])


def revoke(session: Session, device_id: str, admin: str, reason: str) -> DeviceRow:
    """Revoke a workstation: every token of it is refused from the next request on; the
    admin, the time and the reason are kept as a security alert (the admin audit trail)."""
    reason = reason.strip()
    if not reason:
        raise FleetError(422, "reason_required", "say why the device is revoked (reason)")
    device = session.get(Device, device_id)
    if device is None:
        raise FleetError(404, "device_not_found", f"no device {device_id!r}")
    if device.revoked:
        raise FleetError(409, "device_already_revoked", f"device {device_id!r} is revoked already")
    device.revoked = True
    session.add(
        SecurityAlert(
            device_id=device_id,
            code="device_revoked",
            detail={"admin": admin, "reason": reason[:500], "label": device.label},
        )
    )
    session.commit()
    return _row(device, session.get(DeviceStatus, device_id))


def alerts(session: Session, limit: int = 200) -> list[SecurityAlert]:
    """The newest security alerts first."""
    return list(
        session.scalars(select(SecurityAlert).order_by(SecurityAlert.id.desc()).limit(limit))
    )
