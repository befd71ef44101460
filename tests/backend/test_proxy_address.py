"""Defect 4, the address: behind a load balancer the client's address comes from
X-Forwarded-For, believed only from the configured proxies (DOCTORAI_BACKEND_FORWARDED_ALLOW_IPS
passed to uvicorn by ``serve``); anyone else's header is ignored and the peer is limited."""

from __future__ import annotations

from pathlib import Path

import httpx

from core.sync.wire import API_PREFIX
from tests.backend.served import SECRET, backend_env, serve

BURST = 3


def _env(allow: str) -> dict[str, str]:
    return backend_env(
        DOCTORAI_BACKEND_JWT_SECRET=SECRET,
        DOCTORAI_BACKEND_RATE_BURST=str(BURST),
        DOCTORAI_BACKEND_RATE_PER_S="0.01",
        DOCTORAI_BACKEND_FORWARDED_ALLOW_IPS=allow,
    )


def _token(url: str, forwarded_for: str) -> int:
    """POST /token without credentials: 422 while within the limit, 429 once over it."""
    r = httpx.post(f"{url}{API_PREFIX}/token", json={}, headers={"X-Forwarded-For": forwarded_for})
    assert r.status_code in (422, 429), r.text
    return r.status_code


def test_forged_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    # only 10.9.9.9 is a trusted proxy: this test's peer 127.0.0.1 is not
    with serve(tmp_path / "d", env=_env("10.9.9.9")) as url:
        codes = [_token(url, f"203.0.113.{i}") for i in range(BURST + 3)]
    # every forged address shares the peer's bucket
    assert codes == [422] * BURST + [429] * 3


def test_each_client_behind_the_trusted_proxy_has_its_own_bucket(tmp_path: Path) -> None:
    with serve(tmp_path / "d", env=_env("10.0.0.0/16,127.0.0.0/8")) as url:  # networks too
        per_client = {
            f"198.51.100.{c}": [_token(url, f"198.51.100.{c}") for _ in range(BURST)]
            for c in range(1, 6)
        }
        assert all(codes == [422] * BURST for codes in per_client.values()), per_client
        assert _token(url, "198.51.100.1") == 429
        # a client's forged first hop does not help: the proxy appended the real address
        assert _token(url, "192.0.2.77, 198.51.100.2") == 429
        assert _token(url, "198.51.100.9") == 422
