"""``doctorai-backend serve`` as a real subprocess (the way deploy/ runs it), for the
multi-process tests: several processes on one database, workers, a trusted proxy."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
SECRET = "multi-process-test-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backend_env(**extra: str) -> dict[str, str]:
    """This process's environment without any DOCTORAI_BACKEND_* or Prometheus settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOCTORAI_BACKEND_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(extra)
    return env


@contextmanager
def serve(data_dir: Path, *args: str, env: dict[str, str], timeout: float = 40) -> Iterator[str]:
    """Start ``python -m backend serve`` on a free port; yield its URL once /healthz answers;
    stop it (SIGTERM, then SIGKILL) afterwards."""
    port = free_port()
    log = (data_dir.parent / f"serve-{port}.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backend",
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            *args,
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.flush()
                raise RuntimeError(
                    f"serve exited {proc.returncode}: " + Path(log.name).read_text()[-3000:]
                )
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not answer /healthz: " + Path(log.name).read_text())
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()
