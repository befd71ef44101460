"""Live backend servers on 127.0.0.1 (uvicorn in a thread) and a minimal test workstation client."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from backend.app import build_state, create_app
from backend.auth import issue_enrol_code
from backend.config import Settings
from backend.deps import BackendState
from backend.tuf_repo import init_keys
from core.sync.wire import API_PREFIX, GENESIS_HASH


class LiveServer:
    """A real uvicorn server on an ephemeral loopback port, stopped cleanly by the fixture."""

    def __init__(self, settings: Settings, with_keys: bool = True) -> None:
        self.settings = settings
        if with_keys and not (settings.keys_dir / "root.key").exists():
            init_keys(settings.keys_dir)
        self.state: BackendState = build_state(settings)
        if with_keys:
            with self.state.sessions() as s:
                self.state.repo.bootstrap(s)
                s.commit()
        config = uvicorn.Config(
            create_app(settings, self.state),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.api = self.url + API_PREFIX
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.state.engine.dispose()

    def enrol_code(self) -> str:
        with self.state.sessions() as s:
            return issue_enrol_code(s)

    def admin_headers(self) -> dict[str, str]:
        """An admin token as a sign-in with a second factor issues it (admin MFA is on)."""
        token = self.state.tokens.access("test-admin", role="admin", amr=["pwd", "otp"])
        return {"Authorization": f"Bearer {token}"}

    def workstation(self, label: str = "ws") -> Workstation:
        return Workstation(self, label)


class Workstation:
    """The smallest client that talks the wire protocol: enrol, log in, send batches."""

    def __init__(self, server: LiveServer, label: str) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.api, timeout=30)
        r = self.http.post("/enrol", json={"code": server.enrol_code(), "label": label})
        r.raise_for_status()
        self.device_id: str = r.json()["device_id"]
        self.secret: str = r.json()["device_secret"]
        self.login()
        self.chain: list[dict[str, Any]] = []

    def login(self) -> None:
        r = self.http.post(
            "/token", json={"device_id": self.device_id, "device_secret": self.secret}
        )
        r.raise_for_status()
        self.tokens = r.json()
        self.http.headers["Authorization"] = f"Bearer {self.tokens['access_token']}"

    def post(self, path: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        return self.http.post(path, json=body, headers=headers)

    def make_events(self, n: int, kind: str = "viewed") -> list[dict[str, Any]]:
        """Extend this client's own hash chain by n events (sha256 over prev hash + event)."""
        out = []
        for _ in range(n):
            prev = self.chain[-1]["hash"] if self.chain else GENESIS_HASH
            ev = {
                "event_id": uuid.uuid4().hex,
                "index": len(self.chain),
                "prev_hash": prev,
                "created_at": datetime.now(UTC).isoformat(),
                "type": kind,
                "actor": "dr-a",
                "data": {"n": len(self.chain)},
            }
            ev["hash"] = hashlib.sha256(
                (prev + json.dumps(ev, sort_keys=True)).encode()
            ).hexdigest()
            self.chain.append(ev)
            out.append(ev)
        return out

    def close(self) -> None:
        self.http.close()


def result_item(
    model: str = "chest-xr",
    version: str = "1.0",
    decision: str = "accepted",
    latency: float = 120.0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "client_id": uuid.uuid4().hex,
        "created_at": datetime.now(UTC).isoformat(),
        "model_id": model,
        "model_version": version,
        "decision": decision,
        "latency_ms": latency,
        "summary": {"label": "effusion", "score": 0.8},
        **extra,
    }


def make_package(root: Path, model_id: str, version: str, size: int = 256 * 1024) -> Path:
    """A model package folder: manifest + a weights file (random bytes stand in for weights)."""
    pkg = root / f"{model_id}-{version}"
    pkg.mkdir(parents=True)
    weights = pkg / "weights.bin"
    weights.write_bytes(hashlib.sha256(f"{model_id}{version}".encode()).digest() * (size // 32))
    manifest = {
        "id": model_id,
        "version": version,
        "task": "classification",
        "framework": "keras",
        "files": {"weights.bin": hashlib.sha256(weights.read_bytes()).hexdigest()},
    }
    (pkg / "manifest.json").write_text(json.dumps(manifest))
    return pkg


def base_settings(data_dir: Path, **kw: Any) -> Settings:
    return replace(
        Settings(
            data_dir=data_dir,
            jwt_secret="test-secret-" + uuid.uuid4().hex,
            rate_per_s=1000.0,
            rate_burst=1000,
        ),
        **kw,
    )


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL 15 server for the module (skipped, with the reason, where the
    server binaries or psycopg are missing). Tests that stop or break the server take their
    own per-test one (test_health, test_timestamp_resign)."""
    from tests.backend import pg

    reason = pg.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pg.postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(base_settings(tmp_path_factory.mktemp("backend"))).start()
    yield live
    live.stop()


@pytest.fixture
def ws(server: LiveServer) -> Iterator[Workstation]:
    w = server.workstation()
    yield w
    w.close()
