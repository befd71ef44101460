"""The rollout report at 2M results on a real PostgreSQL 15: SQL aggregates vs the old path.

Seeds (in SQL, ``generate_series``) one rollout with 2,000 devices (1,800 assigned) and
``DOCTORAI_BENCH_ROLLOUT_ROWS`` results (default 2,000,000), then measures, each best of 3:

- floor: ``SELECT count(*)`` over the same model's results (the least a report must read);
- new: ``backend.rollout_monitor.report`` (per-device aggregates in SQL from the report index,
  device-level tests), twice: right after the bulk insert, while the table's visibility map is
  still unset (an index-only scan then also visits the table), and after ``VACUUM``, the state
  autovacuum brings a table to after inserts (its insert threshold), i.e. the usual one;
- old: the report as it was (every row's decision and latency loaded into Python, per-result
  Wilson / chi-square / Mann-Whitney), reimplemented here only as the named baseline.

Memory: Python's peak (tracemalloc) and the process's resident peak over the call (VmHWM,
reset through /proc/self/clear_refs). Goal: <= 1 s and <= 50 MB extra at 2M results.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROWS = int(os.environ.get("DOCTORAI_BENCH_ROLLOUT_ROWS", "2000000"))
DEVICES, ASSIGNED = 2000, 1800


def _seed(engine: Any) -> int:
    from sqlalchemy import text

    with engine.begin() as c:
        rid = c.execute(
            text(
                "INSERT INTO rollouts (model_id, baseline_version, candidate_version, split, "
                "shadow, status, created_at) VALUES ('bench', '1.0', '2.0', 0.5, false, "
                "'active', now() - interval '30 days') RETURNING id"
            )
        ).scalar_one()
        c.execute(
            text(
                "INSERT INTO rollout_arms VALUES (:r, 'baseline', '1.0', 0.5, 0), "
                "(:r, 'candidate', '2.0', 0.5, 1)"
            ),
            {"r": rid},
        )
        c.execute(
            text(
                "INSERT INTO rollout_assignments (rollout_id, device_id, arm, assigned_at) "
                "SELECT :r, 'dev-' || d, CASE WHEN d % 2 = 0 THEN 'baseline' ELSE 'candidate' "
                "END, now() - interval '29 days' FROM generate_series(1, :n) d"
            ),
            {"r": rid, "n": ASSIGNED},
        )
        c.execute(
            text(
                "INSERT INTO results (device_id, client_id, created_at, received_at, model_id, "
                "model_version, decision, latency_ms, shadow, summary) "
                "SELECT 'dev-' || (1 + i % :dev), 'c' || i, now() - random() * interval '28 days', "
                "now(), 'bench', CASE WHEN (1 + i % :dev) % 2 = 0 THEN '1.0' ELSE '2.0' END, "
                "(ARRAY['accepted','accepted','rejected','none'])[1 + floor(random() * 4)::int], "
                "50 + random() * 200, false, "
                'CASE WHEN i % 97 = 0 THEN \'{"error": "x"}\'::json '
                'ELSE \'{"labels": ["a"]}\'::json END '
                "FROM generate_series(1, :rows) i"
            ),
            {"dev": DEVICES, "rows": ROWS},
        )
        c.execute(text("ANALYZE"))
    return int(rid)


def _old_report(session: Any, rid: int) -> dict[str, Any]:
    """The report before issue 19: arms by version and time, every row into Python."""
    import numpy as np
    from scipy.stats import binomtest, chi2_contingency, mannwhitneyu
    from sqlalchemy import select

    from backend.db import Result, Rollout

    ro = session.get(Rollout, rid)
    out: dict[str, Any] = {}
    raw: dict[str, list[float]] = {}
    table = []
    for arm, version in (("baseline", ro.baseline_version), ("candidate", ro.candidate_version)):
        rows = session.execute(
            select(Result.decision, Result.latency_ms).where(
                Result.model_id == ro.model_id,
                Result.model_version == version,
                Result.received_at >= ro.created_at,
            )
        ).all()
        raw[arm] = [float(r[1]) for r in rows]
        decided = [r[0] for r in rows if r[0] in ("accepted", "rejected")]
        k = sum(1 for d in decided if d == "accepted")
        ci = binomtest(k, len(decided)).proportion_ci(0.95, method="wilson")
        p50, p95 = np.percentile(np.asarray(raw[arm]), [50, 95])
        out[arm] = (k, len(decided), ci.low, ci.high, p50, p95)
        table.append([k, len(decided) - k])
    out["chi2"] = chi2_contingency(table).pvalue
    out["mw"] = mannwhitneyu(raw["baseline"], raw["candidate"]).pvalue
    return out


def _rss_peak_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _measure(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, float, float | None]:
    """(best seconds, tracemalloc peak MiB, resident peak growth MiB or None)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    resettable = _rss_peak_reset()
    before = _status_kb("VmRSS")
    tracemalloc.start()
    fn()
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = (_status_kb("VmHWM") - before) / 1024 if resettable else None
    return best, peak / 2**20, rss


def main() -> None:
    from sqlalchemy import func, select, text

    from backend.db import Result, make_engine, make_sessionmaker
    from backend.rollout_monitor import report
    from tests.backend import pg

    reason = pg.unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return
    with pg.postgres_server() as url:
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        t = time.perf_counter()
        rid = _seed(engine)
        print(f"seeded {ROWS:,} results, {DEVICES} devices in {time.perf_counter() - t:.1f} s")
        with sessions() as s:

            def floor() -> Any:
                return s.scalar(select(func.count()).where(Result.model_id == "bench"))

            def new() -> Any:
                return report(s, rid, record_look=False, enforce=False)

            def old() -> Any:
                return _old_report(s, rid)

            rep = new()
            cold_t, _py, _rss = _measure(new)
            s.commit()
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("VACUUM ANALYZE results"))
            counted = sum(a["n_results"] for a in rep["arms"].values())
            print(
                f"report counts {counted:,} results of {rep['arms']['candidate']['n_devices']}"
                f" + {rep['arms']['baseline']['n_devices']} assigned devices"
            )
            f_t, f_py, f_rss = _measure(floor)
            n_t, n_py, n_rss = _measure(new)
            o_t, o_py, o_rss = _measure(old, repeat=1)
        engine.dispose()

    def mb(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1f} MiB"

    print(
        f"floor  count(*):           {f_t * 1000:8.0f} ms  python peak {mb(f_py)}  rss +{mb(f_rss)}"
    )
    print(f"new    before autovacuum:  {cold_t * 1000:8.0f} ms")
    print(
        f"new    SQL aggregates:     {n_t * 1000:8.0f} ms  python peak {mb(n_py)}  rss +{mb(n_rss)}"
    )
    print(
        f"old    rows into Python:   {o_t * 1000:8.0f} ms  python peak {mb(o_py)}  rss +{mb(o_rss)}"
    )
    print(
        f"new / floor: {n_t / f_t:.2f}x   old / new: {o_t / n_t:.1f}x faster   "
        f"goal <= 1 s: {'met' if n_t <= 1 else 'NOT met'}; "
        f"<= 50 MB: {'met' if max(n_py, n_rss or 0) <= 50 else 'NOT met'}"
    )
