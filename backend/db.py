"""Database schema (SQLAlchemy 2 ORM) and engine setup: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
    }


class EnrolCode(Base):
    __tablename__ = "enrol_codes"
    __mapper_args__ = {"eager_defaults": False}  # noqa: RUF012 - no RETURNING of server defaults
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    device_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # a code IT puts in a machine-wide config enrols up to max_uses workstations (backend.auth);
    # server defaults only, so an INSERT that does not name them works on the older table too
    max_uses: Mapped[int] = mapped_column(Integer, server_default="1")
    uses: Mapped[int] = mapped_column(Integer, server_default="0")
    note: Mapped[str] = mapped_column(String(128), server_default="")


class Enrolment(Base):
    """One use of an enrolment code: the device it made, keyed by the workstation's nonce
    (hashed), so a retry of the same enrolment finds its device instead of burning a use."""

    __tablename__ = "enrolments"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Device(Base):
    __tablename__ = "devices"
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(128), default="")
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    head_index: Mapped[int | None] = mapped_column(BigInteger, default=None)
    head_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    last_sync_at: Mapped[datetime | None] = mapped_column(default=None)


class DeviceStatus(Base):
    """What a workstation last reported about itself and when it was last seen (backend.fleet):
    one row per device, a table of its own so the devices row the sync path reads stays as is."""

    __tablename__ = "device_status"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.device_id"), primary_key=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    reported_at: Mapped[datetime | None] = mapped_column(default=None)
    app_version: Mapped[str] = mapped_column(String(64), default="")
    os: Mapped[str] = mapped_column(String(128), default="")
    reported_sync_at: Mapped[datetime | None] = mapped_column(default=None)
    queue_length: Mapped[int | None] = mapped_column(Integer, default=None)
    models: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.device_id"))
    expires_at: Mapped[datetime]
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class RevokedRefreshFamily(Base):
    """A refresh-token family (one login and every rotation descended from it) revoked because
    one of its already-used tokens came back: someone else holds a copy. A table of its own, not
    a column of ``refresh_tokens`` (the Alembic migrations in backend/migrations create it)."""

    __tablename__ = "revoked_refresh_families"
    family: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyRecord(Base):
    """The first 2xx answer to (device, key): a replay gets exactly these bytes back."""

    __tablename__ = "idempotency"
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# Why the report index: a rollout report reads every counted result of a model by device. This
# index holds what it reads (``has_error`` included), in device then latency order, so the report
# is an index-only scan per assigned device whose latencies arrive sorted: no table scan, no
# sort of the model's results (2M results: 2.1 s -> 0.66 s; docs in backend/rollout_sql.py).
REPORT_INDEX_INCLUDE = (
    "created_at",
    "shadow",
    "decision",
    "model_version",
    "rollout_id",
    "has_error",
)
# An error is a result whose summary has a non-null "error": computed by the database, stored
# (PostgreSQL) so the report index can carry it. The same text is valid SQL on SQLite >= 3.38.
HAS_ERROR_SQL = "(summary ->> 'error') IS NOT NULL"


class Result(Base):
    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("device_id", "client_id"),
        Index(
            "ix_results_report",
            "model_id",
            "device_id",
            "latency_ms",
            postgresql_include=list(REPORT_INDEX_INCLUDE),
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    model_id: Mapped[str] = mapped_column(String(128), index=True)
    model_version: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))
    # when the current decision was made on the workstation; a later one replaces it
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    latency_ms: Mapped[float] = mapped_column(Float)
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    rollout_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    study_ref: Mapped[str | None] = mapped_column(String(128), default=None)
    summary: Mapped[dict[str, Any]]
    has_error: Mapped[bool] = mapped_column(Boolean, Computed(HAS_ERROR_SQL, persisted=True))


class ResultDecision(Base):
    """Every decision a workstation sent for a result, in the order made (the history)."""

    __tablename__ = "result_decisions"
    __table_args__ = (
        UniqueConstraint(
            "device_id", "client_id", "decided_at", "seq", name="uq_result_decisions_decision"
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the decision's place among the result's decisions on its workstation (summary's
    # decision_seq; 0 from clients that send none): orders two decisions made in one instant
    seq: Mapped[int] = mapped_column(Integer, server_default="0")


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("device_id", "event_id"),
        UniqueConstraint("device_id", "index"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(128))
    index: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    type: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    data: Mapped[dict[str, Any]]


class SecurityAlert(Base):
    __tablename__ = "security_alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    code: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BackendAdmin(Base):
    """An administrator of this backend: password, TOTP second factor and recovery codes.

    A table of its own (created, like every table, by the Alembic migrations in
    backend/migrations; create_all no longer makes the schema). The TOTP secret is AES-GCM
    ciphertext and the recovery codes are keyed hashes (backend.admins); ``version`` makes a
    sign-in's write a compare-and-set, so two requests racing with the same code cannot both
    succeed."""

    __tablename__ = "backend_admins"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    recovery_hashes: Mapped[list[str]] = mapped_column(JSON, default=list)
    last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)  # last TOTP step used
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(default=None)


class ModelPackage(Base):
    __tablename__ = "model_packages"
    __table_args__ = (UniqueConstraint("model_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    length: Mapped[int] = mapped_column(BigInteger)
    target_path: Mapped[str] = mapped_column(String(512), unique=True)
    storage_key: Mapped[str] = mapped_column(String(512))
    manifest: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TufTarget(Base):
    """A file listed in targets.json; packages point at stored artefacts, channels are small."""

    __tablename__ = "tuf_targets"
    target_path: Mapped[str] = mapped_column(String(512), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    length: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(512))
    custom: Mapped[dict[str, Any]]


class TufMetadata(Base):
    """Every signed version of every role, kept so consistent-snapshot clients can fetch any."""

    __tablename__ = "tuf_metadata"
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Rollout(Base):
    __tablename__ = "rollouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[str] = mapped_column(String(128))
    baseline_version: Mapped[str] = mapped_column(String(128))
    candidate_version: Mapped[str] = mapped_column(String(128))
    split: Mapped[float] = mapped_column(Float)
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    # guardrails, alpha and planned size (backend.rollout_monitor); paused: baseline for all
    design: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    paused_at: Mapped[datetime | None] = mapped_column(default=None)


class RolloutArm(Base):
    """One arm of a rollout (baseline + one or more candidates) and its share of devices."""

    __tablename__ = "rollout_arms"
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[str] = mapped_column(String(128))
    weight: Mapped[float] = mapped_column(Float)
    position: Mapped[int] = mapped_column(Integer)  # 0 is the baseline


class RolloutAssignment(Base):
    """The arm a device was given, stored when first served: the analysis counts a result by
    this row (intention to treat), never by the version or arm a client reports."""

    __tablename__ = "rollout_assignments"
    rollout_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    arm: Mapped[str] = mapped_column(String(32))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)


class RolloutEvent(Base):
    """What happened to a rollout and why (created, looks of the sequential test, guardrail
    breaches, pause, rollback, promote): the rollout's audit trail."""

    __tablename__ = "rollout_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    rollout_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[dict[str, Any]]
    at: Mapped[datetime] = mapped_column(default=utcnow)


class RateBucket(Base):
    """A token bucket shared by every backend process (backend.ops.RateLimiter): tokens left
    at ``stamp`` (epoch seconds), updated by one atomic upsert per request."""

    __tablename__ = "rate_buckets"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    stamp: Mapped[float] = mapped_column(Float, index=True)
    allowed: Mapped[bool] = mapped_column(Boolean, default=True)  # the last request's answer


def make_engine(url: str) -> Engine:
    """Create the engine and bring the schema to the newest Alembic revision (backend.migrate:
    safe when several processes start at once; a database made by create_all is adopted)."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    from backend.migrate import upgrade

    upgrade(engine)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)
