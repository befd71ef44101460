"""The admin command line and ``serve`` as real subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.backend.conftest import make_package

REPO = Path(__file__).resolve().parents[2]


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCTORAI_BACKEND_JWT_SECRET": "cli-test-secret-0123456789abcdef"}
    return subprocess.run(
        [sys.executable, "-m", "backend", *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_admin_commands_and_serve(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = _cli(data, "keys", "init")
    assert r.returncode == 0, r.stderr
    root = json.loads((data / "root.json").read_text())
    assert root["signed"]["_type"] == "root"
    assert root["signed"]["consistent_snapshot"] is True
    assert oct((data / "keys" / "root.key").stat().st_mode)[-3:] == "600"
    again = _cli(data, "keys", "init")
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr

    for v in ("1.0", "1.1"):
        r = _cli(data, "add-model", str(make_package(tmp_path, "cli-model", v, size=2048)))
        assert r.returncode == 0, r.stderr
        assert f"published cli-model {v}" in r.stdout
    missing = _cli(data, "add-model", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "'" + str(tmp_path / "nope") + "' is not a directory" in missing.stderr

    r = _cli(data, "rollout", "create", "cli-model", "1.0", "1.1", "--split", "0.25")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("rollout 1:")
    r = _cli(data, "rollout", "report", "1")
    assert r.returncode == 0, r.stderr
    # the device-level report: with no results nothing is tested, nothing is significant
    assert "(unit of analysis: device)" in r.stdout
    assert "baseline    v1.0: devices=0 n=0" in r.stdout
    assert "candidate   v1.1: devices=0 n=0" in r.stdout
    assert "candidate acceptance difference: not tested" in r.stdout
    assert "SIGNIFICANT" not in r.stdout
    assert "no boundary crossed" in r.stdout
    assert "guardrails: none breached" in r.stdout
    code = _cli(data, "enrol-code").stdout.strip()

    port = _free_port()
    env = {**os.environ, "DOCTORAI_BACKEND_JWT_SECRET": "cli-test-secret-0123456789abcdef"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend", "serve", "--port", str(port), "--data-dir", str(data)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("serve did not come up")
        resp = httpx.post(f"{url}/api/v1/enrol", json={"code": code, "label": "cli"})
        assert resp.status_code == 200
        assert httpx.get(f"{url}/tuf/metadata/timestamp.json").status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("msg") == "request"]
    assert any(line["route"] == "/api/v1/enrol" and line["status"] == 200 for line in requests)
    assert code not in out  # the one-time code never reaches the logs

    r = _cli(data, "rollout", "promote", "1")
    assert r.returncode == 0, r.stderr
    assert "cli-model -> 1.1" in r.stdout
    r = _cli(data, "rollout", "rollback", "1")
    assert r.returncode == 2
    assert "already promoted" in r.stderr
