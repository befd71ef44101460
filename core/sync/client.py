"""The workstation's HTTP client for the sync API: TLS always verified, tokens from the keyring.

One ``httpx.Client`` per server, configured from ``settings.sync``: an optional hospital CA
bundle (added to the public roots, never replacing verification) and an optional HTTPS proxy.
Plain ``http://`` is accepted only for a loopback address (development and tests).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import ssl
import threading
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.sync.credentials import CredentialStore, DeviceCredentials
from core.sync.errors import (
    AuthFailedError,
    ChainAlertError,
    ChainGapError,
    RefusedError,
    SyncConfigError,
    TlsError,
    TransientError,
)
from core.sync.wire import (
    API_PREFIX,
    IDEMPOTENCY_HEADER,
    BatchResponse,
    EnrolRequest,
    EnrolResponse,
    RefreshRequest,
    TokenRequest,
    TokenResponse,
)

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 3600.0
_LOOPBACK_NAMES = frozenset({"localhost"})


def check_server_url(url: str | None) -> str:
    """The base URL without a trailing slash; https, or http on loopback only."""
    if not url:
        raise SyncConfigError(
            "no sync server is configured; IT sets sync.server_url in the settings file"
        )
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and host:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host in _LOOPBACK_NAMES
        if loopback:
            return url.rstrip("/")
        raise SyncConfigError(
            f"sync server {url!r} uses plain http; only https is allowed (TLS is required "
            "for anything but this machine's loopback address)"
        )
    raise SyncConfigError(f"sync server {url!r} is not an http(s) URL")


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Public roots plus the hospital CA, if IT configured one; verification always on."""
    import certifi

    ctx = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle:
        path = Path(ca_bundle).expanduser()
        if not path.is_file():
            raise SyncConfigError(f"sync.ca_bundle {str(path)!r} does not exist")
        try:
            ctx.load_verify_locations(cafile=str(path))
        except (ssl.SSLError, OSError) as exc:
            raise SyncConfigError(
                f"sync.ca_bundle {str(path)!r} is not a PEM certificate bundle: {exc}"
            ) from exc
    return ctx


def make_http(
    ca_bundle: str | None = None, https_proxy: str | None = None, timeout: float = 30.0
) -> httpx.Client:
    if https_proxy and urlsplit(https_proxy).scheme not in ("http", "https"):
        raise SyncConfigError(f"sync.https_proxy {https_proxy!r} is not an http(s) proxy URL")
    return httpx.Client(
        verify=ssl_context(ca_bundle),
        proxy=https_proxy or None,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        trust_env=False,  # IT's settings decide the proxy, not stray environment variables
        headers={"User-Agent": "DoctorAI-Workstation-sync"},
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def transport_error(url: str, exc: httpx.TransportError) -> Exception:
    """Turn an httpx failure into TlsError (fix setup) or TransientError (retry)."""
    if _is_tls_failure(exc):
        return TlsError(
            f"the certificate of sync server {url!r} could not be verified ({exc}); if the "
            "hospital uses its own certificate authority, IT sets sync.ca_bundle"
        )
    kind = {
        httpx.ConnectError: "cannot connect",
        httpx.ConnectTimeout: "connection timed out",
        httpx.ReadTimeout: "no answer in time",
        httpx.WriteTimeout: "sending timed out",
        httpx.RemoteProtocolError: "connection dropped mid-answer",
        httpx.ReadError: "connection dropped",
        httpx.WriteError: "connection dropped while sending",
        httpx.ProxyError: "the proxy refused the connection",
    }.get(type(exc), "network error")
    return TransientError(f"sync server {url!r}: {kind} ({type(exc).__name__}: {exc})")


def error_of(resp: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    """(code, message, data) from the backend's error body, or generic ones."""
    try:
        err = resp.json()["error"]
        return str(err["code"]), str(err["message"]), dict(err.get("data") or {})
    except (ValueError, KeyError, TypeError):
        return f"http_{resp.status_code}", f"HTTP {resp.status_code} {resp.reason_phrase}", {}


class SyncClient:
    """Enrolment, tokens and authorised requests against one backend."""

    def __init__(
        self,
        server_url: str,
        credentials: CredentialStore | None = None,
        *,
        ca_bundle: str | None = None,
        https_proxy: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.server_url = check_server_url(server_url)
        self.api = self.server_url + API_PREFIX
        self.credentials = credentials or CredentialStore(self.server_url)
        self.ca_bundle, self.https_proxy, self.timeout = ca_bundle, https_proxy, timeout
        self.http = make_http(ca_bundle, https_proxy, timeout)
        self._access: str | None = None
        self._lock = threading.Lock()
        self.enrol_attempts, self.enrol_backoff_s = 6, 0.5

    def close(self) -> None:
        self.http.close()

    # --- plumbing ----------------------------------------------------------------------------

    def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, url, **kw)
            resp.read()  # a truncated body fails here, inside the retryable net
        except httpx.TransportError as exc:
            raise transport_error(self.server_url, exc) from exc
        return resp

    def _raise_for(self, resp: httpx.Response, what: str) -> None:
        if resp.is_success:
            return
        code, message, data = error_of(resp)
        status = resp.status_code
        if status in RETRYABLE_STATUS or code == "conflict_retry":
            raise TransientError(
                f"{what}: server busy or failing (HTTP {status}: {message})",
                parse_retry_after(resp.headers.get("Retry-After")),
            )
        if status == 409 and code == "audit_chain_gap":
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            raise ChainGapError(status, code, message, data, retry_after)
        if status == 409 and code.startswith("audit_chain"):
            raise ChainAlertError(status, code, message, data)
        if code in ("device_revoked", "credentials_invalid"):
            raise AuthFailedError(f"{what}: {message}; ask an administrator to re-enrol", code)
        raise RefusedError(status, code, f"{what} refused (HTTP {status} {code}): {message}", data)

    def _json(self, resp: httpx.Response, what: str) -> Any:
        try:
            return resp.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise TransientError(f"{what}: the server's answer was unreadable ({exc})") from exc

    # --- enrolment and tokens ----------------------------------------------------------------

    def enrol(self, code: str, label: str = "") -> DeviceCredentials:
        """Trade an enrolment code for device credentials, stored in the keyring at once.

        A secret nonce goes with the code and with every retry of it: when the server used the
        code but its answer was lost (a dropped connection, a busy proxy), the retry gets the
        same credentials back instead of 'code already used'. The nonce waits in the keyring
        until an answer arrives, so an enrolment cut short by a restart is repeated, not
        doubled. Network trouble and busy answers are retried ``enrol_attempts`` times with a
        doubling delay."""
        code = code.strip()
        code_id = hashlib.sha256(code.upper().encode()).hexdigest()[:16]
        nonce = self.credentials.pending_enrolment(code_id)
        if nonce is None:  # kept until answered: a restart mid-way repeats this enrolment
            nonce = secrets.token_urlsafe(32)
            self.credentials.save_pending_enrolment(code_id, nonce)
        body = EnrolRequest(code=code, label=label, nonce=nonce).model_dump_json()
        for attempt in range(1, self.enrol_attempts + 1):
            try:
                resp = self._send("POST", f"{self.api}/enrol", content=body, headers=_JSON)
                self._raise_for(resp, "enrolment")
                got = EnrolResponse.model_validate(self._json(resp, "enrolment"))
                break
            except TransientError as exc:
                if attempt == self.enrol_attempts:
                    raise
                delay = self.enrol_backoff_s * 2 ** (attempt - 1)
                time.sleep(min(max(delay, exc.retry_after or 0.0), MAX_RETRY_AFTER_S))
        creds = DeviceCredentials(got.device_id, got.device_secret)
        self.credentials.save_device(creds)
        self.credentials.clear_pending_enrolment()
        self._access = None
        return creds

    def _store_tokens(self, resp: httpx.Response, what: str) -> str:
        tokens = TokenResponse.model_validate(self._json(resp, what))
        self.credentials.save_refresh_token(tokens.refresh_token)
        self._access = tokens.access_token
        return tokens.access_token

    def _login(self) -> str:
        creds = self.credentials.require_device()
        body = TokenRequest(device_id=creds.device_id, device_secret=creds.device_secret)
        resp = self._send(
            "POST", f"{self.api}/token", content=body.model_dump_json(), headers=_JSON
        )
        self._raise_for(resp, "login")
        return self._store_tokens(resp, "login")

    def _refresh(self) -> str:
        token = self.credentials.refresh_token()
        if token:
            body = RefreshRequest(refresh_token=token).model_dump_json()
            resp = self._send("POST", f"{self.api}/token/refresh", content=body, headers=_JSON)
            if resp.is_success:
                return self._store_tokens(resp, "token refresh")
            if resp.status_code != 401:
                self._raise_for(resp, "token refresh")
        return self._login()  # no refresh token, or it was used/expired: log in again

    def access_token(self, renew: bool = False) -> str:
        with self._lock:
            if renew or self._access is None:
                return self._refresh()
            return self._access

    def request(self, method: str, path: str, what: str, **kw: Any) -> httpx.Response:
        """An authorised request; an expired access token is renewed once, transparently."""
        url = path if path.startswith("http") else f"{self.api}{path}"
        headers = dict(kw.pop("headers", {}) or {})
        for attempt in (0, 1):
            headers["Authorization"] = f"Bearer {self.access_token(renew=attempt == 1)}"
            resp = self._send(method, url, headers=headers, **kw)
            if resp.status_code == 401 and attempt == 0:
                continue
            self._raise_for(resp, what)
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the API -----------------------------------------------------------------------------

    def post_batch(self, endpoint: str, body: bytes, key: str) -> BatchResponse:
        """POST one results/audit batch under an Idempotency-Key; a retry is a replay."""
        what = f"sending {endpoint}"
        resp = self.request(
            "POST", f"/{endpoint}", what, content=body, headers={**_JSON, IDEMPOTENCY_HEADER: key}
        )
        return BatchResponse.model_validate(self._json(resp, what))

    def get_json(self, path: str, what: str) -> Any:
        return self._json(self.request("GET", path, what), what)


_JSON = {"Content-Type": "application/json"}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
