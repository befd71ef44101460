"""Backend CPU per synced item on PostgreSQL 15: 200 results + 200 audit events per batch pair,
posted over HTTP to a real ``backend serve`` process; its CPU (user + system) read from the OS.

Baselines measured in the same run, on the same database server:
- the ORM path (``backend.ingest``'s per-row ORM store: today's hot path) in a second backend
  process, the same batches;
- the PostgreSQL insert floor: a bare psycopg ``executemany`` of the same rows into tables of the
  same shape (``LIKE .. INCLUDING ALL``: indexes and unique constraints), one commit per pair.
  Its driver CPU is the least any Python backend spends to get the rows into the database.

BENCH_BACKEND_CPU_PAIRS (default 30) batch pairs per path, after 3 pairs of warm-up.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from benchmarks.backend_fleet import (
    BATCH,
    Backend,
    Fleet,
    cpu_s,
    enrol,
    events_batch,
    fleet,
    postmaster_pid,
    results_batch,
)

PAIRS = int(os.environ.get("BENCH_BACKEND_CPU_PAIRS", "30"))
WARM = 3


def _bodies(pairs: int) -> list[tuple[str, bytes]]:
    chain: list[str] = []
    out = []
    for _ in range(pairs):
        out.append(("results:batch", json.dumps({"items": results_batch(BATCH)}).encode()))
        out.append(
            ("audit-events:batch", json.dumps({"events": events_batch(chain, BATCH)}).encode())
        )
    return out


def _http_path(f: Fleet, backend: Backend, pg_pid: int) -> dict[str, float]:
    """Backend and database CPU per pair, and items/s, for one backend process."""
    api = backend.url + "/api/v1"
    auth = enrol(api, f.codes(1)[0])
    bodies = _bodies(WARM + PAIRS)
    with httpx.Client(base_url=api, headers=auth, timeout=60) as http:

        def post(ep: str, body: bytes) -> None:
            key = uuid.uuid4().hex
            headers = {"Content-Type": "application/json", "Idempotency-Key": key}
            r = http.post(f"/{ep}", content=body, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"{ep}: {r.status_code} {r.text[:300]}")

        for ep, body in bodies[: 2 * WARM]:
            post(ep, body)
        b0, p0, t0 = cpu_s(backend.proc.pid), cpu_s(pg_pid), time.perf_counter()
        for ep, body in bodies[2 * WARM :]:
            post(ep, body)
        wall = time.perf_counter() - t0
        b1, p1 = cpu_s(backend.proc.pid), cpu_s(pg_pid)
    return {
        "backend_ms": (b1 - b0) / PAIRS * 1000,
        "pg_ms": (p1 - p0) / PAIRS * 1000,
        "items_per_s": PAIRS * 2 * BATCH / wall,
    }


def _floor(f: Fleet, pg_pid: int) -> dict[str, float]:
    """The same rows with a bare psycopg executemany: driver and server CPU per pair."""
    import psycopg
    from psycopg.types.json import Jsonb

    dev = "floor-" + uuid.uuid4().hex[:8]
    with psycopg.connect(f.db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("CREATE TABLE floor_results (LIKE results INCLUDING ALL)")
        conn.execute("CREATE TABLE floor_events (LIKE audit_events INCLUDING ALL)")
        conn.commit()
        now = time.time()
        from datetime import UTC, datetime

        received = datetime.fromtimestamp(now, UTC)

        def rows(body: bytes, kind: str) -> list[tuple[Any, ...]]:
            data = json.loads(body)
            if kind == "results:batch":
                return [
                    (
                        dev,
                        i["client_id"],
                        i["created_at"],
                        received,
                        i["model_id"],
                        i["model_version"],
                        i["decision"],
                        i["latency_ms"],
                        False,
                        Jsonb(i["summary"]),
                    )
                    for i in data["items"]
                ]
            return [
                (
                    dev,
                    e["event_id"],
                    e["index"],
                    e["prev_hash"],
                    e["hash"],
                    e["created_at"],
                    received,
                    e["type"],
                    e["actor"],
                    Jsonb(e["data"]),
                )
                for e in data["events"]
            ]

        sql = {
            "results:batch": "INSERT INTO floor_results (device_id, client_id, created_at, "
            "received_at, model_id, model_version, decision, latency_ms, shadow, summary) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            "audit-events:batch": 'INSERT INTO floor_events (device_id, event_id, "index", '
            "prev_hash, hash, created_at, received_at, type, actor, data) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        }
        prepared = [(ep, rows(body, ep)) for ep, body in _bodies(WARM + PAIRS)]
        with conn.cursor() as cur:
            for k, (ep, batch) in enumerate(prepared):
                if k == 2 * WARM:
                    c0, p0, t0 = time.process_time(), cpu_s(pg_pid), time.perf_counter()
                cur.executemany(sql[ep], batch)
                if k % 2:
                    conn.commit()
            wall = time.perf_counter() - t0
            c1, p1 = time.process_time(), cpu_s(pg_pid)
    return {
        "driver_ms": (c1 - c0) / PAIRS * 1000,
        "pg_ms": (p1 - p0) / PAIRS * 1000,
        "items_per_s": PAIRS * 2 * BATCH / wall,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_s, fleet(Path(tmp_s), ["orm", "bulk"]) as f:
        pg_pid = postmaster_pid(f.db_url)
        orm = _http_path(f, f.backends[0], pg_pid)
        bulk = _http_path(f, f.backends[1], pg_pid)
        floor = _floor(f, pg_pid)
    items = 2 * BATCH
    orm_rate, bulk_rate = items / orm["backend_ms"] * 1000, items / bulk["backend_ms"] * 1000
    floor_rate = items / floor["driver_ms"] * 1000
    print(
        f"backend CPU per {BATCH}+{BATCH} batch pair over HTTP ({PAIRS} pairs each): ORM path "
        f"(baseline) {orm['backend_ms']:.1f} ms, bulk path {bulk['backend_ms']:.1f} ms; items per "
        f"backend CPU-second {orm_rate:,.0f} -> {bulk_rate:,.0f}: {bulk_rate / orm_rate:.2f}x "
        "(goal >= 3x)"
    )
    print(
        f"PostgreSQL insert floor (bare psycopg executemany of the same rows): driver CPU "
        f"{floor['driver_ms']:.1f} ms per pair = {floor_rate:,.0f} items per CPU-second; bulk "
        f"backend spends {bulk['backend_ms'] / floor['driver_ms']:.1f}x the floor's CPU per item "
        f"(ORM {orm['backend_ms'] / floor['driver_ms']:.1f}x)"
    )
    print(
        f"PostgreSQL server CPU per pair: ORM {orm['pg_ms']:.1f} ms, bulk {bulk['pg_ms']:.1f} ms, "
        f"floor {floor['pg_ms']:.1f} ms; wall items/s (one client, sequential): ORM "
        f"{orm['items_per_s']:,.0f}, bulk {bulk['items_per_s']:,.0f}, floor "
        f"{floor['items_per_s']:,.0f}"
    )


if __name__ == "__main__":
    main()
