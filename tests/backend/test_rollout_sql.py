"""The rollout's SQL aggregates equal a plain Python computation over the same rows
(SQLite and a real PostgreSQL 15), and only results of assigned devices count."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from backend.db import (
    Result,
    Rollout,
    RolloutArm,
    RolloutAssignment,
    make_engine,
    make_sessionmaker,
)
from backend.rollout_monitor import report
from backend.rollout_sql import device_rows, postgres_query
from tests.backend import pg

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ARMS = {"baseline": "1.0", "candidate-1": "2.0", "candidate-2": "3.0"}


def seed(session: Session, n_results: int, seed: int = 3) -> tuple[int, list[dict[str, Any]]]:
    """A 3-arm rollout paused on day 9, 50 assigned + 10 unassigned devices, results of two
    models (some shadow, some with an error, some before a device's assignment)."""
    rng = random.Random(seed)
    ro = Rollout(
        model_id="m",
        baseline_version="1.0",
        candidate_version="2.0",
        split=0.3,
        created_at=T0,
        paused_at=T0 + timedelta(days=9),
        status="paused",
    )
    session.add(ro)
    session.flush()
    for pos, (name, version) in enumerate(ARMS.items()):
        session.add(
            RolloutArm(rollout_id=ro.id, name=name, version=version, weight=1 / 3, position=pos)
        )
    devices = [f"dev-{i:03d}" for i in range(60)]
    assigned = {}
    for d in devices[:50]:
        assigned[d] = (rng.choice(list(ARMS)), T0 + timedelta(hours=rng.uniform(0, 48)))
        session.add(
            RolloutAssignment(
                rollout_id=ro.id, device_id=d, arm=assigned[d][0], assigned_at=assigned[d][1]
            )
        )
    rows: list[dict[str, Any]] = []
    for i in range(n_results):
        d = rng.choice(devices)
        arm = assigned.get(d, ("baseline", T0))[0]
        version = ARMS[arm] if rng.random() < 0.9 else rng.choice(list(ARMS.values()))
        summary: dict[str, Any] = {"label": "x"}
        u = rng.random()
        if u < 0.02:
            summary["error"] = "timeout"
        elif u < 0.04:  # the word without the field, or the field without a value: no error
            summary = rng.choice([{"label": "error"}, {"error": None}])
        rows.append(
            {
                "device_id": d,
                "client_id": f"c{i}",
                "created_at": T0 + timedelta(hours=rng.uniform(0, 24 * 11)),
                "received_at": T0 + timedelta(days=11),
                "model_id": "m" if rng.random() < 0.9 else "other",
                "model_version": version,
                "decision": rng.choice(["accepted", "accepted", "rejected", "none"]),
                "latency_ms": round(rng.lognormvariate(5, 0.5), 1 if rng.random() < 0.5 else 0),
                "shadow": rng.random() < 0.05,
                "rollout_id": None,
                "summary": summary,
            }
        )
    session.execute(insert(Result), rows)
    session.commit()
    return ro.id, [dict(r, assigned=assigned.get(r["device_id"])) for r in rows]


def expected(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """What the report should count, by hand: assigned devices, model m, not shadow, made
    between the device's assignment and the pause; grouped by ASSIGNED arm."""
    end = T0 + timedelta(days=9)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["assigned"] is None or r["model_id"] != "m" or r["shadow"]:
            continue
        arm, at = r["assigned"]
        if not at <= r["created_at"] <= end:
            continue
        groups[(arm, r["device_id"])].append(r)
    out = {}
    for key, rs in groups.items():
        lat = np.array([r["latency_ms"] for r in rs])
        out[key] = {
            "n_results": len(rs),
            "n_decided": sum(r["decision"] != "none" for r in rs),
            "n_accepted": sum(r["decision"] == "accepted" for r in rs),
            "n_errors": sum(r["summary"].get("error") is not None for r in rs),
            "n_version_mismatch": sum(r["model_version"] != ARMS[key[0]] for r in rs),
            "latency_p50_ms": float(np.percentile(lat, 50)),
            "latency_p95_ms": float(np.percentile(lat, 95)),
        }
    return out


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('rollout-sql') / 'b.db'}"
        return
    reason = pg.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pg.postgres_server() as url:
        yield url


def test_device_aggregates_equal_python(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        rid, rows = seed(s, 50_000)
        ro = s.get(Rollout, rid)
        assert ro is not None
        got = {(r.arm, r.device_id): r for r in device_rows(s, ro)}
    want = expected(rows)
    assert set(got) == set(want)
    assert len(want) == 50  # every assigned device has counted results; no unassigned one
    for key, w in want.items():
        g = got[key]
        for field in ("n_results", "n_decided", "n_accepted", "n_errors", "n_version_mismatch"):
            assert getattr(g, field) == w[field], (key, field)
        assert g.latency_p50_ms == pytest.approx(w["latency_p50_ms"], abs=1e-9)
        assert g.latency_p95_ms == pytest.approx(w["latency_p95_ms"], abs=1e-9)
    with sessions() as s:
        rep = report(s, rid, record_look=False, enforce=False)
    for arm in ARMS:
        n = sum(w["n_results"] for (a, _d), w in want.items() if a == arm)
        assert rep["arms"][arm]["n_results"] == n
    assert set(rep["comparisons"]) == {"candidate-1", "candidate-2"}
    engine.dispose()


def test_postgres_report_reads_the_report_index_without_a_sort() -> None:
    """The report's plan on PostgreSQL: an index-only scan of ix_results_report per assigned
    device, no scan of the results table, no sort (what makes 2M results take < 1 s). Fails
    when the query reads a column the index does not hold, or groups in another order."""
    reason = pg.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pg.postgres_server() as url:
        engine = make_engine(url)
        with make_sessionmaker(engine)() as s:
            rid, _rows = seed(s, 50_000)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE results"))  # what autovacuum does after inserts
        with make_sessionmaker(engine)() as s:
            ro = s.get(Rollout, rid)
            assert ro is not None
            sql = postgres_query(s, ro).compile(engine, compile_kwargs={"literal_binds": True})
            s.execute(text("SET LOCAL jit = off"))
            plan = s.execute(text(f"EXPLAIN (FORMAT JSON) {sql}")).scalar_one()
        engine.dispose()
    nodes: list[dict[str, Any]] = []
    todo = [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    kinds = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes]
    assert ("Index Only Scan", "results", "ix_results_report") in kinds, kinds
    assert not [k for k in kinds if k[0] in ("Sort", "Incremental Sort")], kinds
    assert not [k for k in kinds if k[1] == "results" and k[0] != "Index Only Scan"], kinds


def test_percentiles_with_one_and_two_results(tmp_path: Path) -> None:
    """Interpolation edges on SQLite: one result (p50 = p95 = it), two (linear between)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'e.db'}")
    with make_sessionmaker(engine)() as s:
        ro = Rollout(model_id="m", baseline_version="1", candidate_version="2", split=0.5)
        s.add(ro)
        s.flush()
        for pos, name in enumerate(("baseline", "candidate")):
            s.add(
                RolloutArm(
                    rollout_id=ro.id, name=name, version=str(pos + 1), weight=0.5, position=pos
                )
            )
        for d, arm in (("a", "baseline"), ("b", "candidate")):
            s.add(RolloutAssignment(rollout_id=ro.id, device_id=d, arm=arm, assigned_at=T0))
        now = datetime.now(UTC)
        for d, lat in (("a", 100.0), ("b", 100.0), ("b", 300.0)):
            s.add(
                Result(
                    device_id=d,
                    client_id=uuid.uuid4().hex,
                    created_at=now,
                    model_id="m",
                    model_version="1",
                    decision="accepted",
                    latency_ms=lat,
                    summary={},
                )
            )
        s.commit()
        got = {r.device_id: r for r in device_rows(s, ro)}
    assert (got["a"].latency_p50_ms, got["a"].latency_p95_ms) == (100.0, 100.0)
    assert got["b"].latency_p50_ms == pytest.approx(200.0)
    assert got["b"].latency_p95_ms == pytest.approx(290.0)
    engine.dispose()


def test_rollout_without_arm_rows_still_aggregates(tmp_path: Path) -> None:
    """A rollout with no arm rows (made before arms existed) gives device rows, every result a
    version mismatch (no arm version to match). Before: an empty CASE, a syntax error."""
    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    with make_sessionmaker(engine)() as s:
        ro = Rollout(model_id="m", baseline_version="1", candidate_version="2", split=0.5)
        s.add(ro)
        s.flush()
        s.add(RolloutAssignment(rollout_id=ro.id, device_id="a", arm="baseline", assigned_at=T0))
        s.execute(
            insert(Result),
            [
                {
                    "device_id": "a",
                    "client_id": f"c{i}",
                    "created_at": T0 + timedelta(hours=1),
                    "model_id": "m",
                    "model_version": "1",
                    "decision": "accepted",
                    "latency_ms": 10.0 * (i + 1),
                    "shadow": False,
                    "summary": {},
                }
                for i in range(3)
            ],
        )
        s.commit()
        (row,) = device_rows(s, ro)
    assert (row.arm, row.n_results, row.n_accepted, row.n_version_mismatch) == ("baseline", 3, 3, 3)
    assert row.latency_p50_ms == pytest.approx(20.0)
    engine.dispose()
