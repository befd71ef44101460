"""A backend in a process of its own on 127.0.0.1, for tools that measure or exercise the
workstation against a real server (benchmarks, end-to-end tests): its threads do not share the
caller's interpreter, as in production."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


@dataclass
class LocalBackend:
    url: str
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    def enrol_code(self) -> str:
        """A one-time enrolment code, as an admin would issue it."""
        out = subprocess.run(
            [sys.executable, "-m", "backend", "enrol-code", "--data-dir", str(self.data_dir)],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_local_backend(data_dir: Path, timeout_s: float = 60.0) -> LocalBackend:
    """Serve ``data_dir`` on a free loopback port with a fresh JWT secret and generous rate
    limits; returns once /healthz answers (RuntimeError if it does not in ``timeout_s``)."""
    env = {
        **os.environ,
        "DOCTORAI_BACKEND_JWT_SECRET": uuid.uuid4().hex,
        "DOCTORAI_BACKEND_RATE_PER_S": "1000",
        "DOCTORAI_BACKEND_RATE_BURST": "1000",
    }
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    backend = LocalBackend(f"http://127.0.0.1:{port}", data_dir, env, proc)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{backend.url}/healthz", timeout=1).status_code == 200:
                return backend
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            backend.stop()
            raise RuntimeError(
                f"the backend did not start on {backend.url} (exit code {proc.poll()})"
            )
        time.sleep(0.1)
