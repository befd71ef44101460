"""Two real processes on one real PostgreSQL: assignments stored once with one arm per device,
and a guardrail breach acted on once, however the two race."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from backend.db import (
    Result,
    Rollout,
    RolloutAssignment,
    RolloutEvent,
    make_engine,
    make_sessionmaker,
)
from backend.rollout_assign import add_arms, assignments_for
from tests.backend import pg

ROOT = Path(__file__).resolve().parents[2]
WORKER = """
import json, sys, time
from backend.db import make_engine, make_sessionmaker
url, mode, start, devices = sys.argv[1], sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
sessions = make_sessionmaker(make_engine(url))
while time.time() < start:
    time.sleep(0.001)
if mode == "assign":
    from backend.rollout_assign import assignments_for
    out = {}
    for d in devices:
        with sessions() as s:
            out[d] = sorted([a.rollout_id, name] for a, name in assignments_for(s, d))
else:
    from backend.rollout_monitor import check_rollouts
    out = {str(k): v for k, v in check_rollouts(sessions).items()}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    reason = pg.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pg.postgres_server() as url:
        yield url


def _race(url: str, mode: str, devices: list[str]) -> list[dict[str, Any]]:
    """Start two processes that begin the same work at the same instant; their outputs."""
    start = time.time() + 4.0  # both have imported and connected by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, mode, str(start), json.dumps(devices)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()[-2000:]
        outs.append(json.loads(out))
    return outs


def _rollout(url: str, model: str, design: dict[str, Any] | None = None) -> int:
    with make_sessionmaker(make_engine(url))() as s:
        ro = Rollout(
            model_id=model,
            baseline_version="1.0",
            candidate_version="2.0",
            split=0.3,
            design=design,
        )
        s.add(ro)
        s.flush()
        add_arms(s, ro, "1.0", [("2.0", 0.3), ("3.0", 0.3)])
        s.commit()
        return ro.id


def test_two_processes_assign_each_device_once_with_one_arm(pg_url: str) -> None:
    rid = _rollout(pg_url, "race-m")
    devices = [uuid.uuid4().hex for _ in range(150)]
    a, b = _race(pg_url, "assign", devices)
    assert a == b  # both processes told every device the same arm
    with make_sessionmaker(make_engine(pg_url))() as s:
        rows = s.execute(
            select(RolloutAssignment.device_id, RolloutAssignment.arm).where(
                RolloutAssignment.rollout_id == rid
            )
        ).all()
    assert len(rows) == len(devices)
    assert {d: arm for d, arm in rows} == {d: dict(map(tuple, a[d]))[rid] for d in devices}


def test_two_processes_act_on_a_breach_once(pg_url: str) -> None:
    rid = _rollout(pg_url, "breach-m", {"guardrails": {"max_error_rate": 0.1, "min_devices": 1}})
    sessions = make_sessionmaker(make_engine(pg_url))
    devices = [uuid.uuid4().hex for _ in range(30)]
    with sessions() as s:
        for d in devices:
            ((got, arm),) = [x for x in assignments_for(s, d) if x[0].rollout_id == rid]
            for k in range(4):
                s.add(
                    Result(
                        device_id=d,
                        client_id=f"{d}-{k}",
                        created_at=datetime.now(UTC),
                        model_id="breach-m",
                        model_version=got.version,
                        decision="accepted",
                        latency_ms=100.0,
                        summary={"error": "oom"} if arm != "baseline" else {},
                    )
                )
        s.commit()
    outs = _race(pg_url, "check", [])
    actions = sorted(o[str(rid)] or "" for o in outs)
    assert actions == ["", "paused"]  # one process paused it, the other found it paused
    with sessions() as s:
        kinds = dict(
            s.execute(
                select(RolloutEvent.kind, func.count())
                .where(RolloutEvent.rollout_id == rid)
                .group_by(RolloutEvent.kind)
            ).all()
        )
        ro = s.get(Rollout, rid)
        assert ro is not None
        assert ro.status == "paused"
    assert kinds["guardrail_breach"] == 1
    assert kinds["paused"] == 1
    assert kinds["look"] in (1, 2)  # 1 when the second process started after the pause
