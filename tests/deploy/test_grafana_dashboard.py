"""deploy/grafana: the dashboard reads only metrics the backend exports (from its registry) or
the rules of deploy/prometheus/alerts.yml define, and every query parses (promtool)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.promql_names import exported_names, metric_names, substitute_grafana

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "doctorai-dashboard.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"
# Series Prometheus makes itself: scrape health, and the state of the alert rules.
PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE"}
# Requested from the backend, not exported yet: none at present (the timestamp expiry gauge is
# exported by backend.app.TimestampExpiryCollector since issue 19).
REQUESTED: set[str] = set()


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _exprs() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]


def _rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def _recorded() -> set[str]:
    return {r["record"] for r in _rules() if "record" in r}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (le) (rate(a_bucket{route=~"/x/.*", b="{c}"}[5m]))', {"a_bucket"}),
        (
            "histogram_quantile(0.99, sum without (i) (rate(h_bucket[$__rate_interval])))",
            {"h_bucket"},
        ),
        ("a_total / on (x) group_left (y) b_info offset 10m", {"a_total", "b_info"}),
        ("(sum(increase(x_total[1h])) or vector(0)) == 0 and bool y", {"x_total", "y"}),
        ("min(g) - time() < 10 * 3600", {"g"}),
        ("doctorai:http_5xx_ratio:rate5m > 0.02", {"doctorai:http_5xx_ratio:rate5m"}),
        ("rate(c_total[1m:30s]) > 1e3", {"c_total"}),
    ],
)
def test_metric_names_of_known_expressions(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_registry_names_carry_the_exposition_suffixes() -> None:
    names = exported_names()
    assert {"doctorai_http_requests_total", "doctorai_sync_lag_seconds_bucket"} <= names
    assert "doctorai_http_requests" not in names  # a counter is read as <name>_total


def test_dashboard_reads_only_exported_or_defined_metrics() -> None:
    allowed = exported_names() | _recorded() | PROMETHEUS_SERIES
    used = set().union(*(metric_names(e) for e in _exprs()))
    assert used, "no expressions found"
    assert used - allowed == set()


def test_alert_rules_read_only_exported_or_requested_metrics() -> None:
    allowed = exported_names() | _recorded() | PROMETHEUS_SERIES | REQUESTED
    used = set().union(*(metric_names(r["expr"]) for r in _rules()))
    assert used - allowed == set()
    # a request that the backend has met is no longer a request: keep this list honest
    assert REQUESTED & exported_names() == set(), "exported now: drop it from REQUESTED"


@pytest.mark.parametrize(
    "needed",
    [
        "doctorai_http_requests_total",  # requests and 5xx
        "doctorai_http_request_duration_seconds_bucket",  # latency p50/p99
        "doctorai_sync_items_total",  # sync items/s
        "doctorai_sync_lag_seconds_bucket",  # sync lag
        "doctorai_rate_limited_total",
        "doctorai_security_alerts_total",
        "doctorai:tuf_timestamp_expiry:seconds_left",  # timestamp expiry
    ],
)
def test_dashboard_shows_what_operations_needs(needed: str) -> None:
    assert any(needed in metric_names(e) for e in _exprs())


def test_latency_panel_has_p50_and_p99() -> None:
    exprs = _exprs()
    for q in ("0.5", "0.99"):
        assert any(
            f"histogram_quantile({q}," in e and "doctorai_http_request_duration" in e for e in exprs
        )


def test_panels_are_laid_out_without_overlap() -> None:
    panels = _dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        assert p["datasource"]["uid"] == "${datasource}", p["title"]


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (apt-get install prometheus)",
)
def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{i}", "expr": substitute_grafana(e)}
        for i, e in enumerate(_exprs())
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run = subprocess.run(
        ["promtool", "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
