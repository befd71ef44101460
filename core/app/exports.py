"""Use case: something with patient data leaves the workstation as a file (a rendered image, a
heatmap, an exported view).

The Export event is written first and the file is made only once the event is durable: an
export that the trail cannot record does not happen. A write that then fails is recorded as a
failed export (and raised), so the trail never claims a file that does not exist without saying
so. The GUI (File > Export view) and the CLI (``render``, ``infer --heatmap``) both call this.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.app.workstation import Workstation
from core.audit.events import Participants, event
from core.audit.vocabulary import EventType, Outcome
from core.security.users import Permission
from core.store.database import STORE_ERRORS
from core.store.errors import TrailUnavailableError


def export_file(
    ws: Workstation,
    participants: Participants,
    path: Path,
    write: Callable[[Path], None],
    **details: Any,
) -> None:
    """Audit, then ``write(path)``; OSError from the write is audited as a failure and raised."""
    actor = ws.require(Permission.VIEW)
    participants.add("file", str(path.resolve()))
    try:
        ws.audit.append(event(EventType.EXPORT, actor, participants, **details))
    except STORE_ERRORS as exc:
        cause = getattr(exc, "orig", None) or exc
        raise TrailUnavailableError(ws.db.path, str(cause), f"'{path}' was not written") from exc
    try:
        write(path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        ws.audit.append(
            event(
                EventType.EXPORT,
                actor,
                participants,
                Outcome.MINOR_FAILURE,
                reason=reason,
                **details,
            )
        )
        raise
