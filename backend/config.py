"""Backend settings: one frozen object built from arguments and ``DOCTORAI_BACKEND_*`` variables."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


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

    @property
    def effective_db_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'backend.sqlite3'}"

    @property
    def keys_dir(self) -> Path:
        return self.keys_dir_override or self.data_dir / "keys"

    def secret(self) -> str:
        """The JWT signing secret: given, from the environment, or a 0600 file in the data dir."""
        if self.jwt_secret:
            return self.jwt_secret
        env = os.environ.get("DOCTORAI_BACKEND_JWT_SECRET")
        if env:
            return env
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
        verify codes."""
        return self.mfa_key or os.environ.get("DOCTORAI_BACKEND_MFA_KEY") or self.secret()


def _flag(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"doctorai-backend: DOCTORAI_BACKEND_{name}={raw!r} is not 1/0, on/off")


def settings_from_env(
    data_dir: str | None = None, db_url: str | None = None, storage_url: str | None = None
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
        keys_dir_override=Path(os.environ["DOCTORAI_BACKEND_KEYS_DIR"])
        if os.environ.get("DOCTORAI_BACKEND_KEYS_DIR")
        else None,
    )
