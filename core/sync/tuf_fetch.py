"""python-tuf's download interface over our httpx client, so TUF traffic gets the same TLS
verification, hospital CA bundle and HTTPS proxy as the rest of sync (tuf's own fetcher knows
none of them). Length limits stay with tuf: it stops reading past the signed length.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
from tuf.api import exceptions
from tuf.ngclient.fetcher import FetcherInterface

CHUNK = 1 << 20


class HttpxFetcher(FetcherInterface):
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _fetch(self, url: str) -> Iterator[bytes]:
        return self._chunks(url)

    def _chunks(self, url: str) -> Iterator[bytes]:
        try:
            with self.http.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise exceptions.DownloadHTTPError(
                        f"HTTP {resp.status_code} for {url}", resp.status_code
                    )
                yield from resp.iter_raw(CHUNK)
        except httpx.TransportError as exc:
            raise exceptions.DownloadError(f"download of {url} failed: {exc}") from exc
