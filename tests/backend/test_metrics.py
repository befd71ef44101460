"""``/metrics`` is not public and names no workstation (issue 15, hole 9).

Prometheus holds a static bearer token (``DOCTORAI_BACKEND_METRICS_TOKEN``); an admin's access
token works as well. A device token, no token or a wrong one is refused in the API's error shape.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.config import settings_from_env
from tests.backend.conftest import LiveServer, base_settings, result_item

SCRAPE_TOKEN = secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = base_settings(tmp_path_factory.mktemp("metrics"), metrics_token=SCRAPE_TOKEN)
    live = LiveServer(settings, with_keys=False).start()
    yield live
    live.stop()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_metrics_refuse_anonymous_device_and_wrong_tokens(scraped: LiveServer) -> None:
    ws = scraped.workstation("metrics")
    anonymous = httpx.get(f"{scraped.url}/metrics")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "auth_required"
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    wrong = httpx.get(f"{scraped.url}/metrics", headers=_bearer(SCRAPE_TOKEN[:-2] + "xx"))
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "token_invalid"
    device = httpx.get(f"{scraped.url}/metrics", headers=_bearer(ws.tokens["access_token"]))
    assert device.status_code == 403
    assert device.json()["error"]["code"] == "forbidden"
    ws.close()


def test_metrics_with_scrape_or_admin_token_name_no_device(scraped: LiveServer) -> None:
    ws = scraped.workstation("lagging")
    ws.post("/results:batch", {"items": [result_item()]}).raise_for_status()
    ws.post("/audit-events:batch", {"events": ws.make_events(2)}).raise_for_status()
    for headers in (_bearer(SCRAPE_TOKEN), scraped.admin_headers()):
        r = httpx.get(f"{scraped.url}/metrics", headers=headers)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert "doctorai_sync_lag_seconds_count 2.0" in r.text  # still measured, per batch
        assert 'route="/api/v1/results:batch"' in r.text
        assert ws.device_id not in r.text
        assert "device=" not in r.text
    ws.close()


def test_unknown_http_methods_do_not_mint_label_values(scraped: LiveServer) -> None:
    """The method label is a closed set: random methods cannot grow the metric series."""
    for i in range(3):
        httpx.request(f"X{i}{secrets.token_hex(4).upper()}", f"{scraped.url}/healthz")
    text = httpx.get(f"{scraped.url}/metrics", headers=_bearer(SCRAPE_TOKEN)).text
    methods = {
        part.split('"')[1]
        for line in text.splitlines()
        if line.startswith("doctorai_http_requests_total{")
        for part in line.split(",")
        if part.startswith("doctorai_http_requests_total{method=")
    }
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods


def test_scrape_token_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCTORAI_BACKEND_METRICS_TOKEN", SCRAPE_TOKEN)
    assert settings_from_env(str(tmp_path)).metrics_token == SCRAPE_TOKEN
    assert SCRAPE_TOKEN not in repr(settings_from_env(str(tmp_path)))
