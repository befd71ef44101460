"""Rollouts: stable assignment near the split, shadow agreement, promote/rollback via TUF.

The report's statistics are tested in test_rollout_live.py (over HTTP), test_rollout_sql.py
(SQL aggregates) and test_rollout_stats.py (simulations)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend import catalogue
from backend.rollout import assign_arm
from backend.rollout_assign import Arm, pick_arm
from core.sync.wire import ChannelFile
from tests.backend.conftest import LiveServer, make_package, result_item
from tests.backend.rollout_helpers import assigned, get_report, rollout_server
from tests.backend.test_models_tuf import _updater

server = rollout_server  # a live server with the rollout routes


def test_assignment_is_stable_and_near_split() -> None:
    devices = [str(uuid.uuid4()) for _ in range(4000)]
    arms = [assign_arm(d, 7, 0.2) for d in devices]
    assert arms == [assign_arm(d, 7, 0.2) for d in devices]
    share = arms.count("candidate") / len(arms)
    sd = (0.2 * 0.8 / len(arms)) ** 0.5
    assert abs(share - 0.2) < 4 * sd
    # a different rollout reshuffles: arms are not correlated across rollouts
    other = [assign_arm(d, 8, 0.5) for d in devices]
    both = sum(1 for a, b in zip(arms, other, strict=True) if a == b == "candidate")
    assert abs(both / len(devices) - 0.1) < 0.03
    assert {assign_arm(d, 1, 0.0) for d in devices[:200]} == {"baseline"}
    assert {assign_arm(d, 1, 1.0) for d in devices[:200]} == {"candidate"}
    two = [Arm("baseline", "1", 0.8, 0), Arm("candidate", "2", 0.2, 1)]
    assert [pick_arm(d, 7, two) for d in devices] == arms  # K-arm code, same two-arm answer


def _send(ws: object, items: list[dict[str, Any]]) -> None:
    for i in range(0, len(items), 500):
        ws.post("/results:batch", {"items": items[i : i + 500]}).raise_for_status()  # type: ignore[attr-defined]


def _setup(server: LiveServer, tmp: Path, model: str, split: float, shadow: bool = False) -> int:
    with server.state.sessions() as s:
        for v in ("1.0", "2.0"):
            catalogue.add_model(s, server.state.repo, make_package(tmp, model, v, size=4096))
        return catalogue.create_rollout(s, server.state.repo, model, "1.0", "2.0", split, shadow).id


def test_assignment_over_http(server: LiveServer, tmp_path: Path) -> None:
    rid = _setup(server, tmp_path, "assign-model", 0.5, shadow=True)
    ws = server.workstation()
    got = [
        a
        for a in ws.http.get("/rollouts/assignment").json()["assignments"]
        if a["rollout_id"] == rid
    ]
    assert len(got) == 1
    a = got[0]
    assert a["arm"] == assign_arm(ws.device_id, rid, 0.5)
    assert a["version"] == "1.0"  # shadow mode: the baseline is what the radiologist sees
    assert a["shadow_version"] == ("2.0" if a["arm"] == "candidate" else None)
    again = ws.http.get("/rollouts/assignment").json()["assignments"]
    assert [x for x in again if x["rollout_id"] == rid] == got
    assert (
        "doctorai_rollout_assignments_total{arm="
        in httpx.get(f"{server.url}/metrics", headers=server.admin_headers()).text
    )


def test_promote_and_rollback_through_signed_channel(server: LiveServer, tmp_path: Path) -> None:
    repo = server.state.repo
    rid = _setup(server, tmp_path / "p", "promo-model", 0.1)

    ws = server.workstation("promo-reader")  # channel files are targets: enrolled devices only

    def channel(sub: str) -> ChannelFile:
        (tmp_path / sub).mkdir()
        with httpx.Client() as http:
            up = _updater(server, tmp_path / sub, ws, http)
            up.refresh()
            info = up.get_targetinfo("channels/promo-model.json")
            assert info is not None
            return ChannelFile.model_validate_json(Path(up.download_target(info)).read_bytes())

    during = channel("a")
    assert during.version == "1.0"
    assert during.rollout is not None
    assert during.rollout["split"] == 0.1
    with server.state.sessions() as s:
        before = repo.latest_version(s, "targets")
        catalogue.promote(s, repo, rid)
        assert repo.latest_version(s, "targets") == before + 1
        with pytest.raises(catalogue.CatalogueError, match="already promoted"):
            catalogue.rollback(s, repo, rid)
    after = channel("b")
    assert (after.version, after.rollout) == ("2.0", None)

    rid2 = _setup(server, tmp_path / "r", "rb-model", 0.5)
    with server.state.sessions() as s:
        catalogue.rollback(s, repo, rid2)
        status = catalogue.get_rollout(s, rid2).status
    assert status == "rolled_back"


def test_shadow_report_gives_agreement_with_the_shown_model(
    server: LiveServer, tmp_path: Path
) -> None:
    rid = _setup(server, tmp_path, "shadow-model", 1.0, shadow=True)
    ((ws, _a),) = assigned(server, 1, rid)  # split 1.0: the candidate arm, in shadow
    items = [
        result_item(model="shadow-model", version="1.0", decision="accepted") for _ in range(40)
    ]
    flags = [i % 10 != 0 for i in range(40)]  # 36 of 40 agree
    items += [
        result_item(
            model="shadow-model",
            version="2.0",
            decision="none",
            shadow=True,
            rollout_id=rid,
            summary={"decisions": ["x"], "agrees_with_shown": agrees},
        )
        for agrees in flags
    ]
    _send(ws, items)
    rep = get_report(server, rid)
    agree = rep["shadow_agreement"]
    assert (agree["n"], agree["agreed"]) == (40, 36)
    assert agree["ci_low"] < 0.9 < agree["ci_high"] < 1.0
    assert rep["arms"]["candidate"]["n_results"] == 40
    assert rep["arms"]["candidate"]["n_decided"] == 0  # never shown, never decided
    text = catalogue.format_report(rep)
    assert "shadow agreement with the shown model: 90.0%" in text
    assert "candidate acceptance difference: not tested" in text
