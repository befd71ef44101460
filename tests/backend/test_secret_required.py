"""Defect 5: a multi-process deployment refuses to start without a configured JWT secret
(each process's own generated file would make them reject each other's tokens)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from backend.app import build_state
from backend.config import ConfigError, Settings
from tests.backend import pg
from tests.backend.served import REPO, SECRET, backend_env, serve

_pg_reason = pg.unavailable_reason()


def _serve_fails(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend", "serve", "--data-dir", str(data), "--port", "0", *args],
        cwd=REPO,
        env=backend_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_postgres_without_secret_refuses_to_start(pg_url: str, tmp_path: Path) -> None:
    run = _serve_fails(tmp_path / "d", "--db-url", pg_url)
    assert run.returncode == 2, run.stderr
    assert "DOCTORAI_BACKEND_JWT_SECRET is not set" in run.stderr
    assert "PostgreSQL" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "d" / "jwt.secret").exists()


def test_several_workers_without_secret_refuse_to_start(tmp_path: Path) -> None:
    run = _serve_fails(tmp_path / "d", "--workers", "2")
    assert run.returncode == 2, run.stderr
    assert "DOCTORAI_BACKEND_JWT_SECRET is not set" in run.stderr
    assert "2 worker processes" in run.stderr
    assert not (tmp_path / "d" / "jwt.secret").exists()


def test_build_state_refuses_postgres_without_secret(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rule for anything that builds the app (not only ``serve``), MFA key included."""
    monkeypatch.delenv("DOCTORAI_BACKEND_JWT_SECRET", raising=False)
    monkeypatch.delenv("DOCTORAI_BACKEND_MFA_KEY", raising=False)
    settings = Settings(data_dir=tmp_path, db_url=pg_url)
    with pytest.raises(ConfigError, match="DOCTORAI_BACKEND_JWT_SECRET"):
        build_state(settings)
    with pytest.raises(ConfigError, match="DOCTORAI_BACKEND_JWT_SECRET"):
        settings.mfa_key_material()
    assert not (tmp_path / "jwt.secret").exists()


def test_single_sqlite_process_keeps_its_generated_secret(tmp_path: Path) -> None:
    data = tmp_path / "d"
    with serve(data, env=backend_env()) as url:
        assert httpx.get(url + "/healthz").status_code == 200
    assert (data / "jwt.secret").stat().st_mode & 0o777 == 0o600


def test_postgres_with_secret_starts(pg_url: str, tmp_path: Path) -> None:
    env = backend_env(DOCTORAI_BACKEND_JWT_SECRET=SECRET)
    with serve(tmp_path / "d", "--db-url", pg_url, env=env) as url:
        assert httpx.get(url + "/healthz").status_code == 200
    assert not (tmp_path / "d" / "jwt.secret").exists()
