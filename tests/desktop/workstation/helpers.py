"""Accounts, a movable clock and pixel access for the workstation GUI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.security.users import Role

PASSWORD = "correct horse battery"
REPO = Path(__file__).resolve().parents[3]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"


class Clock:
    """The session's injectable clock: a test moves time instead of sleeping."""

    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def add_users(ws: Workstation) -> None:
    ws.users.create_user("admin", PASSWORD, Role.ADMIN, by="test")
    for name, role in (
        ("rad", Role.RADIOLOGIST),
        ("tech", Role.TECHNOLOGIST),
        ("aud", Role.AUDITOR),
    ):
        ws.users.create_user(name, PASSWORD, role, by="admin")


def auth_events(ws: Workstation) -> list[tuple[str, str, int]]:
    return [
        (e.user, e.details.get("action", ""), e.outcome)
        for e in ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
    ]


def rgb(widget: object) -> np.ndarray:
    img = widget.grab().toImage()  # type: ignore[attr-defined]
    img = img.convertToFormat(img.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    return (
        arr.reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3]
        .reshape(img.height(), img.width(), 3)
        .copy()
    )
