"""The device status report a workstation sends to ``POST /api/v1/devices/status``.

IT's fleet view (backend.fleet) shows, per workstation, the app version, the OS, when it last
synced, how many items wait in its outbox and which model versions it has installed. The
workstation reports these itself, after a sync pass; the backend adds "last seen" from every
authenticated request.

Like core.sync.wire, this module is a wire schema shared by both ends: pydantic and the standard
library only, no I/O of its own (``send`` takes any object with the SyncClient's ``request``),
so the backend may import it without pulling in the workstation's sync engine. Nothing here
identifies a patient or a user.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.sync.wire import API_PREFIX

STATUS_PATH = "/devices/status"
STATUS_URL = API_PREFIX + STATUS_PATH
MAX_MODELS = 200  # a workstation has a handful of models; more is a client bug, refused
_ID = r"^[A-Za-z0-9._:+-]{1,128}$"


class DeviceStatusReport(BaseModel):
    """What one workstation says about itself; unknown fields are refused (a typo fails)."""

    model_config = ConfigDict(extra="forbid")
    app_version: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    os: str = Field(min_length=1, max_length=128, description="platform.platform(terse=True)")
    last_sync_at: datetime | None = Field(
        default=None, description="when this workstation last finished a sync pass"
    )
    queue_length: int = Field(ge=0, le=2**31 - 1, description="outbox items not sent yet")
    models: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_MODELS,
        description="installed model id -> version",
    )
    reported_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("models")
    @classmethod
    def _plain_ids(cls, models: dict[str, str]) -> dict[str, str]:
        bad = [k for k, v in models.items() if not (re.match(_ID, k) and re.match(_ID, v))]
        if bad:
            raise ValueError(f"model ids and versions must be plain identifiers: {bad[:5]}")
        return models


class StatusSender(Protocol):
    """The part of core.sync.client.SyncClient that sending needs (authorised request)."""

    def request(self, method: str, path: str, what: str, **kw: Any) -> Any: ...


def build_report(
    queue_length: int,
    models: Mapping[str, str],
    last_sync_at: datetime | None,
    app_version: str | None = None,
) -> DeviceStatusReport:
    """This machine's report; the app version defaults to the running core's."""
    if app_version is None:
        from core import __version__

        app_version = __version__
    return DeviceStatusReport(
        app_version=app_version,
        os=platform.platform(terse=True)[:128] or platform.system() or "unknown",
        last_sync_at=last_sync_at,
        queue_length=queue_length,
        models=dict(models),
    )


def send(client: StatusSender, report: DeviceStatusReport) -> None:
    """POST the report with the device's token (the client renews an expired one)."""
    client.request(
        "POST",
        STATUS_PATH,
        "sending the device status",
        content=report.model_dump_json(),
        headers={"Content-Type": "application/json"},
    )
