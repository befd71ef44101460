"""The shared rate limiter's cost per request: one upsert ... RETURNING on the database.

Baseline (same run): the per-process dict limiter it replaced, and a bare ``SELECT 1`` round
trip in its own transaction on the same engine (the floor of any shared state in that
database). Printed per check and as ratios; SQLite always, PostgreSQL when Debian's server is
installed (tests.backend.pg starts a throwaway one).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

N = 2000
ROUNDS = 5


def _per_call_us(fn: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for i in range(N):
        fn(i)
    return (time.perf_counter() - start) / N * 1e6


def _measure(label: str, engine: Engine) -> None:
    from backend.ops import RateLimiter

    local = RateLimiter(1e6, 10**9)
    shared = RateLimiter(1e6, 10**9, engine)

    def select_one(_i: int) -> None:
        with engine.begin() as conn:
            conn.execute(text("SELECT 1")).scalar()

    cases: dict[str, Callable[[int], object]] = {
        "local dict": lambda i: local.check(f"k{i % 50}"),
        "SELECT 1 txn": select_one,
        "shared upsert": lambda i: shared.check(f"k{i % 50}"),
    }
    best = {name: float("inf") for name in cases}
    for _ in range(ROUNDS):  # round-robin, best of ROUNDS
        for name, fn in cases.items():
            best[name] = min(best[name], _per_call_us(fn))
    floor = best["SELECT 1 txn"]
    print(f"{label}: per check (best of {ROUNDS} x {N})")
    for name, us in best.items():
        print(f"  {name:<14} {us:9.1f} us   x{us / floor:5.2f} of SELECT 1 txn")


def main() -> None:
    from backend.db import make_engine
    from tests.backend import pg

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'b.sqlite3'}")
        _measure("SQLite (WAL)", engine)
        engine.dispose()
    reason = pg.unavailable_reason()
    if reason:
        print(f"PostgreSQL: not measured ({reason})")
        return
    with pg.postgres_server() as url:
        engine = make_engine(url)
        _measure("PostgreSQL 15 (127.0.0.1, fsync off)", engine)
        engine.dispose()
