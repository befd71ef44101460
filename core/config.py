"""Settings: the machine-wide file (IT) is read first, the user's file overrides it.

IT may lock keys: ``locked = ["sync.server_url", ...]`` in the machine file makes those keys
immune to the user's file. A malformed file is reported, never silently ignored in part.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.paths import machine_config_path, user_config_path


class ConfigError(Exception):
    """A settings file could not be read or does not validate."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ViewerSettings(_Section):
    theme: Literal["dark", "light"] = "dark"
    load_workers: int = Field(default=0, ge=0, le=64)  # 0: choose from the CPU count
    hide_patient_info: bool = False
    # IT's hanging protocols (TOML, core/viewer/hanging.py), tried before the shipped ones
    hanging_protocols: str | None = None
    # a study opened is hung by its protocol at once, with its priors (desktop.auto_hang)
    hang_on_open: bool = True
    # how long a PACS node's answer to "the studies of this patient" is reused, in seconds
    # (switching studies does not ask again; the study list's "Refresh priors" does); 0: never
    priors_cache_s: float = Field(default=600.0, ge=0)


class InferenceSettings(_Section):
    device: Literal["auto", "cpu", "gpu"] = "auto"
    memory_budget_mb: int = Field(default=4096, ge=64)
    preload: list[str] = Field(default_factory=list)
    model_dirs: list[str] = Field(default_factory=list)
    cache_entries: int = Field(default=256, ge=0)
    # heatmap values at or below this fraction of a map's peak are not coloured at all, and at
    # most the hottest tenth of an image is (core.inference.heatmap.cut); 0 shows the whole map
    heatmap_floor: float = Field(default=0.5, ge=0.0, le=0.95)


class SecuritySettings(_Section):
    lock_timeout_min: float = Field(default=10.0, gt=0)
    max_failed_logins: int = Field(default=5, ge=1)
    lockout_min: float = Field(default=15.0, gt=0)
    # roles that must use a second factor (TOTP) at sign-in and unlock, e.g. ["admin"]
    mfa_required_roles: list[Literal["radiologist", "technologist", "admin", "auditor"]] = Field(
        default_factory=list
    )
    password_min_length: int = Field(default=10, ge=8, le=128)
    # days after which a password must be changed at sign-in (0: never)
    password_max_age_days: int = Field(default=0, ge=0)


class BackupSettings(_Section):
    # IT's X25519 recovery public key (base64, 32 bytes raw) that backups seal their keys to
    recovery_public_key: str | None = None


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=64 * 1024)
    backups: int = Field(default=5, ge=1, le=100)


class SyncSettings(_Section):
    server_url: str | None = None
    enrolment_code: str | None = None
    ca_bundle: str | None = None
    https_proxy: str | None = None
    # the TUF root metadata IT distributes with the installer (the trust anchor of model
    # updates); default: <profile>/tuf/trusted_root.json, else resources/tuf/root.json
    tuf_root: str | None = None
    interval_s: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=200, ge=1, le=10_000)


class PacsNode(_Section):
    name: str
    url: str
    auth: Literal["none", "basic", "bearer"] = "none"
    username: str | None = None
    ca_bundle: str | None = None


class Settings(_Section):
    viewer: ViewerSettings = Field(default_factory=ViewerSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    logging: LogSettings = Field(default_factory=LogSettings)
    pacs: list[PacsNode] = Field(default_factory=list)
    pacs_cache_gb: float = Field(default=10.0, gt=0)  # retrieve cache limit, LRU by series
    pacs_cache_encrypted: bool = True  # retrieved studies AES-GCM encrypted at rest
    locked: list[str] = Field(default_factory=list)


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Cannot read settings file '{path}': {exc}") from exc


def _merge(base: dict[str, Any], over: dict[str, Any], locked: set[str], prefix: str = "") -> None:
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        if dotted in locked or key == "locked":
            continue  # IT's locked keys and the lock list itself stay as the machine file says
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, locked, prefix=f"{dotted}.")
        else:
            base[key] = value


def _plain(exc: ValidationError) -> str:
    """pydantic's errors as 'key: message' pairs (no documentation links)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or '(top level)'}: {err['msg']}"
        for err in exc.errors()
    )


def _validate(data: dict[str, Any], where: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"Invalid settings in {where}: {_plain(exc)}") from exc


def _is_setting(dotted: str) -> bool:
    """Whether ``dotted`` (e.g. "sync.server_url" or a whole section "sync") names a setting."""
    model: type[BaseModel] = Settings
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif i != len(parts) - 1:
            return False
    return True


# The GUI resolves the settings once at start and pins them here, so the background jobs that
# read settings (model discovery, sync) see the same ones instead of failing on their own.
_pinned: Settings | None = None


def pin_settings(settings: Settings | None) -> None:
    global _pinned
    _pinned = settings


def load_settings(machine_file: Path | None = None, user_file: Path | None = None) -> Settings:
    """Read and validate the layered settings; an error names the file that holds it."""
    if _pinned is not None and machine_file is None and user_file is None:
        return _pinned
    machine_path = machine_file or machine_config_path()
    user_path = user_file or user_config_path()
    machine = _read_toml(machine_path)
    _validate(machine, f"the machine-wide file '{machine_path}'")
    unknown = [k for k in machine.get("locked", []) if not _is_setting(str(k))]
    if unknown:  # a typo here would silently leave the setting IT meant to lock unlocked
        raise ConfigError(
            f"Invalid settings in the machine-wide file '{machine_path}': locked names "
            f"{', '.join(repr(k) for k in unknown)}, which is not a setting"
        )
    user = _read_toml(user_path)
    locked = {str(k) for k in machine.get("locked", [])}
    merged: dict[str, Any] = {
        k: (dict(v) if isinstance(v, dict) else v) for k, v in machine.items()
    }
    _merge(merged, user, locked)
    return _validate(merged, f"the user file '{user_path}'")


def load_settings_keeping_it(
    machine_file: Path | None = None, user_file: Path | None = None
) -> tuple[Settings, str | None]:
    """The settings, or, when only the user's own file is wrong, IT's machine-wide settings
    alone (their locked keys still hold), with the reason to show the user. A wrong machine
    file still raises: there is nothing trustworthy to fall back to."""
    try:
        return load_settings(machine_file, user_file), None
    except ConfigError as exc:
        machine_path = machine_file or machine_config_path()
        machine = _validate(_read_toml(machine_path), f"the machine-wide file '{machine_path}'")
        return machine, f"{exc}. Your own settings are ignored until this is fixed."
