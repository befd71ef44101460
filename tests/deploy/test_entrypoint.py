"""deploy/entrypoint.py, run as the container runs it: secrets from the environment become the
backend's database URL and key files, and leave the environment the backend sees."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

ENTRYPOINT = Path(__file__).resolve().parents[2] / "deploy" / "entrypoint.py"
DUMP_ENV = "import json, os; print(json.dumps(dict(os.environ)))"
DB = {
    "DOCTORAI_DB_HOST": "doctorai.abc.eu-central-1.rds.amazonaws.com",
    "DOCTORAI_DB_PORT": "5432",
    "DOCTORAI_DB_NAME": "doctorai",
    "DOCTORAI_DB_USER": "doctorai",
    "DOCTORAI_DB_PASSWORD": "p@ss:w/rd?#%&=",  # every character that breaks a naive URL
    "DOCTORAI_DB_SSLMODE": "verify-full",
    "DOCTORAI_DB_SSLROOTCERT": "/etc/ssl/certs/rds-global-bundle.pem",
}


def _pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCTORAI_")}
    return subprocess.run(
        [sys.executable, str(ENTRYPOINT), sys.executable, "-c", DUMP_ENV],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_database_url_from_the_secret_fields() -> None:
    run = _run(DB)
    assert run.returncode == 0, run.stderr
    env = json.loads(run.stdout)
    url = make_url(env["DOCTORAI_BACKEND_DB_URL"])
    assert url.drivername == "postgresql+psycopg"
    assert url.password == DB["DOCTORAI_DB_PASSWORD"]
    assert (url.host, url.port, url.database) == (DB["DOCTORAI_DB_HOST"], 5432, "doctorai")
    assert url.query == {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/certs/rds-global-bundle.pem",
    }
    assert not [k for k in env if k.startswith("DOCTORAI_DB_")]


def test_a_given_database_url_wins() -> None:
    given = "postgresql+psycopg://u:p@db:5432/doctorai"
    run = _run({**DB, "DOCTORAI_BACKEND_DB_URL": given})
    assert json.loads(run.stdout)["DOCTORAI_BACKEND_DB_URL"] == given


def test_incomplete_database_settings_name_what_is_missing() -> None:
    run = _run({"DOCTORAI_DB_HOST": "db", "DOCTORAI_DB_USER": "u"})
    assert run.returncode == 78
    assert "DOCTORAI_DB_PORT" in run.stderr
    assert "DOCTORAI_DB_PASSWORD" in run.stderr


def test_online_keys_become_0600_files_the_backend_loads(tmp_path: Path) -> None:
    pytest.importorskip("tuf", reason="the backend extra is not installed")
    from backend.tuf_repo import load_signer

    keys = tmp_path / "keys"
    pems = {"snapshot": _pem(), "timestamp": _pem()}
    run = _run(
        {
            "DOCTORAI_BACKEND_KEYS_DIR": str(keys),
            "DOCTORAI_TUF_SNAPSHOT_KEY_PEM": pems["snapshot"],
            "DOCTORAI_TUF_TIMESTAMP_KEY_PEM": pems["timestamp"],
        }
    )
    assert run.returncode == 0, run.stderr
    env = json.loads(run.stdout)
    assert not [k for k in env if k.startswith("DOCTORAI_TUF_")]
    assert env["DOCTORAI_BACKEND_KEYS_DIR"] == str(keys)
    for role, pem in pems.items():
        path = keys / f"{role}.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip() == pem.strip()
        assert load_signer(keys, role).public_key.keytype == "ed25519"
    assert sorted(p.name for p in keys.iterdir()) == ["snapshot.key", "timestamp.key"]


def test_empty_key_secret_writes_nothing(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    run = _run(
        {
            "DOCTORAI_BACKEND_KEYS_DIR": str(keys),
            "DOCTORAI_TUF_SNAPSHOT_KEY_PEM": "",
            "DOCTORAI_TUF_TIMESTAMP_KEY_PEM": "",
        }
    )
    assert run.returncode == 0, run.stderr
    assert not keys.exists()


def test_a_value_that_is_not_a_key_is_refused_by_name(tmp_path: Path) -> None:
    run = _run(
        {
            "DOCTORAI_BACKEND_KEYS_DIR": str(tmp_path / "keys"),
            "DOCTORAI_TUF_TIMESTAMP_KEY_PEM": "not a key",
        }
    )
    assert run.returncode == 78
    assert "DOCTORAI_TUF_TIMESTAMP_KEY_PEM is not a PEM private key" in run.stderr
    assert "not a key" not in run.stderr  # the secret's value is never echoed
