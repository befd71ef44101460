"""Helpers of the rollout tests: a live server serving backend.rollout_routes, assigned
workstations, results sent in batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend import catalogue, rollout_routes
from tests.backend.conftest import LiveServer, Workstation, base_settings, make_package


def serve_rollout_routes(live: LiveServer) -> LiveServer:
    """Put backend.rollout_routes first in the app's routes (they replace api.py's assignment
    and report routes; a no-op once app.py includes the router itself)."""
    app: Any = live.server.config.app
    if any(getattr(r, "endpoint", None) is rollout_routes.get_report for r in app.router.routes):
        return live
    app.router.routes[0:0] = list(rollout_routes.router.routes)
    return live


@pytest.fixture(scope="module")
def rollout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = serve_rollout_routes(LiveServer(base_settings(tmp_path_factory.mktemp("ro")))).start()
    yield live
    live.stop()


def publish(server: LiveServer, tmp: Path, model: str, versions: tuple[str, ...]) -> None:
    with server.state.sessions() as s:
        for v in versions:
            catalogue.add_model(s, server.state.repo, make_package(tmp / v, model, v, size=2048))


def assigned(
    server: LiveServer, n: int, rollout_id: int
) -> list[tuple[Workstation, dict[str, Any]]]:
    """``n`` workstations that have asked for (and so been given) their assignment."""
    out = []
    for i in range(n):
        ws = server.workstation(f"ws-{i}")
        got = ws.http.get("/rollouts/assignment")
        got.raise_for_status()
        mine = [a for a in got.json()["assignments"] if a["rollout_id"] == rollout_id]
        assert len(mine) == 1
        out.append((ws, mine[0]))
    return out


def send(ws: Workstation, items: list[dict[str, Any]]) -> None:
    for i in range(0, len(items), 500):
        ws.post("/results:batch", {"items": items[i : i + 500]}).raise_for_status()


class FixedAcceptance:
    """Accepted counts fixed per device instead of drawn. The arms come from the devices' ids
    (random at enrolment), so a drawn null case would be "significant" in about 5% of runs by
    design. Each arm's devices spread around the arm's rate by the same pattern, whose partial
    sums stay near zero, so the between-device variance the cluster-robust test uses is real
    and alike in every arm."""

    SPREAD = (0, -4, 4, -2, 2, -6, 6, -1, 1, -3, 3, -5, 5)

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def decisions(self, arm: str, rate: float, n: int) -> list[str]:
        i = self._seen.get(arm, 0)
        self._seen[arm] = i + 1
        k = round(rate * n) + round(self.SPREAD[i % len(self.SPREAD)] * n / 40)
        return ["accepted" if j < k else "rejected" for j in range(n)]


def get_report(server: LiveServer, rollout_id: int) -> dict[str, Any]:
    r = httpx.get(
        f"{server.api}/admin/rollouts/{rollout_id}/report",
        headers=server.admin_headers(),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())
