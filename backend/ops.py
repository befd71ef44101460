"""Operations: Prometheus metrics, JSON logs without patient data, per-device rate limits.

Several processes (``serve --workers N``, or several hosts on one PostgreSQL) share what must be
shared: rate-limit buckets live in the database (one atomic upsert per request), and metrics in
prometheus_client's multiprocess files when ``PROMETHEUS_MULTIPROC_DIR`` is set (``serve`` sets
it for its workers), so one scrape of any worker reports every worker of the host.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

LOG = logging.getLogger("doctorai.backend")
SYNC_LAG_BUCKETS_S = (10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_DB_FILE = re.compile(r"^(?P<kind>[a-z_]+?)_(?P<pid>\d+)\.db$")


def multiprocess_dir() -> Path | None:
    """Where worker processes keep their metric files (None: this process counts alone)."""
    raw = os.environ.get(MULTIPROC_ENV)
    return Path(raw) if raw else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_multiprocess_dir(path: Path) -> None:
    """Before the workers start: an empty folder (files of an earlier run are stale)."""
    path.mkdir(parents=True, exist_ok=True)
    for f in path.glob("*.db"):
        f.unlink(missing_ok=True)


def forget_dead_processes(path: Path) -> int:
    """Drop the live-gauge files of processes that are gone (even after kill -9), so a scrape
    counts only live workers; counters of dead workers stay until retention removes them."""
    gone = 0
    for f in path.glob("gauge_live*_*.db"):
        m = _DB_FILE.match(f.name)
        if m and not pid_alive(int(m["pid"])):
            f.unlink(missing_ok=True)
            gone += 1
    return gone


def purge_dead_metric_files(path: Path, idle_s: float, now: float | None = None) -> int:
    """Retention: files of dead processes untouched for ``idle_s`` (their counts leave the
    totals: Prometheus reads that as a counter reset, which rate() handles)."""
    now = time.time() if now is None else now
    removed = 0
    for f in path.glob("*.db"):
        m = _DB_FILE.match(f.name)
        if not m or pid_alive(int(m["pid"])):
            continue
        try:
            if now - f.stat().st_mtime >= idle_s:
                f.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


class _AllProcesses:
    """A collector over every worker's files (prometheus_client's MultiProcessCollector),
    forgetting dead workers' live gauges first."""

    def __init__(self, path: Path) -> None:
        from prometheus_client.multiprocess import MultiProcessCollector

        self.path = path
        self._inner = MultiProcessCollector(None, str(path))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        forget_dead_processes(self.path)
        yield from self._inner.collect()  # type: ignore[no-untyped-call]


class Metrics:
    """One registry per app, so several apps (tests) never clash on metric names.

    With ``PROMETHEUS_MULTIPROC_DIR`` set (``serve --workers N``), the metrics write to that
    folder and the registry reads every live and dead worker's files: one scrape, all workers.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        shared = multiprocess_dir()
        # in multiprocess mode values go to files; the registry only aggregates those files
        r: CollectorRegistry | None = None if shared else self.registry
        if shared:
            self.registry.register(_AllProcesses(shared))
        self.requests = Counter(
            "doctorai_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "doctorai_http_request_duration_seconds", "Request latency", ["route"], registry=r
        )
        # one observation per batch and no device label: the metrics name no workstation
        self.sync_lag = Histogram(
            "doctorai_sync_lag_seconds",
            "Age of the oldest item in a batch when it arrived",
            buckets=SYNC_LAG_BUCKETS_S,
            registry=r,
        )
        self.items = Counter(
            "doctorai_sync_items", "Items stored from batches", ["kind", "outcome"], registry=r
        )
        self.downloads = Counter(
            "doctorai_model_downloads",
            "Model file downloads started",
            ["model", "version"],
            registry=r,
        )
        self.rollout_arms = Counter(
            "doctorai_rollout_assignments",
            "Rollout assignments served",
            ["rollout", "arm"],
            registry=r,
        )
        self.rate_limited = Counter("doctorai_rate_limited", "Requests answered 429", registry=r)
        self.security_alerts = Counter(
            "doctorai_security_alerts", "Security alerts raised", ["code"], registry=r
        )
        # 1 per serving process; in multiprocess mode one series per live worker (pid label)
        self.processes = Gauge(
            "doctorai_backend_processes",
            "Backend processes serving",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.processes.set(1)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; callers pass only ids and counts in ``extra={"fields": ...}``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("doctorai")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def log(level: int, msg: str, **fields: Any) -> None:
    LOG.log(level, msg, extra={"fields": fields})


@dataclass
class _Bucket:
    tokens: float
    stamp: float


# One statement per request: refill by the time elapsed (never negative, whichever process's
# clock is ahead), take a token when one is there, and say whether it was taken.
_REFILL = "{least}(:burst, rate_buckets.tokens + {greatest}(:now - rate_buckets.stamp, 0) * :rate)"
_UPSERT = """
INSERT INTO rate_buckets (key, tokens, stamp, allowed) VALUES (:key, :burst - 1, :now, {true})
ON CONFLICT (key) DO UPDATE SET
  tokens = CASE WHEN {refill} >= 1 THEN {refill} - 1 ELSE {refill} END,
  allowed = {refill} >= 1,
  stamp = {greatest}(rate_buckets.stamp, :now)
RETURNING tokens, allowed
"""
_SQL = {
    "postgresql": _UPSERT.format(
        refill=_REFILL.format(least="LEAST", greatest="GREATEST"), greatest="GREATEST", true="TRUE"
    ),
    "sqlite": _UPSERT.format(
        refill=_REFILL.format(least="min", greatest="max"), greatest="max", true="1"
    ),
}


@dataclass
class RateLimiter:
    """Token bucket per key (device id, or client address before login).

    Given the database engine, the bucket is a row of ``rate_buckets`` that every process of
    the deployment updates with one atomic upsert, so N processes spend one budget, not N.
    Without an engine (a unit test, a one-off tool) the buckets live in this process. If the
    database cannot be reached the request passes (logged): the request itself will meet the
    same database, and a limiter must not turn an outage into 429s.
    """

    rate_per_s: float
    burst: int
    engine: Engine | None = None
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # fast path: a key the database refused stays refused here until its next token is due
    # (no process can add tokens sooner), so a flood of 429s costs no database round trips
    _refused_until: dict[str, float] = field(default_factory=dict)

    def check(self, key: str, engine: Engine | None = None) -> float:
        """0 when allowed (and consumed), else seconds until one token is available."""
        engine = engine or self.engine
        if engine is not None and engine.dialect.name in _SQL:
            return self._check_shared(engine, key)
        return self._check_local(key)

    def _check_shared(self, engine: Engine, key: str) -> float:
        now = time.time()
        until = self._refused_until.get(key)
        if until is not None:
            if now < until:
                return until - now
            self._refused_until.pop(key, None)
        params = {"key": key[:200], "now": now, "rate": self.rate_per_s}
        params["burst"] = float(self.burst)
        try:
            with engine.begin() as conn:
                tokens, allowed = conn.execute(text(_SQL[engine.dialect.name]), params).one()
        except SQLAlchemyError as exc:
            log(logging.WARNING, "rate limiter: database unavailable", reason=type(exc).__name__)
            return 0.0
        if allowed:
            return 0.0
        wait = (1.0 - float(tokens)) / self.rate_per_s
        if len(self._refused_until) > 10_000:  # bounded: forget, the database still knows
            self._refused_until.clear()
        self._refused_until[key] = now + wait
        return wait

    def _check_local(self, key: str) -> float:
        now = time.monotonic()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(float(self.burst), now)
            b.tokens = min(float(self.burst), b.tokens + (now - b.stamp) * self.rate_per_s)
            b.stamp = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) / self.rate_per_s


def retry_after_header(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))
