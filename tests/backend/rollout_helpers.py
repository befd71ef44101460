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


def get_report(server: LiveServer, rollout_id: int) -> dict[str, Any]:
    r = httpx.get(
        f"{server.api}/admin/rollouts/{rollout_id}/report",
        headers=server.admin_headers(),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())
