"""Building the sync parts from the settings: one place that reads ``settings.sync``.

The CLI and the GUI worker both start here, so IT's CA bundle, proxy and server URL apply
the same way everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from core.config import Settings
from core.paths import profile_dir
from core.sync.client import SyncClient, check_server_url
from core.sync.engine import BackoffPolicy, SecurityAlert, SyncEngine
from core.sync.errors import SyncConfigError
from core.sync.model_update import ModelUpdater
from core.sync.outbox import Outbox
from core.sync.status import SyncStatus
from core.sync.wire import Assignment, AssignmentList

TRUSTED_ROOT_ENV = "DOCTORAI_TUF_ROOT"
_PACKAGED_ROOT = Path(__file__).resolve().parents[2] / "resources" / "tuf" / "root.json"


def trusted_root_path(settings: Settings) -> Path:
    """The TUF root shipped with the installer: ``sync.tuf_root`` (IT's setting), then
    DOCTORAI_TUF_ROOT, then ``<profile>/tuf/trusted_root.json``, then the packaged copy."""
    configured = settings.sync.tuf_root or os.environ.get(TRUSTED_ROOT_ENV)
    if configured:
        return Path(configured).expanduser()
    profile_copy = profile_dir() / "tuf" / "trusted_root.json"
    return profile_copy if profile_copy.is_file() else _PACKAGED_ROOT


def load_trusted_root(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SyncConfigError(
            f"the trusted update root '{path}' cannot be read ({exc.strerror}); it ships with "
            "the installer - reinstall, or IT points sync.tuf_root / DOCTORAI_TUF_ROOT at it"
        ) from exc


def make_client(settings: Settings, timeout: float = 30.0) -> SyncClient:
    s = settings.sync
    return SyncClient(
        check_server_url(s.server_url),
        ca_bundle=s.ca_bundle,
        https_proxy=s.https_proxy,
        timeout=timeout,
    )


def make_engine(
    settings: Settings,
    outbox: Outbox,
    client: SyncClient,
    *,
    status: SyncStatus | None = None,
    on_alert: Callable[[SecurityAlert], None] | None = None,
    backoff: BackoffPolicy | None = None,
) -> SyncEngine:
    return SyncEngine(
        outbox,
        client,
        batch_size=settings.sync.batch_size,
        backoff=backoff,
        status=status,
        on_alert=on_alert,
    )


def rollout_assignment(client: SyncClient) -> Callable[[str], Assignment | None]:
    """This workstation's arm per model, as the backend assigns it (stable per device)."""

    def assignment(model_id: str) -> Assignment | None:
        got = AssignmentList.model_validate(
            client.get_json("/rollouts/assignment", "reading rollout assignments")
        )
        return next((a for a in got.assignments if a.model_id == model_id), None)

    return assignment


def models_to_update(client: SyncClient, updater: ModelUpdater) -> list[str]:
    """Every model the centre publishes, and every one installed here before: a model the
    installer shipped receives its first signed update too."""
    from core.sync.wire import ModelCatalogue

    catalogue = ModelCatalogue.model_validate(
        client.get_json("/models", "reading the model catalogue")
    )
    return sorted({m.model_id for m in catalogue.models} | set(updater.store.installed()))


def make_updater(settings: Settings, client: SyncClient | None = None) -> ModelUpdater:
    """The updater, signed in as this workstation through ``client``: the backend serves model
    packages only to enrolled, non-revoked devices, so target downloads carry the device's
    access token (renewed on a 401 as every API request is). Without a client it can still
    read the public metadata, but every package download is refused (``not_enrolled``)."""
    s = settings.sync
    return ModelUpdater(
        check_server_url(s.server_url),
        load_trusted_root(trusted_root_path(settings)),
        profile_dir(),
        ca_bundle=s.ca_bundle,
        https_proxy=s.https_proxy,
        assignment=rollout_assignment(client) if client is not None else None,
        access_token=client.access_token if client is not None else None,
    )
