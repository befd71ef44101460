"""An admin's promote racing an automatic guardrail rollback, in two real processes on one real
PostgreSQL: exactly one of them closes each rollout, neither meets a deadlock, and the signed
channel says what the rollout's final status says. Also: two looks at once are numbered one
after the other."""

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
from backend.db import Result, Rollout, RolloutEvent, TufMetadata, TufTarget
from backend.deps import BackendState
from backend.rollout_assign import assignments_for
from backend.tuf_repo import init_keys
from core.sync.wire import ChannelFile
from tests.backend import pg
from tests.backend.conftest import base_settings, make_package

ROOT = Path(__file__).resolve().parents[2]
SLOT_S = 1.5  # one rollout's race per slot
#: the promote starts this much after the guardrail check began (the check reads its
#: aggregates first: the promote lands before, during and after the check's writes)
OFFSETS_S = [0.0, 0.02, 0.05, 0.1, 0.2, 0.0, 0.03, 0.08]
WORKER = """
import json, sys, time
from pathlib import Path
from backend import catalogue
from backend.app import build_state
from backend.rollout_monitor import report
from tests.backend.conftest import base_settings
data, url, mode, start, slot = Path(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
rids, offsets = json.loads(sys.argv[6]), json.loads(sys.argv[7])
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
    except Exception as exc:
        out[rid] = "ERROR " + type(exc).__name__ + ": " + str(exc).splitlines()[0]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    reason = pg.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pg.postgres_server() as url:
        yield url


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


def _race(st: BackendState, modes: tuple[str, str], rids: list[int]) -> list[dict[str, str | None]]:
    start = time.time() + 6.0  # both processes have imported and connected by then
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(st.settings.data_dir),
                str(st.settings.db_url),
                mode,
                str(start),
                str(SLOT_S),
                json.dumps(rids),
                json.dumps(OFFSETS_S[: len(rids)]),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for mode in modes
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err.decode()[-2000:]
        outs.append(json.loads(out))
    return outs


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
    promoter, checker = _race(served, ("promote", "check"), rids)
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
    outs = _race(served, ("look", "look"), rids)
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
