"""python-tuf's download interface over our httpx client, so TUF traffic gets the same TLS
verification, hospital CA bundle and HTTPS proxy as the rest of sync (tuf's own fetcher knows
none of them). Length limits stay with tuf: it stops reading past the signed length.

Model packages (``/tuf/targets/``) are served only to enrolled, non-revoked workstations: a
fetcher given an ``access_token`` provider sends the device's bearer token and, on a 401, renews
it once and asks again (as ``SyncClient.request`` does). Metadata needs none: it is public and
signed, so the Updater's refresh uses a fetcher without a token and costs no sign-in.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from tuf.api import exceptions
from tuf.api.metadata import TargetFile  # type: ignore[attr-defined]
from tuf.ngclient.fetcher import FetcherInterface

CHUNK = 1 << 20
MAX_ERROR_BODY = 64 * 1024  # a refusal's JSON body; a bigger one is not read further

# ``SyncClient.access_token``: the cached device token, or a renewed one when asked (True)
TokenProvider = Callable[[bool], str]


class TargetAccessError(exceptions.DownloadHTTPError):
    """The update server refused this workstation a target (401): no token was sent, or it was
    refused even after one renewal. ``code`` is the server's error code (``device_revoked``,
    ``token_invalid``, ``auth_required``...), ``detail`` its message."""

    def __init__(self, url: str, code: str, detail: str) -> None:
        super().__init__(f"HTTP 401 {code} for {url}: {detail}", 401)
        self.code, self.detail = code, detail


def _refusal(resp: httpx.Response) -> tuple[str, str]:
    """(code, message) from the API's error body, read up to MAX_ERROR_BODY bytes."""
    body = b""
    for chunk in resp.iter_raw(MAX_ERROR_BODY):
        body += chunk
        if len(body) >= MAX_ERROR_BODY:
            break
    try:
        err = json.loads(body)["error"]
        return str(err["code"]), str(err["message"])[:500]
    except (ValueError, KeyError, TypeError):
        return "http_401", "HTTP 401 Unauthorized"


class HttpxFetcher(FetcherInterface):
    def __init__(self, http: httpx.Client, access_token: TokenProvider | None = None) -> None:
        self.http = http
        self.access_token = access_token

    def _fetch(self, url: str) -> Iterator[bytes]:
        return self._chunks(url)

    def _chunks(self, url: str) -> Iterator[bytes]:
        """Lazily, like every tuf fetcher: nothing (no token either) before the first chunk is
        asked for. Errors of the token provider (``AuthFailedError`` for a revoked or
        unenrolled workstation, ``TransientError``) pass through unchanged for the caller."""
        renewals = 1 if self.access_token is not None else 0
        for attempt in range(renewals + 1):
            headers = {}
            if self.access_token is not None:
                headers["Authorization"] = f"Bearer {self.access_token(attempt > 0)}"
            try:
                with self.http.stream("GET", url, headers=headers) as resp:
                    if resp.status_code == 401:
                        if attempt < renewals:
                            continue  # an expired token: renew once and ask again
                        raise TargetAccessError(url, *_refusal(resp))
                    if resp.status_code != 200:
                        raise exceptions.DownloadHTTPError(
                            f"HTTP {resp.status_code} for {url}", resp.status_code
                        )
                    yield from resp.iter_raw(CHUNK)
                    return
            except httpx.TransportError as exc:
                raise exceptions.DownloadError(f"download of {url} failed: {exc}") from exc


def download_verified(
    fetcher: FetcherInterface, target_base_url: str, info: TargetFile, dest: Path
) -> Path:
    """Stream a target to ``dest`` while checking it against its signed ``TargetFile``.

    Same checks as ngclient's ``download_target`` (reading stops past the signed length; every
    signed hash must match; tuf's own exception types), but hashed on the fly into the final
    file: ngclient's path writes a temporary copy, re-reads it to hash and copies it again,
    which costs a 200 MB package about half its download time. Target URLs are always
    hash-prefixed (consistent snapshots; the backend serves nothing else).
    """
    try:
        hashers = {algo: hashlib.new(algo) for algo in info.hashes}
    except (ValueError, TypeError) as exc:
        raise exceptions.LengthOrHashMismatchError(f"unsupported hash in {info.hashes}") from exc
    if not hashers:
        raise exceptions.LengthOrHashMismatchError(f"target {info.path!r} lists no hashes")
    directory, sep, base = info.path.rpartition("/")
    url = f"{target_base_url.rstrip('/')}/{directory}{sep}{next(iter(info.hashes.values()))}.{base}"
    part = dest.with_name(dest.name + ".part")
    received = 0
    try:
        with part.open("wb") as fh:
            for chunk in fetcher.fetch(url):
                received += len(chunk)
                if received > info.length:
                    raise exceptions.DownloadLengthMismatchError(
                        f"downloaded {received} bytes, over the signed length {info.length}"
                    )
                for h in hashers.values():
                    h.update(chunk)
                fh.write(chunk)
        if received != info.length:
            raise exceptions.LengthOrHashMismatchError(
                f"observed length {received} does not match signed length {info.length}"
            )
        for algo, h in hashers.items():
            if h.hexdigest() != info.hashes[algo]:
                raise exceptions.LengthOrHashMismatchError(
                    f"observed {algo} {h.hexdigest()} does not match signed {info.hashes[algo]}"
                )
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest
