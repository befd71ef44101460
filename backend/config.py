"""Backend settings: one frozen object built from arguments and ``DOCTORAI_BACKEND_*`` variables."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A setting that makes this deployment unsafe or unusable; the message names the fix."""


def _env(name: str, default: str) -> str:
    return os.environ.get(f"DOCTORAI_BACKEND_{name}", default)


@dataclass(frozen=True)
class Settings:
    """Everything the app needs; tests build one per server with small limits."""

    data_dir: Path
    db_url: str = ""
    storage_url: str = ""  # "" = <data_dir>/artefacts; "s3://bucket/prefix" = S3
    s3_endpoint_url: str | None = None  # a local S3-compatible server (tests, MinIO)
    access_ttl_s: int = 900
    refresh_ttl_s: int = 30 * 86400
    rate_per_s: float = 50.0
    rate_burst: int = 100
    timestamp_expiry_s: int = 86400
    # /readyz turns 503 when timestamp.json expires within this (None: a quarter of its life)
    timestamp_health_margin_s: float | None = None
    snapshot_expiry_s: int = 7 * 86400
    targets_expiry_s: int = 90 * 86400
    root_expiry_s: int = 365 * 86400
    jwt_secret: str = field(default="", repr=False)
    # a static bearer token for Prometheus on /metrics ("" = only admin access tokens)
    metrics_token: str = field(default="", repr=False)
    keys_dir_override: Path | None = None  # e.g. a secrets mount holding only online keys
    # backend admins: admin endpoints need a token from a sign-in with a second factor
    admin_mfa: bool = True
    # ``doctorai-backend admin-token`` (no second factor) only when IT allows it explicitly
    admin_break_glass: bool = False
    admin_session_ttl_s: int = 900
    admin_max_failures: int = 5  # consecutive failed sign-ins before the account locks
    admin_lockout_s: int = 900
    # key material for the admins' TOTP secrets and recovery codes ("" = the JWT secret)
    mfa_key: str = field(default="", repr=False)
    # uvicorn worker processes of ``serve`` (each its own app; state shared through the database)
    workers: int = 1
    # addresses of the load balancers whose X-Forwarded-For is believed ("" = none; "*" = any)
    forwarded_allow_ips: str = ""
    # retention (backend.retention): rows older than these are deleted by ``purge``
    idempotency_days: float = 30.0  # replays of a batch older than this are stored again as new
    token_grace_days: float = 7.0  # used/expired refresh tokens and enrolment codes, after expiry
    rate_bucket_idle_s: float = 3600.0  # shared rate-limit buckets untouched this long
    metric_files_idle_s: float = 86400.0  # metric files of dead worker processes
    purge_every_s: float = 3600.0  # how often one process runs the purge (0 = never)
    # how often each process judges the open rollouts' guardrails (backend.rollout_schedule)
    rollout_check_s: float = 3600.0  # 0 = never (reports and ``rollout check`` still judge)

    @property
    def multi_process(self) -> bool:
        """PostgreSQL or several workers: more than one process serves this database."""
        return self.workers > 1 or not self.effective_db_url.startswith("sqlite")

    def require_shared_secret(self) -> None:
        """A multi-process deployment needs the JWT secret configured: a file in each
        process's data directory differs between ECS tasks, so each would refuse the others'
        tokens. Raises ConfigError naming the variable."""
        if self.multi_process and not (
            self.jwt_secret or os.environ.get("DOCTORAI_BACKEND_JWT_SECRET")
        ):
            why = (
                f"{self.workers} worker processes"
                if self.workers > 1
                else "a PostgreSQL database (shared by several processes)"
            )
            raise ConfigError(
                f"DOCTORAI_BACKEND_JWT_SECRET is not set: this backend runs with {why}, and "
                "every process must sign and verify tokens with the same secret. Set "
                "DOCTORAI_BACKEND_JWT_SECRET (at least 32 random characters, e.g. from a "
                "secrets manager) for every process; only a single-process SQLite server may "
                "keep a generated secret in <data dir>/jwt.secret"
            )

    @property
    def effective_db_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'backend.sqlite3'}"

    @property
    def keys_dir(self) -> Path:
        return self.keys_dir_override or self.data_dir / "keys"

    def secret(self) -> str:
        """The JWT signing secret: given, from the environment, or (single-process SQLite
        servers only, see require_shared_secret) a 0600 file in the data dir."""
        if self.jwt_secret:
            return self.jwt_secret
        env = os.environ.get("DOCTORAI_BACKEND_JWT_SECRET")
        if env:
            return env
        self.require_shared_secret()
        path = self.data_dir / "jwt.secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return path.read_text().strip()

    def mfa_key_material(self) -> str:
        """What the admins' TOTP secrets are encrypted under (through HKDF, backend.admins):
        ``mfa_key`` or ``DOCTORAI_BACKEND_MFA_KEY`` when IT keeps it apart from the JWT
        secret, else the JWT secret itself, so every replica that verifies tokens can also
        verify codes. Without either, the JWT secret's rule applies (configured when
        multi-process), so no replica derives the key from a file of its own."""
        return self.mfa_key or os.environ.get("DOCTORAI_BACKEND_MFA_KEY") or self.secret()


def _flag(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"doctorai-backend: DOCTORAI_BACKEND_{name}={raw!r} is not 1/0, on/off")


def _number(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(
            f"doctorai-backend: DOCTORAI_BACKEND_{name}={raw!r} is not a number"
        ) from None
    if value < 0:
        raise SystemExit(f"doctorai-backend: DOCTORAI_BACKEND_{name}={raw!r} is negative")
    return value


def settings_from_env(
    data_dir: str | None = None,
    db_url: str | None = None,
    storage_url: str | None = None,
    workers: int | None = None,
) -> Settings:
    """Arguments win over environment variables, which win over defaults."""
    return Settings(
        data_dir=Path(data_dir or _env("DATA_DIR", "backend-data")).resolve(),
        db_url=db_url or _env("DB_URL", ""),
        storage_url=storage_url or _env("STORAGE_URL", ""),
        s3_endpoint_url=os.environ.get("DOCTORAI_BACKEND_S3_ENDPOINT_URL") or None,
        rate_per_s=float(_env("RATE_PER_S", "50")),
        rate_burst=int(_env("RATE_BURST", "100")),
        metrics_token=_env("METRICS_TOKEN", ""),
        admin_mfa=_flag("ADMIN_MFA", True),
        admin_break_glass=_flag("ADMIN_BREAK_GLASS", False),
        workers=workers or int(_number("WORKERS", 1)) or 1,
        forwarded_allow_ips=_env("FORWARDED_ALLOW_IPS", "").strip(),
        idempotency_days=_number("IDEMPOTENCY_DAYS", 30.0),
        token_grace_days=_number("TOKEN_GRACE_DAYS", 7.0),
        rate_bucket_idle_s=_number("RATE_BUCKET_IDLE_S", 3600.0),
        metric_files_idle_s=_number("METRIC_FILES_IDLE_S", 86400.0),
        purge_every_s=_number("PURGE_EVERY_S", 3600.0),
        rollout_check_s=_number("ROLLOUT_CHECK_S", 3600.0),
        timestamp_health_margin_s=_number("TIMESTAMP_HEALTH_MARGIN_S", 0.0) or None,
        keys_dir_override=Path(os.environ["DOCTORAI_BACKEND_KEYS_DIR"])
        if os.environ.get("DOCTORAI_BACKEND_KEYS_DIR")
        else None,
    )
