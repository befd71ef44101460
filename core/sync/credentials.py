"""Device credentials and the refresh token, kept in the OS keyring and nowhere else.

The access token is short-lived and held in memory only. The keyring entry is per server URL,
so a workstation enrolled with a test backend and a production backend keeps both apart.
There is no fallback to a file: with no usable keyring the workstation refuses to enrol and
says why (tests select keyrings.alt's file backend explicitly via PYTHON_KEYRING_BACKEND).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from core.sync.errors import AuthFailedError

SERVICE_PREFIX = "DoctorAI sync"


class CredentialError(AuthFailedError):
    """No usable keyring, or the workstation is not enrolled with this server."""


@dataclass(frozen=True)
class DeviceCredentials:
    device_id: str
    device_secret: str


def _keyring() -> Any:
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        raise CredentialError(
            "no OS keyring is available to hold the workstation's sync credentials; "
            "install/unlock the desktop keyring (Secret Service, macOS Keychain or Windows "
            "Credential Manager) and try again"
        )
    return keyring


class CredentialStore:
    """get/set/clear the credentials of one server in the OS keyring."""

    def __init__(self, server_url: str) -> None:
        self.service = f"{SERVICE_PREFIX} {server_url.rstrip('/')}"

    def _get(self, name: str) -> str | None:
        value = _keyring().get_password(self.service, name)
        return None if value is None else str(value)

    def _set(self, name: str, value: str) -> None:
        _keyring().set_password(self.service, name, value)

    def _delete(self, name: str) -> None:
        import keyring.errors

        # nothing stored under that name means it is already clear
        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            _keyring().delete_password(self.service, name)

    def device(self) -> DeviceCredentials | None:
        device_id, secret = self._get("device_id"), self._get("device_secret")
        if not device_id or not secret:
            return None
        return DeviceCredentials(device_id, secret)

    def require_device(self) -> DeviceCredentials:
        creds = self.device()
        if creds is None:
            server = self.service[len(SERVICE_PREFIX) + 1 :]
            raise CredentialError(
                f"this workstation is not enrolled with {server!r};"
                " run 'doctorai sync enrol CODE' with a code from your administrator"
            )
        return creds

    def save_device(self, creds: DeviceCredentials) -> None:
        self._set("device_id", creds.device_id)
        self._set("device_secret", creds.device_secret)
        self._delete("refresh_token")

    def pending_enrolment(self, code_id: str) -> str | None:
        """The nonce of an enrolment with this code that has not been answered yet (the app
        stopped mid-way): sent again, it gets the credentials the server may have made."""
        stored = self._get("enrol_pending")
        if stored is None:
            return None
        kept_id, _, nonce = stored.partition(" ")
        return nonce if kept_id == code_id and nonce else None

    def save_pending_enrolment(self, code_id: str, nonce: str) -> None:
        self._set("enrol_pending", f"{code_id} {nonce}")

    def clear_pending_enrolment(self) -> None:
        self._delete("enrol_pending")

    def refresh_token(self) -> str | None:
        return self._get("refresh_token")

    def save_refresh_token(self, token: str) -> None:
        self._set("refresh_token", token)

    def clear(self) -> None:
        for name in ("device_id", "device_secret", "refresh_token", "enrol_pending"):
            self._delete(name)
