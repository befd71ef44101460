"""Signed model updates with The Update Framework (python-tuf's ngclient ``Updater``).

Trust starts from the root metadata shipped with the installer; everything after that is
verified by ngclient: signatures and thresholds, version numbers never going back (rollback),
expiry (a frozen mirror), snapshot/targets consistency (mix-and-match), and each download's
signed length and hash (tampering, endless data). Which version to run is itself a signed
target, ``channels/<model>.json``, published by the backend (backend/catalogue.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import ValidationError
from tuf.api import exceptions as tuf_exc

# documented import path; the package re-exports without __all__
from tuf.ngclient import Updater, UpdaterConfig  # type: ignore[attr-defined]

from core.inference.model_store import (
    HealthCheck,
    ModelInstallError,
    ModelStore,
    default_health_check,
)
from core.sync.client import check_server_url, make_http
from core.sync.credentials import CredentialError
from core.sync.errors import AuthFailedError, SyncError, TransientError
from core.sync.tuf_fetch import HttpxFetcher, TargetAccessError, TokenProvider, download_verified
from core.sync.wire import Assignment, ChannelFile

DEFAULT_MAX_PACKAGE_BYTES = 4 * 2**30
MAX_CHANNEL_BYTES = 64 * 1024

Reason = Literal[
    "signature",
    "rollback",
    "expired",
    "hash",
    "endless_data",
    "too_large",
    "metadata",
    "network",
    "not_published",
    "package",
    "revoked",
    "not_enrolled",
]


class ModelUpdateError(SyncError):
    """An update refused or impossible; ``reason`` is a stable code, the message says why."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class UpdateResult:
    model_id: str
    action: Literal["installed", "up_to_date", "pinned"]
    version: str
    previous: str | None
    message: str
    shadow: str | None = None  # the rollout candidate run in shadow mode, if any


def explain(exc: Exception, what: str) -> ModelUpdateError:
    """A clear, specific message for each kind of TUF refusal, and for the update server
    refusing this workstation its packages (revoked, or not enrolled/signed in)."""
    tail = "; the installed model is unchanged"
    access = _explain_access(exc, what, tail)
    if access is not None:
        return access
    if isinstance(exc, tuf_exc.ExpiredMetadataError):
        return ModelUpdateError(
            "expired",
            f"{what}: the update server's signed metadata has expired ({exc}): the server may be "
            "frozen or replaying old data (freeze attack), or a clock is wrong" + tail,
        )
    if isinstance(exc, tuf_exc.BadVersionNumberError):
        return ModelUpdateError(
            "rollback",
            f"{what}: the update server offered metadata older than, or inconsistent with, what "
            f"this workstation already trusts ({exc}): a rollback or mix-and-match attack" + tail,
        )
    if isinstance(exc, tuf_exc.UnsignedMetadataError):
        return ModelUpdateError(
            "signature",
            f"{what}: update metadata is not signed by the trusted keys ({exc}): it was "
            "tampered with or comes from an impostor" + tail,
        )
    if isinstance(exc, tuf_exc.DownloadLengthMismatchError):
        return ModelUpdateError(
            "endless_data",
            f"{what}: the server sent more data than the signed length allows ({exc}): download "
            "stopped (endless-data attack or a broken mirror)" + tail,
        )
    if isinstance(exc, tuf_exc.LengthOrHashMismatchError):
        return ModelUpdateError(
            "hash",
            f"{what}: downloaded data does not match its signed length/hash ({exc}): it was "
            "tampered with or corrupted in transit" + tail,
        )
    if isinstance(exc, tuf_exc.RepositoryError):
        return ModelUpdateError(
            "metadata", f"{what}: the update server's metadata was refused ({exc})" + tail
        )
    if isinstance(exc, tuf_exc.DownloadError | httpx.TransportError):
        return ModelUpdateError(
            "network", f"{what}: the update server could not be reached ({exc}); try later" + tail
        )
    raise exc


def _explain_access(exc: Exception, what: str, tail: str) -> ModelUpdateError | None:
    """Refusals of this workstation itself: by the server on a target (401), or by the sign-in
    that should have given it a token (revoked, not enrolled, server unreachable)."""
    if isinstance(exc, ModelUpdateError):
        return exc
    if isinstance(exc, TargetAccessError):
        if exc.code == "device_revoked":
            return ModelUpdateError(
                "revoked",
                f"{what}: the update server refuses this workstation model packages because it "
                f"was revoked by an administrator ({exc.detail}); ask IT to enrol it again" + tail,
            )
        why = "it did not sign in" if exc.code == "auth_required" else "its sign-in was refused"
        return ModelUpdateError(
            "not_enrolled",
            f"{what}: the update server sends model packages only to enrolled workstations and "
            f"{why} ({exc.code}: {exc.detail}); enrol it with a code from your administrator"
            + tail,
        )
    if isinstance(exc, CredentialError):
        return ModelUpdateError("not_enrolled", f"{what}: {exc}" + tail)
    if isinstance(exc, AuthFailedError):  # the server refused the device's login or refresh
        # device_revoked, or credentials_invalid (a device the server does not know)
        reason: Reason = "revoked" if exc.code == "device_revoked" else "not_enrolled"
        return ModelUpdateError(
            reason, f"{what}: the update server refused this workstation's sign-in ({exc})" + tail
        )
    if isinstance(exc, TransientError):
        return ModelUpdateError(
            "network", f"{what}: signing in to the update server failed ({exc}); try later" + tail
        )
    if isinstance(exc, SyncError):  # a setup problem (TLS, proxy) or a refused login request
        return ModelUpdateError(
            "network", f"{what}: signing in to the update server failed ({exc})" + tail
        )
    return None


def shipped_version(model_id: str) -> str | None:
    """The version the installer shipped in the zoo (no download needed when it is wanted)."""
    from models.discovery import ZOO_DIR
    from models.manifest import MANIFEST_NAME

    try:
        raw = json.loads((ZOO_DIR / model_id / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(raw.get("version")) if raw.get("id") == model_id else None


class ModelUpdater:
    """Refresh TUF metadata, read a model's channel, and install the version it names."""

    def __init__(
        self,
        server_url: str,
        trusted_root: bytes,
        profile: Path,
        *,
        ca_bundle: str | None = None,
        https_proxy: str | None = None,
        timeout: float = 60.0,
        max_package_bytes: int = DEFAULT_MAX_PACKAGE_BYTES,
        health_check: HealthCheck = default_health_check,
        assignment: Callable[[str], Assignment | None] | None = None,
        access_token: TokenProvider | None = None,
    ) -> None:
        self.server_url = check_server_url(server_url)
        self.trusted_root = trusted_root
        self.metadata_dir = profile / "tuf"
        self.store = ModelStore(profile / "models")
        self.max_package_bytes = max_package_bytes
        self.health_check = health_check
        self.assignment = assignment
        self._http = make_http(ca_bundle, https_proxy, timeout)
        # metadata: public and signed, no token; targets: the device's token (renewed on 401)
        self._fetcher = HttpxFetcher(self._http)
        self._target_fetcher = HttpxFetcher(self._http, access_token)
        self._updater: Updater | None = None

    def close(self) -> None:
        self._http.close()

    def updater(self) -> Updater:
        """One refreshed Updater per run (ngclient refreshes once per instance)."""
        if self._updater is None:
            self.metadata_dir.mkdir(parents=True, exist_ok=True)
            try:
                up = Updater(
                    str(self.metadata_dir),
                    f"{self.server_url}/tuf/metadata/",
                    str(self.store.staging),
                    f"{self.server_url}/tuf/targets/",
                    fetcher=self._fetcher,
                    config=UpdaterConfig(app_user_agent="DoctorAI-Workstation"),
                    bootstrap=self.trusted_root,
                )
                up.refresh()
            except (tuf_exc.RepositoryError, tuf_exc.DownloadError) as exc:
                raise explain(exc, "refreshing model update metadata") from exc
            except ValueError as exc:  # a shipped root that is not root metadata at all
                raise ModelUpdateError(
                    "signature",
                    f"the trusted root metadata shipped with the installer is invalid: {exc}",
                ) from exc
            self._updater = up
        return self._updater

    def _download(self, target_path: str, dest: Path, limit: int, what: str) -> Path:
        up = self.updater()
        try:
            info = up.get_targetinfo(target_path)
        except (tuf_exc.RepositoryError, tuf_exc.DownloadError) as exc:
            raise explain(exc, what) from exc
        if info is None:
            raise ModelUpdateError(
                "not_published", f"{what}: {target_path!r} is not in the signed catalogue"
            )
        if info.length > limit:
            raise ModelUpdateError(
                "too_large",
                f"{what}: {target_path!r} is {info.length} bytes, over the limit of {limit}; "
                "the installed model is unchanged",
            )
        base = f"{self.server_url}/tuf/targets/"
        try:
            return download_verified(self._target_fetcher, base, info, dest)
        except (tuf_exc.RepositoryError, tuf_exc.DownloadError, SyncError) as exc:
            raise explain(exc, what) from exc

    def channel(self, model_id: str) -> ChannelFile:
        stage = self.store.new_staging_dir()
        try:
            path = self._download(
                f"channels/{model_id}.json",
                stage / "channel.json",
                MAX_CHANNEL_BYTES,
                f"reading the update channel of model {model_id!r}",
            )
            try:
                channel = ChannelFile.model_validate_json(path.read_bytes())
            except ValidationError as exc:
                raise ModelUpdateError(
                    "package", f"model {model_id!r}: channel file invalid: {exc}"
                ) from exc
        finally:
            import shutil

            shutil.rmtree(stage, ignore_errors=True)
        if channel.model_id != model_id:
            raise ModelUpdateError(
                "package", f"channel for {model_id!r} names model {channel.model_id!r}"
            )
        return channel

    def _assignment(self, model_id: str) -> Assignment | None:
        if self.assignment is None:
            return None
        try:
            return self.assignment(model_id)
        except SyncError as exc:
            raise ModelUpdateError(
                "network", f"model {model_id!r}: rollout assignment unavailable ({exc})"
            ) from exc

    def plan(self, model_id: str) -> tuple[str, str, tuple[str, str, int] | None]:
        """(version, target path) to run, honouring this workstation's rollout arm, and the
        (version, target path, rollout id) to run in shadow mode beside it, if any."""
        channel = self.channel(model_id)
        ro = channel.rollout or {}
        got = self._assignment(model_id) if ro else None
        if got is None or got.rollout_id != ro.get("id"):
            return channel.version, channel.target_path, None
        targets = self._candidate_targets(ro)
        if ro.get("shadow"):
            shadow = got.shadow_version
            if shadow is not None and shadow in targets:
                return (
                    channel.version,
                    channel.target_path,
                    (shadow, targets[shadow], int(ro["id"])),
                )
        elif got.version in targets:
            return got.version, targets[got.version], None
        return channel.version, channel.target_path, None

    @staticmethod
    def _candidate_targets(ro: dict[str, Any]) -> dict[str, str]:
        """Candidate version -> target path from the signed channel's rollout: every arm of a
        K-arm rollout (``candidates``), and the first candidate as channels before K arms had
        it. Only versions the signed file names can be installed, whatever the assignment says."""
        out: dict[str, str] = {}
        if "candidate" in ro and "candidate_target_path" in ro:
            out[str(ro["candidate"])] = str(ro["candidate_target_path"])
        more = ro.get("candidates")
        if isinstance(more, dict):
            out.update({str(v): str(t) for v, t in more.items()})
        return out

    def wanted(self, model_id: str) -> tuple[str, str]:
        """(version, target path) this workstation should run, honouring its rollout arm."""
        version, target, _shadow = self.plan(model_id)
        return version, target

    def _fetch_and_install(
        self, model_id: str, version: str, target: str, shadow_rollout: int | None = None
    ) -> None:
        what = "shadow model" if shadow_rollout is not None else "model"
        stage = self.store.new_staging_dir()
        try:
            archive = self._download(
                target,
                stage / "package.tar.gz",
                self.max_package_bytes,
                f"downloading {what} {model_id!r} {version}",
            )
            try:
                if shadow_rollout is None:
                    self.store.install(model_id, version, archive, self.health_check)
                else:
                    self.store.install_shadow(
                        model_id, version, archive, shadow_rollout, self.health_check
                    )
            except ModelInstallError as exc:
                raise ModelUpdateError("package", str(exc)) from exc
        finally:
            import shutil

            shutil.rmtree(stage, ignore_errors=True)

    def _update_shadow(self, model_id: str, shadow: tuple[str, str, int] | None) -> str:
        """Install, keep or stop the shadow version; a plain-words note ("" if unchanged)."""
        try:
            have = self.store.shadow(model_id)
        except ModelInstallError:
            have = None  # an unreadable pointer is replaced below (or removed)
        if shadow is None:
            if self.store.clear_shadow(model_id):
                return f"; shadow run of {have.version if have else 'a candidate'} stopped"
            return ""
        version, target, rollout_id = shadow
        if have is not None and (have.version, have.rollout_id) == (version, rollout_id):
            return ""
        self._fetch_and_install(model_id, version, target, rollout_id)
        return f"; {version} installed to run in shadow mode (rollout {rollout_id}, not shown)"

    def update(self, model_id: str, *, force: bool = False) -> UpdateResult:
        """Install the signed channel's version of ``model_id`` unless it is already in use,
        and the rollout's shadow version if this workstation runs one."""
        ptr = self.store.pointer(model_id)
        if ptr is not None and ptr.pinned and not force:
            return UpdateResult(
                model_id,
                "pinned",
                ptr.version,
                ptr.previous,
                f"{model_id} stays at {ptr.version} (pinned by a local rollback)",
            )
        version, target, shadow = self.plan(model_id)
        current = ptr.version if ptr is not None else shipped_version(model_id)
        if current == version and not force:
            note = self._update_shadow(model_id, shadow)
            return UpdateResult(
                model_id,
                "installed" if note else "up_to_date",
                version,
                ptr.previous if ptr is not None else None,
                f"{model_id} {version} is up to date{note}",
                shadow[0] if shadow else None,
            )
        self._fetch_and_install(model_id, version, target)
        new = self.store.pointer(model_id)
        assert new is not None  # just written
        note = self._update_shadow(model_id, shadow)
        return UpdateResult(
            model_id,
            "installed",
            new.version,
            new.previous,
            f"{model_id} {new.version} installed"
            + (f" (previous {new.previous} kept for rollback)" if new.previous else "")
            + note,
            shadow[0] if shadow else None,
        )
