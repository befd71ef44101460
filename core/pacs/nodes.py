"""PACS nodes from the settings (``[[pacs]]`` tables) and their secrets from the OS keyring.

Passwords and bearer tokens never live in config files: the config names the node, URL, auth
kind, user name and CA bundle; the secret is stored under the keyring service
``"DoctorAI PACS <url>"``. TLS verification is always on (the CA bundle only chooses which
roots to trust).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import PacsNode, Settings, load_settings
from core.pacs.errors import PacsConfigError

if TYPE_CHECKING:
    import requests

SERVICE_PREFIX = "DoctorAI PACS"
BEARER_KEY = "bearer-token"


def list_nodes(settings: Settings | None = None) -> list[PacsNode]:
    return list((settings or load_settings()).pacs)


def get_node(name: str, settings: Settings | None = None) -> PacsNode:
    nodes = list_nodes(settings)
    for node in nodes:
        if node.name == name:
            return node
    known = ", ".join(repr(n.name) for n in nodes) or "none configured"
    raise PacsConfigError(f"no PACS node named '{name}' in the settings (known: {known})")


def _service(node: PacsNode) -> str:
    return f"{SERVICE_PREFIX} {node.url.rstrip('/')}"


def _keyring() -> Any:
    import keyring
    from keyring.backends import fail

    if isinstance(keyring.get_keyring(), fail.Keyring):
        raise PacsConfigError(
            "no OS keyring is available to hold PACS credentials; install/unlock the desktop "
            "keyring (Secret Service, macOS Keychain or Windows Credential Manager)"
        )
    return keyring


def _secret_key(node: PacsNode) -> str:
    if node.auth == "basic":
        if not node.username:
            raise PacsConfigError(f"PACS node '{node.name}' uses basic auth but has no username")
        return node.username
    return BEARER_KEY


def store_secret(node: PacsNode, secret: str) -> None:
    """Save the node's password (basic) or token (bearer) in the OS keyring."""
    if node.auth == "none":
        raise PacsConfigError(f"PACS node '{node.name}' uses no authentication; nothing to store")
    _keyring().set_password(_service(node), _secret_key(node), secret)


def node_secret(node: PacsNode) -> str | None:
    if node.auth == "none":
        return None
    value = _keyring().get_password(_service(node), _secret_key(node))
    if not value:
        raise PacsConfigError(
            f"no {'password' if node.auth == 'basic' else 'token'} for PACS node '{node.name}' "
            f"in the OS keyring; run 'doctorai pacs secret {node.name}'"
        )
    return str(value)


def make_session(node: PacsNode) -> requests.Session:
    """A requests session with the node's auth and TLS trust (verification never disabled)."""
    import requests

    session = requests.Session()
    if node.ca_bundle:
        if not Path(node.ca_bundle).is_file():
            raise PacsConfigError(
                f"CA bundle '{node.ca_bundle}' of PACS node '{node.name}' does not exist"
            )
        session.verify = node.ca_bundle
    else:
        session.verify = True
    secret = node_secret(node)
    if node.auth == "basic":
        session.auth = (node.username or "", secret or "")
    elif node.auth == "bearer":
        session.headers["Authorization"] = f"Bearer {secret}"
    return session
