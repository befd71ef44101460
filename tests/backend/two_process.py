"""N real backend processes (``python -m backend serve``) on one throwaway PostgreSQL, as two
ECS tasks behind a load balancer run them: shared database and JWT secret, nothing else."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from backend.app import build_state
from backend.auth import issue_enrol_code
from backend.deps import BackendState
from core.sync.wire import API_PREFIX
from tests.backend import pg
from tests.backend.conftest import base_settings

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Fleet:
    """The processes' base URLs and an in-test view of the same database."""

    urls: list[str]
    procs: list[subprocess.Popen[bytes]]
    state: BackendState
    db_url: str
    env: dict[str, str]

    def api(self, i: int) -> str:
        return self.urls[i] + API_PREFIX

    def enrol_code(self) -> str:
        with self.state.sessions() as s:
            return issue_enrol_code(s)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"backend process on {url} did not start (exit {proc.poll()})")
        time.sleep(0.1)


@contextmanager
def backend_processes(
    tmp: Path, n: int = 2, extra_env: dict[str, str] | None = None
) -> Iterator[Fleet]:
    """Start PostgreSQL and ``n`` backend processes on it; stop everything afterwards."""
    with pg.postgres_server() as db_url:
        secret = "two-process-" + uuid.uuid4().hex
        env = {
            **os.environ,
            "DOCTORAI_BACKEND_JWT_SECRET": secret,
            "DOCTORAI_BACKEND_RATE_PER_S": "100000",
            "DOCTORAI_BACKEND_RATE_BURST": "100000",
            **(extra_env or {}),
        }
        state = build_state(base_settings(tmp / "test-view", db_url=db_url, jwt_secret=secret))
        procs: list[subprocess.Popen[bytes]] = []
        urls: list[str] = []
        try:
            for i in range(n):
                port = _free_port()
                cmd = [sys.executable, "-m", "backend", "serve", "--data-dir", str(tmp / f"p{i}")]
                cmd += ["--db-url", db_url, "--port", str(port)]
                procs.append(
                    subprocess.Popen(
                        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                )
                urls.append(f"http://127.0.0.1:{port}")
            for url, proc in zip(urls, procs, strict=True):
                _wait_healthy(url, proc, 60)
            yield Fleet(urls, procs, state, db_url, env)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            state.engine.dispose()
