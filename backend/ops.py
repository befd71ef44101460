"""Operations: Prometheus metrics, JSON logs without patient data, per-device rate limits."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

LOG = logging.getLogger("doctorai.backend")
SYNC_LAG_BUCKETS_S = (10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)


class Metrics:
    """One registry per app, so several apps (tests) never clash on metric names."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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


@dataclass
class RateLimiter:
    """Token bucket per key (device id, or client address before login).

    In-process: with several backend replicas each enforces its own share (say so in deploy
    docs); a shared limiter (Redis, API gateway) is the production upgrade.
    """

    rate_per_s: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, key: str) -> float:
        """0 when allowed (and consumed), else seconds until one token is available."""
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
