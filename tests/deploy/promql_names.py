"""The metric names a PromQL expression reads, and the names the backend's registry exports.

A small lexer instead of a PromQL parser (none is packaged for Python): strings, label matchers,
ranges and grouping clauses are removed, then every identifier not called as a function and
not a keyword is a metric name. tests/deploy/test_grafana_dashboard.py checks it on known
expressions, and promtool checks that the same expressions parse.
"""

from __future__ import annotations

import re

KEYWORDS = frozenset(
    [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "offset",
        "bool",
        "inf",
        "nan",
    ]
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*")
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def substitute_grafana(expr: str) -> str:
    """Grafana's interval variables as plain durations, so promtool can parse the result."""
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """Every metric (or recording rule) name an expression selects."""
    text = _STRING.sub('""', substitute_grafana(expr))
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name = match.group()
        if name.lower() in KEYWORDS:
            continue
        if re.match(r"\s*\(", text[match.end() :]):  # a function or aggregation
            continue
        names.add(name)
    return names


def exported_names() -> set[str]:
    """The series names the backend's Metrics registry can expose, suffixes included, and the
    collectors the app adds at scrape time (backend.app.TimestampExpiryCollector).

    Read from the registry's collectors (their type and name), not from the source: a labelled
    counter with no child yet yields no sample but will yield ``<name>_total``.
    """
    import os

    from backend.app import TimestampExpiryCollector
    from backend.ops import Metrics

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    # in multiprocess mode the registry only reads worker files; ask for the in-process one
    saved = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        families = list(Metrics().registry.collect())
        families += list(TimestampExpiryCollector(None).describe())  # type: ignore[arg-type]
    finally:
        if saved is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved
    names: set[str] = set()
    for family in families:
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names
