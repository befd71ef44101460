"""Two real processes on one real PostgreSQL: assignments stored once with one arm per device,
a guardrail breach acted on once, however the two race; an admin's promote racing an automatic
guardrail rollback closes each rollout once, with no deadlock, and the signed channel says what
the final status says; two looks at once are numbered one after the other."""

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

from backend import catalogue
from backend.app import build_state
from backend.db import (
    Result,
    Rollout,
    RolloutAssignment,
    RolloutEvent,
    TufMetadata,
    TufTarget,
    make_engine,
    make_sessionmaker,
)
from backend.deps import BackendState
from backend.rollout_assign import add_arms, assignments_for
from backend.tuf_repo import init_keys
from core.sync.wire import ChannelFile
from tests.backend.conftest import base_settings, make_package

ROOT = Path(__file__).resolve().parents[2]
WORKER = """
import json, sys, time
from backend.db import make_engine, make_sessionmaker
start, url, mode, devices = float(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
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


def run_together(script: str, argvs: list[list[str]], lead_s: float = 4.0) -> list[Any]:
    """One process per ``argvs`` entry running ``script``, all told (as their first argument)
    the same instant to begin their work at; their JSON outputs."""
    start = time.time() + lead_s  # all have imported and connected by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(start), *argv],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for argv in argvs
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err.decode()[-2000:]
        outs.append(json.loads(out))
    return outs


def _race(url: str, mode: str, devices: list[str]) -> list[dict[str, Any]]:
    """Two processes that begin the same work at the same instant."""
    return run_together(WORKER, [[url, mode, json.dumps(devices)]] * 2)


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


# --- an admin's promote racing a guardrail rollback; two looks at once ---

SLOT_S = 1.5  # one rollout's race per slot
#: the promote starts this much after the guardrail check began (the check reads its
#: aggregates first: the promote lands before, during and after the check's writes)
OFFSETS_S = [0.0, 0.02, 0.05, 0.1, 0.2, 0.0, 0.03, 0.08]
CLOSE_WORKER = """
import json, sys, time
from pathlib import Path
from backend import catalogue
from backend.app import build_state
from backend.rollout_monitor import report
from tests.backend.conftest import base_settings
start, data, url, mode = float(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
slot, rids, offsets = float(sys.argv[5]), json.loads(sys.argv[6]), json.loads(sys.argv[7])
st = build_state(base_settings(data, db_url=url))
with st.sessions() as s:  # warm up (imports, connections): reads only
    report(s, rids[0], record_look=False, enforce=False)
out = {}
for i, rid in enumerate(rids):
    at = start + i * slot + (offsets[i] if mode == "promote" else 0.0)
    time.sleep(max(0.0, at - time.time()))
    try:
        with st.sessions() as s:
            if mode == "promote":
                catalogue.promote(s, st.repo, rid, None, "admin")
                out[rid] = "promoted"
            elif mode == "look":
                out[rid] = report(s, rid, repo=st.repo, actor="look")["guardrails"]["action"]
            else:
                rep = report(s, rid, repo=st.repo, actor="guardrail-check")
                out[rid] = rep["guardrails"]["action"]
    except catalogue.CatalogueError as exc:
        out[rid] = "refused: " + str(exc)
    except Exception as exc:  # the database's own error (a deadlock) when there is one
        err = getattr(exc, "orig", None) or exc
        out[rid] = "ERROR " + type(err).__name__ + ": " + str(err).splitlines()[0]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def served(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendState]:
    data = tmp_path_factory.mktemp("race")
    init_keys(data / "keys")
    st = build_state(base_settings(data, db_url=pg_url))
    with st.sessions() as s:
        st.repo.bootstrap(s)
        s.commit()
    yield st
    st.engine.dispose()


def _breaching_rollout(st: BackendState, tmp: Path, model: str) -> int:
    """A published baseline 1.0 and candidate 2.0 whose results all carry an error: the
    guardrail check rolls it back (design ``on_breach: rollback``)."""
    with st.sessions() as s:
        for v in ("1.0", "2.0"):
            catalogue.add_model(s, st.repo, make_package(tmp / model / v, model, v, size=512))
        ro = catalogue.create_rollout(
            s,
            st.repo,
            model,
            "1.0",
            "2.0",
            0.5,
            design={
                "guardrails": {"max_error_rate": 0.1, "min_devices": 1},
                "on_breach": "rollback",
            },
        )
        rid = ro.id
        for _ in range(12):
            d = uuid.uuid4().hex
            ((got, arm),) = [x for x in assignments_for(s, d) if x[0].rollout_id == rid]
            s.add(
                Result(
                    device_id=d,
                    client_id=f"{d}-0",
                    created_at=datetime.now(UTC),
                    model_id=model,
                    model_version=got.version,
                    decision="accepted",
                    latency_ms=100.0,
                    summary={"error": "oom"} if arm != "baseline" else {},
                )
            )
        s.commit()
    return rid


def _close_race(st: BackendState, modes: tuple[str, str], rids: list[int]) -> list[Any]:
    """Two processes working through ``rids`` slot by slot, each its own way (``modes``)."""
    argv = [str(st.settings.data_dir), str(st.settings.db_url)]
    more = [str(SLOT_S), json.dumps(rids), json.dumps(OFFSETS_S[: len(rids)])]
    return run_together(CLOSE_WORKER, [[*argv, m, *more] for m in modes], lead_s=6.0)


def _signed_channel_version(st: BackendState, model: str) -> str:
    """The version the newest signed targets.json points workstations at."""
    with st.sessions() as s:
        row = s.get(TufTarget, catalogue.channel_path(model))
        assert row is not None
        body = st.storage.read_all(row.storage_key)
        newest = s.scalar(
            select(TufMetadata.body)
            .where(TufMetadata.role == "targets")
            .order_by(TufMetadata.version.desc())
            .limit(1)
        )
    assert newest is not None
    signed = json.loads(newest)["signed"]["targets"][catalogue.channel_path(model)]
    assert signed["hashes"]["sha256"] == row.sha256  # the stored file is the signed one
    return ChannelFile.model_validate_json(body).version


def _kinds(st: BackendState, rid: int) -> dict[str, int]:
    with st.sessions() as s:
        return dict(
            s.execute(
                select(RolloutEvent.kind, func.count())
                .where(RolloutEvent.rollout_id == rid)
                .group_by(RolloutEvent.kind)
            ).all()
        )


def test_promote_racing_a_guardrail_rollback_closes_once(
    served: BackendState, tmp_path: Path
) -> None:
    rids = [_breaching_rollout(served, tmp_path, f"race-{i}") for i in range(len(OFFSETS_S))]
    promoter, checker = _close_race(served, ("promote", "check"), rids)
    for i, rid in enumerate(rids):
        key = str(rid)
        got: tuple[str | None, str | None] = (promoter[key], checker[key])
        assert not any(str(x).startswith("ERROR") for x in got), got  # no deadlock, nothing else
        with served.sessions() as s:
            ro = s.get(Rollout, rid)
            assert ro is not None
            status = ro.status
        kinds = _kinds(served, rid)
        closes = kinds.get("promoted", 0) + kinds.get("rolled_back", 0)
        assert closes == 1, (got, kinds)  # exactly one of them closed it
        if status == "promoted":
            assert got == ("promoted", None), got  # the check found it closed and did nothing
            assert "guardrail_breach" not in kinds
        else:
            assert status == "rolled_back", status
            assert got[1] == "rolled_back", got
            assert got[0] == f"refused: rollout {rid} is already rolled_back", got
        want = "2.0" if status == "promoted" else "1.0"
        assert _signed_channel_version(served, f"race-{i}") == want, (status, got)


def test_two_looks_at_once_are_numbered_one_after_the_other(
    served: BackendState, tmp_path: Path
) -> None:
    rids = []
    with served.sessions() as s:
        for i in range(4):
            model = f"look-{i}"
            for v in ("1.0", "2.0"):
                catalogue.add_model(
                    s, served.repo, make_package(tmp_path / model / v, model, v, size=512)
                )
            rids.append(catalogue.create_rollout(s, served.repo, model, "1.0", "2.0", 0.5).id)
    outs = _close_race(served, ("look", "look"), rids)
    for rid in rids:
        assert [o[str(rid)] for o in outs] == [None, None]
        with served.sessions() as s:
            looks: list[dict[str, Any]] = [
                e.detail
                for e in s.scalars(
                    select(RolloutEvent)
                    .where(RolloutEvent.rollout_id == rid, RolloutEvent.kind == "look")
                    .order_by(RolloutEvent.id)
                )
            ]
        assert [look["look"] for look in looks] == [1, 2]
