"""The label values the alert rules match on, as a real backend exposes them: a uvicorn server
on 127.0.0.1 answers a few requests, then /metrics is scraped with the scrape token."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytest.importorskip("fastapi", reason="the backend extra is not installed")

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from backend.app import create_app
from backend.config import Settings
from core.sync.wire import API_PREFIX
from tests.deploy.promql_names import exported_names

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
TOKEN = "scrape-" + "t" * 40
Samples = list[tuple[str, dict[str, str], float]]


@pytest.fixture
def scraped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Samples]:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = Settings(data_dir=tmp_path / "backend", metrics_token=TOKEN, jwt_secret="j" * 48)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start in 30 s"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/healthz").status_code == 200
            # a batch without a token: refused, and counted under the route's template
            assert client.post(f"{API_PREFIX}/results:batch", json={}).status_code == 401
            client.get("/no-such-page")
            scrape = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert scrape.status_code == 200
        yield [
            (s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(scrape.text)
            for s in family.samples
        ]
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _requests(samples: Samples) -> list[dict[str, str]]:
    return [labels for name, labels, _ in samples if name == "doctorai_http_requests_total"]


def test_exposed_names_are_the_ones_the_rules_are_checked_against(scraped: Samples) -> None:
    names = {name for name, _, _ in scraped if name.startswith("doctorai_")}
    assert names
    assert names <= exported_names()


def test_status_is_the_three_digit_code_the_5xx_matchers_expect(scraped: Samples) -> None:
    requests = _requests(scraped)
    assert requests
    for labels in requests:
        assert set(labels) == {"method", "route", "status"}
        assert re.fullmatch(r"\d{3}", labels["status"]), labels
    assert {"200", "401", "404"} <= {labels["status"] for labels in requests}


def test_batch_routes_match_the_sync_stall_rule(scraped: Samples) -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    (stall,) = [r for r in rules if r.get("alert") == "DoctorAISyncStalled"]
    (route_regex,) = re.findall(r'route=~"([^"]+)"', stall["expr"])
    routes = {labels["route"] for labels in _requests(scraped)}
    batch = f"{API_PREFIX}/results:batch"
    assert batch in routes  # the template, not the raw path
    assert re.fullmatch(route_regex, batch)
    assert not re.fullmatch(route_regex, "/healthz")


def test_rate_limit_counter_and_latency_buckets_are_there_from_the_start(scraped: Samples) -> None:
    """Unlabelled counters exist at 0, so rate() has a series before the first 429."""
    rate_limited = [v for name, _, v in scraped if name == "doctorai_rate_limited_total"]
    assert rate_limited == [0.0]
    buckets = {
        labels["le"]
        for name, labels, _ in scraped
        if name == "doctorai_http_request_duration_seconds_bucket"
    }
    assert "+Inf" in buckets
    assert len(buckets) > 5
