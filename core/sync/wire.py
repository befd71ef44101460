"""Wire schemas of the sync API (``/api/v1``), shared by the workstation and the backend.

This is the one module both sides import, so a field renamed here breaks both at once instead of
silently drifting apart. It holds pydantic models only: no I/O, no Qt, no backend code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

API_PREFIX = "/api/v1"
IDEMPOTENCY_HEADER = "Idempotency-Key"
GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first event (index 0) of a workstation's audit chain."""

MAX_BATCH_ITEMS = 1000

_HEX64 = r"^[0-9a-f]{64}$"
_ID = r"^[A-Za-z0-9._:-]{1,128}$"


class _Wire(BaseModel):
    """Unknown fields are refused, so a typo on either side fails loudly."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Wire):
    code: str = Field(description="stable machine-readable code, e.g. 'audit_chain_fork'")
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(_Wire):
    error: ErrorDetail


# --- enrolment and tokens -------------------------------------------------------------------


class EnrolRequest(_Wire):
    code: str = Field(min_length=4, max_length=64, description="enrolment code from an admin")
    label: str = Field(default="", max_length=128, description="workstation name shown to admins")
    nonce: str | None = Field(
        default=None,
        min_length=32,
        max_length=128,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="a secret random value the workstation makes once per enrolment and sends "
        "again on every retry: the same (code, nonce) gets the same credentials back instead of "
        "'code already used' when the first answer was lost",
    )


class EnrolResponse(_Wire):
    device_id: str
    device_secret: str = Field(description="store in the OS keyring; shown only once")


class TokenRequest(_Wire):
    device_id: str = Field(max_length=128)
    device_secret: str = Field(max_length=256)


class RefreshRequest(_Wire):
    refresh_token: str = Field(max_length=4096)


class TokenResponse(_Wire):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds the access token is valid")


# --- upstream: results and audit events -----------------------------------------------------


class ResultItem(_Wire):
    """One AI result as the radiologist saw it; no patient identifiers (only a hashed study ref)."""

    client_id: str = Field(pattern=_ID, description="client-generated id, unique per workstation")
    created_at: datetime
    model_id: str = Field(pattern=_ID)
    model_version: str = Field(pattern=_ID)
    decision: Literal["accepted", "rejected", "none"] = "none"
    decided_at: datetime | None = Field(
        default=None, description="when the decision was made; the latest one wins"
    )
    latency_ms: float = Field(ge=0, le=3_600_000)
    shadow: bool = Field(default=False, description="computed in shadow mode, not shown")
    rollout_id: int | None = None
    study_ref: str | None = Field(default=None, max_length=128, description="salted hash only")
    summary: dict[str, Any] = Field(default_factory=dict, description="labels/scores, no PHI")


class ResultsBatch(_Wire):
    items: list[ResultItem] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class AuditEventItem(_Wire):
    """One event of the workstation's hash chain: ``hash`` covers ``prev_hash`` and the event."""

    event_id: str = Field(pattern=_ID)
    index: int = Field(ge=0)
    prev_hash: str = Field(pattern=_HEX64)
    hash: str = Field(pattern=_HEX64)
    created_at: datetime
    type: str = Field(max_length=64)
    actor: str = Field(default="", max_length=128)
    data: dict[str, Any] = Field(default_factory=dict)


class AuditBatch(_Wire):
    """Events in chain order; the first must extend the server's stored head for this device."""

    events: list[AuditEventItem] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class ChainHead(_Wire):
    index: int
    hash: str


class BatchResponse(_Wire):
    stored: list[str] = Field(description="client ids stored by this request")
    duplicates: list[str] = Field(description="client ids the server already held")
    head: ChainHead | None = Field(default=None, description="audit batches: the new chain head")


# --- downstream: models and rollouts --------------------------------------------------------


class ModelEntry(_Wire):
    model_id: str
    version: str
    sha256: str
    length: int
    target_path: str = Field(description="TUF target path of the package")
    manifest: dict[str, Any]
    created_at: datetime


class ModelCatalogue(_Wire):
    models: list[ModelEntry]


class Assignment(_Wire):
    rollout_id: int
    model_id: str
    arm: Literal["baseline", "candidate"]
    version: str = Field(description="the version whose results are shown")
    shadow_version: str | None = Field(default=None, description="also run, not shown")


class AssignmentList(_Wire):
    assignments: list[Assignment]


class ChannelFile(_Wire):
    """Content of the signed TUF target ``channels/<model_id>.json``: the version to run."""

    model_id: str
    version: str
    target_path: str
    rollout: dict[str, Any] | None = None
