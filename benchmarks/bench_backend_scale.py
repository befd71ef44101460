"""Backend scale-out on PostgreSQL 15: one backend process vs two on the same load, and a fleet
load test with the project's own sync engine through a kill -9 of one backend.

1. The same load (BENCH_SCALE_DEVICES devices, default 8, each BENCH_SCALE_PAIRS pairs of 200
   results + 200 audit events, default 6), from a client process of its own, against one
   backend process (the baseline) and then against two (devices split between them). Printed:
   items/s of each and the ratio, errors, the count check, and the CPU of every party (backends,
   PostgreSQL, clients) against the cores the machine has: when they are all busy, a second
   process cannot add throughput, and the figures say so.
2. BENCH_SCALE_WORKSTATIONS (default 10) workstations, each an encrypted SQLCipher store with
   BENCH_SCALE_ITEMS results and as many chained audit events (default 1,000) drained by
   SyncEngine over SyncClient, split over two backend processes; when 40% of the items are in
   PostgreSQL, one backend is killed with SIGKILL and restarted on its port. Printed: items/s,
   batch latency p50/p99, and the count check: every item once, none lost, none twice.

Both backends run ``backend.bulk`` (the hot path this issue makes; ``as-is`` once wired).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.backend_fleet import (
    BATCH,
    ROOT,
    Fleet,
    cpu_s,
    fleet,
    percentile,
    postmaster_pid,
    run_client,
)

DEVICES = int(os.environ.get("BENCH_SCALE_DEVICES", "8"))
PAIRS = int(os.environ.get("BENCH_SCALE_PAIRS", "12"))
ROUNDS = int(os.environ.get("BENCH_SCALE_ROUNDS", "2"))  # 1, 2, 1, 2 ..: the best of each
WORKSTATIONS = int(os.environ.get("BENCH_SCALE_WORKSTATIONS", "10"))
ITEMS = int(os.environ.get("BENCH_SCALE_ITEMS", "1000"))


def _counts(f: Fleet, label_like: str) -> tuple[int, int, int, int]:
    """Results, distinct (device, client id), audit events, distinct (device, index)."""
    join = f"JOIN devices d USING (device_id) WHERE d.label LIKE '{label_like}'"
    return (
        f.count(f"SELECT count(*) FROM results {join}"),
        f.count(f"SELECT count(DISTINCT (device_id, client_id)) FROM results {join}"),
        f.count(f"SELECT count(*) FROM audit_events {join}"),
        f.count(f'SELECT count(DISTINCT (device_id, "index")) FROM audit_events {join}'),
    )


def _one_load(f: Fleet, n_backends: int, label: str) -> dict[str, Any]:
    urls = ",".join(b.url for b in f.backends[:n_backends])
    codes = ",".join(f.codes(DEVICES))
    pg_pid = postmaster_pid(f.db_url)
    pids = [b.proc.pid for b in f.backends]
    before = [cpu_s(p) for p in pids], cpu_s(pg_pid)
    out = run_client("pairs", urls, codes, str(PAIRS), label)
    after = [cpu_s(p) for p in pids], cpu_s(pg_pid)
    out["backend_cpu_s"] = sum(a - b for a, b in zip(after[0], before[0], strict=True))
    out["pg_cpu_s"] = after[1] - before[1]
    out["counts"] = _counts(f, label)
    return out


def _scale(f: Fleet) -> None:
    expected = DEVICES * PAIRS * BATCH
    rounds: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for k in range(ROUNDS):
        for n in (1, 2):
            rounds[n].append(_one_load(f, n, f"scale-{n}-{k}"))
    runs = {n: min(rs, key=lambda r: r["wall_s"]) for n, rs in rounds.items()}
    for n, rs in rounds.items():
        bad = [(r["counts"], r["errors"][:2]) for r in rs if r["counts"] != (expected,) * 4]
        errors = sum(len(r["errors"]) for r in rs)
        runs[n]["once"] = "yes, every round" if not bad else f"NO {bad}"
        runs[n]["all_errors"] = errors
    cores = os.cpu_count() or 1
    for n, r in runs.items():
        rate = r["items"] / r["wall_s"]
        busy = (r["backend_cpu_s"] + r["pg_cpu_s"] + r["client_cpu_s"]) / r["wall_s"]
        once = r["once"]
        print(
            f"{n} backend process{'es' if n > 1 else ''}: {rate:,.0f} items/s "
            f"(best of {ROUNDS}; {r['items']:,} items, {DEVICES} devices), request p50 "
            f"{percentile(r['latencies'], 0.5) * 1000:.0f} ms p99 "
            f"{percentile(r['latencies'], 0.99) * 1000:.0f} ms, errors {r['all_errors']}, "
            f"exactly once {once}; CPU s: backends "
            f"{r['backend_cpu_s']:.1f}, PostgreSQL {r['pg_cpu_s']:.1f}, client "
            f"{r['client_cpu_s']:.1f} in {r['wall_s']:.1f} s = {busy:.2f} of {cores} cores busy"
        )
    ratio = (runs[2]["items"] / runs[2]["wall_s"]) / (runs[1]["items"] / runs[1]["wall_s"])
    one, two = runs[1], runs[2]

    def cpu(r: dict[str, Any]) -> float:
        return float(r["backend_cpu_s"] + r["pg_cpu_s"] + r["client_cpu_s"])

    # what the cores allow at the one-process run's CPU per item (all parties share the cores)
    ceiling = min(2.0, cores / (cpu(one) / one["wall_s"]))
    print(
        f"two processes vs one (baseline) on the same load: {ratio:.2f}x items/s (goal >= 1.7x). "
        f"One backend process ran at {one['backend_cpu_s'] / one['wall_s']:.2f} cores (its "
        f"ceiling is 1); at the one-process run's CPU per item, {cores} fully busy cores allow "
        f"{ceiling:.2f}x; the two-process run kept {cpu(two) / two['wall_s']:.2f} of {cores} "
        f"cores busy at {cpu(two) / cpu(one):.2f}x the CPU per item. Where that is all the "
        "cores, the ratio measures the machine, not the backend: the goal needs cores to spare"
    )


def _kill_test(f: Fleet, tmp: Path) -> None:
    total = WORKSTATIONS * 2 * ITEMS
    urls = ",".join(b.url for b in f.backends)
    codes = ",".join(f.codes(WORKSTATIONS))
    cmd = [sys.executable, "-m", "benchmarks.backend_fleet", "workstations", urls, codes]
    cmd += [str(ITEMS), str(ITEMS), str(tmp / "ws")]
    (tmp / "ws").mkdir()
    client = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed_at = restarted_s = None
    while client.poll() is None:
        time.sleep(0.2)
        if killed_at is None:
            res, _, ev, _ = _counts(f, "ws-%")
            if res + ev >= 0.4 * total:
                victim = f.backends[1]
                os.kill(victim.proc.pid, signal.SIGKILL)
                victim.proc.wait()
                killed_at = res + ev
                t0 = time.perf_counter()
                victim.start()
                restarted_s = time.perf_counter() - t0
    stdout, stderr = client.communicate()
    if client.returncode != 0:
        raise RuntimeError(f"workstations failed: {stderr.decode()[-2000:]}")
    import json

    out = json.loads(stdout)
    res, res_distinct, ev, ev_distinct = _counts(f, "ws-%")
    heads = f.count(
        f"SELECT count(*) FROM devices WHERE label LIKE 'ws-%' AND head_index = {ITEMS - 1}"
    )
    once = (res, res_distinct, ev, ev_distinct, heads) == (
        WORKSTATIONS * ITEMS,
        WORKSTATIONS * ITEMS,
        WORKSTATIONS * ITEMS,
        WORKSTATIONS * ITEMS,
        WORKSTATIONS,
    )
    print(
        f"load test: {WORKSTATIONS} workstations (SQLCipher store + SyncEngine each) x "
        f"{ITEMS:,} results + {ITEMS:,} audit events over 2 backend processes: "
        f"{out['items'] / out['wall_s']:,.0f} items/s, batch p50 "
        f"{percentile(out['latencies'], 0.5) * 1000:.0f} ms p99 "
        f"{percentile(out['latencies'], 0.99) * 1000:.0f} ms; kill -9 of one backend at "
        f"{killed_at if killed_at is not None else 'NEVER (run ended first)'} of {total:,} "
        f"items, back in {restarted_s or 0:.1f} s; in PostgreSQL: results {res:,} (distinct "
        f"{res_distinct:,}), audit events {ev:,} (distinct {ev_distinct:,}), chain heads complete "
        f"{heads}/{WORKSTATIONS}; unsent {len(out['errors'])} workstations; exactly once "
        f"{'yes' if once and not out['errors'] else 'NO'}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with fleet(tmp, ["bulk", "bulk"]) as f:
            _scale(f)
            _kill_test(f, tmp)


if __name__ == "__main__":
    main()
