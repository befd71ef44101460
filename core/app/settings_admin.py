"""Use case: change what IT configures on this workstation (settings permission). Today that is
a PACS node's password or token, kept in the OS keyring; the change is audited (as a Security
Alert, PS3.15's event for security-relevant configuration), never the secret itself."""

from __future__ import annotations

from core.app.workstation import Workstation
from core.audit.events import Participants
from core.audit.vocabulary import EventType
from core.config import PacsNode
from core.pacs.nodes import store_secret
from core.security.users import Permission


def save_pacs_secret(ws: Workstation, node: PacsNode, secret: str) -> None:
    """Store ``node``'s secret; raises PermissionDenied, or ValueError for an empty secret."""
    ws.require(Permission.SETTINGS)
    if not secret:
        raise ValueError("empty secret")
    store_secret(node, secret)
    ws.record(
        EventType.SECURITY_ALERT,
        Participants().add("pacs-node", node.name),
        action="pacs-secret-saved",
        auth=node.auth,
    )
