"""deploy/prometheus: the alert rules load in Prometheus and every alert fires and stays quiet
when its unit tests say so (promtool, from Debian's `prometheus` package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROM = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROM / "alerts.yml"
RULE_TESTS = PROM / "alerts_test.yml"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROM, capture_output=True, text=True, timeout=120, check=False
    )


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


@needs_promtool
def test_rules_pass_promtool_check() -> None:
    run = _promtool("check", "rules", RULES.name)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


@needs_promtool
def test_rule_unit_tests_pass() -> None:
    run = _promtool("test", "rules", RULE_TESTS.name)
    assert run.returncode == 0, run.stdout + run.stderr


@needs_promtool
def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with a PromQL syntax error is refused."""
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: g\n  rules:\n  - alert: Broken\n    expr: sum(rate(x[5m])\n")
    run = _promtool("check", "rules", str(bad))
    assert run.returncode != 0


@needs_promtool
def test_scrape_config_with_the_rules_passes_promtool(tmp_path: Path) -> None:
    """prometheus.yml loads alerts.yml; its token file is made here (promtool checks it exists)."""
    token = tmp_path / "doctorai-metrics-token"
    token.write_text("t" * 43)
    token.chmod(0o600)
    config = (PROM / "prometheus.yml").read_text()
    assert "/etc/prometheus/doctorai-metrics-token" in config
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/doctorai-metrics-token", str(token))
    )
    shutil.copy(RULES, tmp_path / RULES.name)
    run = subprocess.run(
        [str(PROMTOOL), "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "alerts.yml" in run.stdout
    assert "rules found" in run.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"


def test_every_alert_has_severity_duration_and_text() -> None:
    alerts = _alerts()
    assert len(alerts) >= 10
    for rule in alerts:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert "for" in rule, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


@pytest.mark.parametrize(
    "topic",
    [
        "doctorai_sync_lag_seconds",
        "doctorai_tuf_timestamp_expiry_timestamp_seconds",
        "doctorai_http_requests_total",
        "doctorai_security_alerts_total",
        "doctorai_rate_limited_total",
        "up{",
    ],
)
def test_the_issue_s_topics_are_covered(topic: str) -> None:
    """Sync lag, timestamp expiry, 5xx, security alerts, rate-limit storms, backend down."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    recorded = {r["record"]: r["expr"] for g in groups for r in g["rules"] if "record" in r}
    exprs = [a["expr"] for a in _alerts()]
    for name, expr in recorded.items():  # an alert on a recording rule covers what it records
        exprs = [e.replace(name, expr) for e in exprs]
    assert any(topic in e for e in exprs)
