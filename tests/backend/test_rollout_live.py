"""Rollouts over HTTP on a live server: stored assignments, intention-to-treat counting,
guardrails that pause or roll back, K arms with Holm, planning, looks of the sequential test."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from backend import catalogue
from backend.db import RolloutArm, RolloutAssignment, RolloutEvent
from backend.rollout_assign import arms_of, pick_arm
from backend.rollout_monitor import check_rollouts
from core.sync.wire import ChannelFile
from tests.backend.conftest import LiveServer, result_item
from tests.backend.rollout_helpers import (
    FixedAcceptance,
    assigned,
    get_report,
    publish,
    rollout_server,
    send,
)
from tests.backend.test_models_tuf import _updater

server = rollout_server  # the module's live server, with the rollout routes


def _create(server: LiveServer, body: dict[str, Any]) -> int:
    r = httpx.post(f"{server.api}/admin/rollouts", json=body, headers=server.admin_headers())
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def test_assignment_is_stored_and_the_stored_arm_wins(server: LiveServer, tmp_path: Path) -> None:
    publish(server, tmp_path, "store-m", ("1.0", "2.0"))
    rid = _create(
        server,
        {
            "model_id": "store-m",
            "baseline": "1.0",
            "candidates": [{"version": "2.0", "share": 0.5}],
        },
    )
    (ws, a), *_ = assigned(server, 1, rid)
    with server.state.sessions() as s:
        row = s.get(RolloutAssignment, (rid, ws.device_id))
        assert row is not None
        ro = catalogue.get_rollout(s, rid)
        assert row.arm == a["arm"] == pick_arm(ws.device_id, rid, arms_of(s, ro))
        # the shares change (an admin's edit): a device keeps the arm it was given
        for arm in s.scalars(select(RolloutArm).where(RolloutArm.rollout_id == rid)):
            arm.weight = 1.0 if arm.name != row.arm else 0.0
        s.commit()
    again = [x for x in ws.http.get("/rollouts/assignment").json()["assignments"]]
    assert [x for x in again if x["rollout_id"] == rid] == [a]
    with server.state.sessions() as s:
        n = s.scalars(select(RolloutAssignment).where(RolloutAssignment.rollout_id == rid)).all()
    assert len(n) == 1


def test_report_counts_only_assigned_devices_by_their_assigned_arm(
    server: LiveServer, tmp_path: Path
) -> None:
    """Results of the model's versions from devices outside the rollout are not counted, and
    an assigned device's results count in its arm whatever version it ran (intention to
    treat). Before: arms were chosen by version and time, so the outsiders' 300 results of
    "2.0" were counted in the candidate arm."""
    publish(server, tmp_path, "itt-m", ("1.0", "2.0"))
    with server.state.sessions() as s:
        rid = catalogue.create_rollout(s, server.state.repo, "itt-m", "1.0", "2.0", 0.5).id
    inside = assigned(server, 12, rid)
    rng = random.Random(5)
    expect: Counter[str] = Counter()
    for ws, a in inside:
        # a candidate device may still run the baseline version for a while: it counts anyway
        items = [
            result_item(
                model="itt-m",
                version=a["version"] if k % 5 else "1.0",
                decision=rng.choice(["accepted", "rejected"]),
                latency=rng.uniform(50, 150),
            )
            for k in range(20)
        ]
        send(ws, items)
        expect[a["arm"]] += len(items)
    outsider = server.workstation("outside")
    send(
        outsider,
        [result_item(model="itt-m", version="2.0", decision="rejected") for _ in range(300)],
    )
    rep = get_report(server, rid)
    assert rep["arms"]["baseline"]["n_results"] == expect["baseline"]
    assert rep["arms"]["candidate"]["n_results"] == expect["candidate"]
    assert rep["arms"]["candidate"]["n_devices"] == sum(a["arm"] == "candidate" for _w, a in inside)
    assert rep["unit"].startswith("device")


@pytest.mark.parametrize(
    ("p_base", "p_cand", "significant"), [(0.6, 0.85, True), (0.8, 0.8, False)]
)
def test_device_level_significance(
    server: LiveServer, tmp_path: Path, p_base: float, p_cand: float, significant: bool
) -> None:
    model = f"sig-m-{int(p_base * 100)}"
    publish(server, tmp_path, model, ("1.0", "2.0"))
    with server.state.sessions() as s:
        rid = catalogue.create_rollout(s, server.state.repo, model, "1.0", "2.0", 0.5).id
    fixed = FixedAcceptance()
    rng = random.Random(42)
    for ws, a in assigned(server, 24, rid):
        p = p_cand if a["arm"] == "candidate" else p_base
        mean = 150 if a["arm"] == "candidate" else 250
        send(
            ws,
            [
                result_item(
                    model=model, version=a["version"], decision=d, latency=rng.gauss(mean, 20)
                )
                for d in fixed.decisions(a["arm"], p, 40)
            ],
        )
    rep = get_report(server, rid)
    acc = rep["comparisons"]["candidate"]["acceptance"]
    assert acc["test"] == "cluster_robust_difference"
    assert acc["significant"] is significant
    assert acc["ci_low"] < p_cand - p_base < acc["ci_high"]
    assert rep["comparisons"]["candidate"]["latency"]["significant"] is True
    text = catalogue.format_report(rep)
    line = text.split("candidate acceptance difference:")[1].split("\n")[0]
    assert ("SIGNIFICANT" in line) is significant


def test_guardrail_breach_pauses_and_serves_the_baseline(
    server: LiveServer, tmp_path: Path
) -> None:
    publish(server, tmp_path, "guard-m", ("1.0", "2.0"))
    rid = _create(
        server,
        {
            "model_id": "guard-m",
            "baseline": "1.0",
            "candidates": [{"version": "2.0", "share": 0.5}],
            "guardrails": {"max_error_rate": 0.1, "min_devices": 2},
        },
    )
    devices = assigned(server, 10, rid)
    assert {a["arm"] for _w, a in devices} == {"baseline", "candidate"}
    for ws, a in devices:
        bad = a["arm"] == "candidate"
        send(
            ws,
            [
                result_item(
                    model="guard-m",
                    version=a["version"],
                    summary={"error": "inference failed"} if bad and k % 2 else {},
                )
                for k in range(10)
            ],
        )
    rep = get_report(server, rid)
    assert rep["guardrails"]["action"] == "paused"
    assert rep["guardrails"]["breaches"][0]["guardrail"] == "max_error_rate"
    assert rep["rollout"]["status"] == "paused"
    cand_ws = next(w for w, a in devices if a["arm"] == "candidate")
    now = [x for x in cand_ws.http.get("/rollouts/assignment").json()["assignments"]]
    mine = next(x for x in now if x["rollout_id"] == rid)
    assert (mine["arm"], mine["version"]) == ("baseline", "1.0")
    # later results are outside the window: the counts stay
    send(cand_ws, [result_item(model="guard-m", version="1.0") for _ in range(5)])
    again = get_report(server, rid)
    assert again["arms"]["candidate"]["n_results"] == rep["arms"]["candidate"]["n_results"]
    assert again["guardrails"]["action"] is None  # already paused: nothing more to do
    ev = httpx.get(f"{server.api}/admin/rollouts/{rid}/events", headers=server.admin_headers())
    kinds = [e["kind"] for e in ev.json()]
    assert kinds[:1] == ["created"]
    assert kinds.count("guardrail_breach") == 1
    assert kinds.count("paused") == 1
    # an admin then rolls it back; paused rollouts can be closed
    r = httpx.post(f"{server.api}/admin/rollouts/{rid}/rollback", headers=server.admin_headers())
    assert r.json()["status"] == "rolled_back"


def test_breach_with_rollback_resigns_the_channel(server: LiveServer, tmp_path: Path) -> None:
    publish(server, tmp_path, "rb-m", ("1.0", "2.0"))
    with server.state.sessions() as s:
        rid = catalogue.create_rollout(
            s,
            server.state.repo,
            "rb-m",
            "1.0",
            "2.0",
            0.5,
            design={
                "guardrails": {"max_latency_p95_ms": 500, "min_devices": 1},
                "on_breach": "rollback",
            },
        ).id
    for ws, a in assigned(server, 6, rid):
        slow = a["arm"] == "candidate"
        send(
            ws,
            [
                result_item(model="rb-m", version=a["version"], latency=900.0 if slow else 90.0)
                for _ in range(5)
            ],
        )
    # the periodic check (what the scheduler runs), not a report
    actions = check_rollouts(server.state.sessions, server.state.repo)
    assert actions[rid] == "rolled_back"
    (tmp_path / "tuf").mkdir()
    reader = server.workstation("rb-reader")  # channel files are targets: enrolled devices only
    with httpx.Client() as http:
        up = _updater(server, tmp_path / "tuf", reader, http)
        up.refresh()
        info = up.get_targetinfo("channels/rb-m.json")
        assert info is not None
        channel = ChannelFile.model_validate_json(Path(up.download_target(info)).read_bytes())
    assert (channel.version, channel.rollout) == ("1.0", None)
    with server.state.sessions() as s:
        kinds = list(s.scalars(select(RolloutEvent.kind).where(RolloutEvent.rollout_id == rid)))
    assert kinds.count("guardrail_breach") == 1
    assert "rolled_back" in kinds


def test_three_arms_with_holm_and_promotion_of_one(server: LiveServer, tmp_path: Path) -> None:
    publish(server, tmp_path, "k-m", ("1.0", "2.0", "3.0"))
    rid = _create(
        server,
        {
            "model_id": "k-m",
            "baseline": "1.0",
            "candidates": [{"version": "2.0", "share": 0.3}, {"version": "3.0", "share": 0.3}],
        },
    )
    devices = assigned(server, 30, rid)
    with server.state.sessions() as s:
        stored = {
            r.device_id: r.arm
            for r in s.scalars(select(RolloutAssignment).where(RolloutAssignment.rollout_id == rid))
        }
    assert set(stored.values()) == {"baseline", "candidate-1", "candidate-2"}
    version = {"baseline": "1.0", "candidate-1": "2.0", "candidate-2": "3.0"}
    fixed = FixedAcceptance()
    for ws, a in devices:
        arm = stored[ws.device_id]
        assert a["version"] == version[arm]
        p = 0.9 if arm == "candidate-2" else 0.6
        send(
            ws,
            [
                result_item(model="k-m", version=a["version"], decision=d)
                for d in fixed.decisions(arm, p, 40)
            ],
        )
    rep = get_report(server, rid)
    comps = rep["comparisons"]
    assert set(comps) == {"candidate-1", "candidate-2"}
    assert comps["candidate-2"]["acceptance"]["significant"] is True
    assert comps["candidate-1"]["acceptance"]["significant"] is False
    for c in comps.values():
        assert c["acceptance"]["p_adjusted"] >= c["acceptance"]["p_value"]
    assert rep["sequential"]["level_per_candidate"] == pytest.approx(0.025)
    h = server.admin_headers()
    r = httpx.post(f"{server.api}/admin/rollouts/{rid}/promote", json={}, headers=h)
    assert r.status_code == 409
    assert "name the arm" in r.json()["error"]["message"]
    r = httpx.post(
        f"{server.api}/admin/rollouts/{rid}/promote", json={"arm": "candidate-2"}, headers=h
    )
    assert r.json()["status"] == "promoted"


def test_looks_are_recorded_and_the_p_value_only_falls(server: LiveServer, tmp_path: Path) -> None:
    publish(server, tmp_path, "look-m", ("1.0", "2.0"))
    with server.state.sessions() as s:
        rid = catalogue.create_rollout(s, server.state.repo, "look-m", "1.0", "2.0", 0.5).id
    rng = random.Random(3)
    devices = assigned(server, 16, rid)
    ps = []
    for _day in range(3):
        for ws, a in devices:
            p = 0.9 if a["arm"] == "candidate" else 0.6
            send(
                ws,
                [
                    result_item(
                        model="look-m",
                        version=a["version"],
                        decision="accepted" if rng.random() < p else "rejected",
                    )
                    for _ in range(10)
                ],
            )
        rep = get_report(server, rid)
        ps.append(rep["sequential"]["arms"]["candidate"]["p_always_valid"])
    assert ps == sorted(ps, reverse=True)
    assert rep["sequential"]["looks_before"] == 2
    assert rep["sequential"]["boundary_crossed"] is True


def test_plan_endpoint(server: LiveServer) -> None:
    h = server.admin_headers()
    r = httpx.get(
        f"{server.api}/admin/rollouts/plan",
        params={"baseline_rate": 0.5, "min_difference": 0.1, "icc": 0.05, "results_per_device": 20},
        headers=h,
    )
    assert r.status_code == 200
    assert r.json()["devices_per_arm"] == 38
    bad = httpx.get(
        f"{server.api}/admin/rollouts/plan",
        params={"baseline_rate": 0.95, "min_difference": 0.1},
        headers=h,
    )
    assert bad.status_code == 422
    assert "between 0 and 1" in bad.text
    ws = server.workstation()
    assert (
        ws.http.get(
            "/admin/rollouts/plan", params={"baseline_rate": 0.5, "min_difference": 0.1}
        ).status_code
        == 403
    )


def test_bad_rollout_requests_name_the_problem(server: LiveServer, tmp_path: Path) -> None:
    publish(server, tmp_path, "bad-m", ("1.0", "2.0"))
    h = server.admin_headers()
    r = httpx.post(
        f"{server.api}/admin/rollouts",
        json={
            "model_id": "bad-m",
            "baseline": "1.0",
            "candidates": [{"version": "2.0", "share": 0.7}, {"version": "1.0", "share": 0.2}],
        },
        headers=h,
    )
    assert r.status_code == 409
    assert "different versions" in r.json()["error"]["message"]
    r = httpx.post(
        f"{server.api}/admin/rollouts",
        json={
            "model_id": "bad-m",
            "baseline": "1.0",
            "candidates": [{"version": "9.9", "share": 0.2}],
        },
        headers=h,
    )
    assert r.status_code == 409
    assert "'9.9' is not in the catalogue" in r.json()["error"]["message"]
    assert httpx.get(f"{server.api}/admin/rollouts/999999/report", headers=h).status_code == 404
