"""Use case: the signed-in user's own window presets, kept in the encrypted profile.

One JSON list per user in the ``properties`` table under ``window_presets:<username>`` (no
migration needed; the profile is SQLCipher-encrypted like the rest of what it holds). A preset
is a display preference, not a security-relevant action, so nothing is audited; saving needs the
'view' permission (anyone who may look at images may keep windows for them).

Database work: call these from a background job (desktop.jobs / JobRunner), never on the GUI
thread.
"""

from __future__ import annotations

from sqlalchemy import select

from core.app.workstation import Workstation
from core.security.users import Permission
from core.store.database import set_property
from core.store.schema import properties
from core.viewer.presets import (
    PresetError,
    UserPreset,
    user_presets_from_json,
    user_presets_to_json,
)

KEY_PREFIX = "window_presets:"
MAX_PRESETS = 50  # per user, all modalities together


def _key(username: str) -> str:
    return f"{KEY_PREFIX}{username}"


def load_user_presets(ws: Workstation) -> tuple[UserPreset, ...]:
    """The current user's presets (none when nobody is signed in or none were saved).

    A stored value that cannot be read raises PresetError naming the user's presets."""
    user = ws.session.user
    if user is None:
        return ()
    with ws.db.engine.connect() as conn:
        text = conn.execute(
            select(properties.c.value).where(properties.c.key == _key(user.username))
        ).scalar_one_or_none()
    if not text:
        return ()
    try:
        return user_presets_from_json(text)
    except (ValueError, TypeError) as exc:  # PresetError is a ValueError, as is bad JSON
        raise PresetError(
            f"the saved window presets of '{user.username}' are unreadable: {exc}"
        ) from None


def save_user_presets(ws: Workstation, presets: tuple[UserPreset, ...]) -> tuple[UserPreset, ...]:
    """Replace the current user's presets (each validated); returns what was stored."""
    actor = ws.require(Permission.VIEW)
    checked = tuple(p.checked() for p in presets)
    if len(checked) > MAX_PRESETS:
        raise PresetError(f"at most {MAX_PRESETS} window presets per user, got {len(checked)}")
    with ws.db.transaction() as conn:
        set_property(conn, _key(actor.user), user_presets_to_json(checked))
    return checked
