"""Use cases: install the signed channel's version of a model, roll a model back. Both change
what the radiologists' results come from, so a person needs the manage-models permission; the
background sync installs as 'system' (IT's signed channel decided). Each change is audited."""

from __future__ import annotations

from core.app.workstation import Workstation
from core.audit.events import SYSTEM, Participants, event
from core.audit.vocabulary import EventType
from core.inference.model_store import ModelStore, Pointer
from core.security.users import Permission
from core.sync.model_update import ModelUpdater, UpdateResult


def _model(model_id: str, version: str) -> Participants:
    return Participants().add("model", f"{model_id}@{version}")


def rollback_model(ws: Workstation, store: ModelStore, model_id: str) -> Pointer:
    """Switch back to the previous version and pin it; raises ModelInstallError."""
    ws.require(Permission.MANAGE_MODELS)
    ptr = store.rollback(model_id)
    ws.record(
        EventType.MODEL_ROLLED_BACK,
        _model(model_id, ptr.version),
        rolled_back_from=ptr.previous,
        pinned=True,
    )
    return ptr


def install_update(
    ws: Workstation,
    updater: ModelUpdater,
    model_id: str,
    *,
    force: bool = False,
    by_person: bool = True,
) -> UpdateResult:
    """Install the channel's version of ``model_id`` (``force``: also over a pin). A person
    (``by_person``) needs manage-models; the background sync does not. Raises ModelUpdateError."""
    actor = ws.require(Permission.MANAGE_MODELS) if by_person else SYSTEM
    if force:
        updater.store.unpin(model_id)
    result = updater.update(model_id, force=force)
    if result.action == "installed":
        ws.audit.append(
            event(
                EventType.MODEL_INSTALLED,
                actor,
                _model(model_id, result.version),
                previous=result.previous,
                shadow=result.shadow,
            )
        )
    return result
